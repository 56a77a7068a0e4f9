"""The training token stream: shards read in order, wrapping around, no sampling.

Same behaviour as upstream train_gpt.py's TokenStream / DistributedTokenLoader: every
`next_batch` takes one contiguous chunk of (local_tokens + 1) × world_size tokens from the
shared stream and gives rank r the r-th span; the "+1" lets (x, y) be a one-token shift.
Every rank reads the same stream, so no communication is needed and the sequence of global
batches depends only on world_size × grad_accum_steps (the number of micro-batches).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from golf_core.data.shards import ShardError, read_shard


class TokenStream:
    """Tokens of `files` in order, forever (after the last shard comes the first again)."""

    def __init__(self, files: Sequence[str | Path], vocab_size: int | None = None):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ShardError("token stream: no shard files given")
        self.vocab_size = vocab_size
        self.file_idx = 0
        self.tokens = read_shard(self.files[0], vocab_size)
        self.pos = 0

    def _advance_file(self) -> None:
        self.file_idx = (self.file_idx + 1) % len(self.files)
        self.tokens = read_shard(self.files[self.file_idx], self.vocab_size)
        self.pos = 0

    def take(self, n: int) -> np.ndarray:
        """The next `n` tokens as an int64 array."""
        out = np.empty(n, dtype=np.int64)
        filled, empty_in_a_row = 0, 0
        while filled < n:
            avail = self.tokens.size - self.pos
            if avail <= 0:
                empty_in_a_row += 1
                if empty_in_a_row > len(self.files):
                    raise ShardError("token stream: every shard is empty")
                self._advance_file()
                continue
            empty_in_a_row = 0
            k = min(n - filled, avail)
            out[filled : filled + k] = self.tokens[self.pos : self.pos + k]
            self.pos += k
            filled += k
        return out


class DistributedTokenLoader:
    """Per-rank (x, y) micro-batches cut from the shared TokenStream (upstream's slicing)."""

    def __init__(self, files: Sequence[str | Path], rank: int, world_size: int, device="cpu",
                 vocab_size: int | None = None):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"token loader: need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.stream = TokenStream(files, vocab_size)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One micro-batch for this rank: x, y int64 of shape (local_tokens // seq_len, seq_len)."""
        micro = self.world_size * grad_accum_steps
        if grad_accum_steps < 1 or seq_len < 1:
            raise ValueError(f"token loader: grad_accum_steps ({grad_accum_steps}) and seq_len ({seq_len}) must be >= 1")
        # Upstream floors silently; a remainder would silently shrink the batch, so refuse it.
        if global_tokens % micro:
            raise ValueError(
                f"token loader: global batch {global_tokens} tokens is not divisible by "
                f"world_size*grad_accum_steps = {self.world_size}*{grad_accum_steps} = {micro}"
            )
        local_tokens = global_tokens // micro
        if local_tokens % seq_len:
            raise ValueError(
                f"token loader: per-micro-batch tokens {local_tokens} (= {global_tokens}/{micro}) "
                f"is not a multiple of seq_len {seq_len}"
            )
        span = local_tokens + 1
        chunk = self.stream.take(span * self.world_size)
        local = torch.from_numpy(chunk[self.rank * span : (self.rank + 1) * span])
        x = local[:-1].reshape(-1, seq_len)  # (B, T)
        y = local[1:].reshape(-1, seq_len)  # (B, T)
        if self.device.type == "cuda":
            x, y = x.pin_memory(), y.pin_memory()
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
