"""Bit packing of small unsigned integers: `bits`-bit values, 8 per `bits` bytes, little-endian."""
from __future__ import annotations

import torch
from torch import Tensor


def pack_bits(values: Tensor, bits: int) -> Tensor:
    """Pack a flat tensor of integers in [0, 2^bits) into a uint8 tensor of ceil(n/8)*bits bytes."""
    if not 1 <= bits <= 8:
        raise ValueError(f"pack_bits: bits must be 1..8 (got {bits})")
    v = values.reshape(-1).to(torch.int64)
    if v.numel() and (int(v.min()) < 0 or int(v.max()) >= 1 << bits):
        raise ValueError(f"pack_bits: values outside [0, {1 << bits})")
    pad = (-v.numel()) % 8
    if pad:
        v = torch.cat([v, v.new_zeros(pad)])
    groups = v.view(-1, 8)  # 8 values -> one 8*bits-bit word (<= 64 bits)
    shifts = torch.arange(8, dtype=torch.int64) * bits
    words = (groups << shifts).sum(dim=1)  # (G,)
    byte_shifts = torch.arange(bits, dtype=torch.int64) * 8
    return ((words[:, None] >> byte_shifts) & 0xFF).to(torch.uint8).reshape(-1)


def unpack_bits(packed: Tensor, bits: int, numel: int) -> Tensor:
    """Inverse of pack_bits: the first `numel` values as int64."""
    b = packed.reshape(-1, bits).to(torch.int64)
    byte_shifts = torch.arange(bits, dtype=torch.int64) * 8
    words = (b << byte_shifts).sum(dim=1)  # (G,)
    shifts = torch.arange(8, dtype=torch.int64) * bits
    vals = (words[:, None] >> shifts) & ((1 << bits) - 1)
    return vals.reshape(-1)[:numel]
