"""Exact bits per byte: float64 sums of NLL (nats) and bytes, all-reduced across ranks.

val_loss = nll_sum / tokens; val_bpb = (nll_sum / ln 2) / bytes (upstream eval_val). Sums are
float64 so 62M tokens add up without drift; ranks add their sums with one all-reduce.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from golf_core.rules import LN2  # re-exported: callers import it from here


@dataclass
class BpbSums:
    """Running float64 sums of one evaluation (this rank's share until `all_reduce`)."""

    nll: float = 0.0  # nats
    tokens: float = 0.0
    bytes: float = 0.0

    def add(self, nll: torch.Tensor | np.ndarray, nbytes: torch.Tensor | np.ndarray) -> None:
        """Add per-token NLLs (nats) and byte counts of scored targets."""
        if isinstance(nll, torch.Tensor):
            self.nll += float(nll.detach().to(torch.float64).sum().item())
            self.tokens += float(nll.numel())
        else:
            self.nll += float(np.asarray(nll, dtype=np.float64).sum())
            self.tokens += float(np.asarray(nll).size)
        if isinstance(nbytes, torch.Tensor):
            self.bytes += float(nbytes.detach().to(torch.float64).sum().item())
        else:
            self.bytes += float(np.asarray(nbytes, dtype=np.float64).sum())

    def all_reduce(self, device: torch.device | str = "cpu") -> "BpbSums":
        """Sums over all ranks (a no-op without an initialized process group)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return BpbSums(self.nll, self.tokens, self.bytes)
        t = torch.tensor([self.nll, self.tokens, self.bytes], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        nll, tokens, nbytes = (float(v) for v in t.cpu().tolist())
        return BpbSums(nll, tokens, nbytes)

    @property
    def val_loss(self) -> float:
        return self.nll / self.tokens if self.tokens else float("nan")

    @property
    def val_bpb(self) -> float:
        return bpb(self.nll, self.bytes)


def bpb(nll_sum_nats: float, byte_sum: float) -> float:
    """Bits per byte from a float64 NLL sum (nats) and a byte sum."""
    if byte_sum <= 0:
        raise ValueError(f"byte count must be positive (got {byte_sum})")
    return float(nll_sum_nats) / LN2 / float(byte_sum)


def bpb_of(nll: np.ndarray, nbytes: np.ndarray) -> tuple[float, float]:
    """(val_loss, val_bpb) of per-token NLLs and bytes, summed in float64."""
    nll = np.asarray(nll, dtype=np.float64)
    nll_sum = float(nll.sum())
    return nll_sum / max(nll.size, 1), bpb(nll_sum, float(np.asarray(nbytes, dtype=np.float64).sum()))
