"""Weight averages for the final model: EMA every step, SWA snapshots during warmdown (PR #779).

#779 keeps an fp32 EMA (decay 0.997) of the whole state dict, updated after every optimizer
step, and exports the EMA weights. It also sums SWA snapshots (every 50 steps once the LR scale
is below 0.2) but never uses them: the exported weights are the EMA. We follow that: with EMA on,
the EMA is the final model; with EMA off and SWA on, the SWA mean is; otherwise the raw weights.
"""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        # The live tensors (they share storage with the parameters, which optimizers update in
        # place), fetched once: state_dict() per step is pure Python overhead.
        self._live = model.state_dict()
        self.state = {k: t.detach().float().clone() for k, t in self._live.items()}

    @torch.no_grad()
    def update(self, model: nn.Module | None = None) -> None:
        """ema = decay * ema + (1 - decay) * w, as one fused multi-tensor lerp."""
        live = [t.float() for t in self._live.values()]  # no copy for fp32 tensors
        torch._foreach_lerp_(list(self.state.values()), live, 1.0 - self.decay)


class SWA:
    def __init__(self):
        self.sum: dict[str, torch.Tensor] | None = None
        self.count = 0

    @torch.no_grad()
    def add(self, model: nn.Module) -> None:
        # Kept on CPU in fp32 as #779 does (a snapshot every 50 steps; GPU memory stays free).
        snap = {k: t.detach().to("cpu", torch.float32, copy=True) for k, t in model.state_dict().items()}
        if self.sum is None:
            self.sum = snap
        else:
            for k, t in snap.items():
                self.sum[k] += t
        self.count += 1

    def mean(self) -> dict[str, torch.Tensor]:
        assert self.sum is not None and self.count > 0
        return {k: t / self.count for k, t in self.sum.items()}


@torch.no_grad()
def load_averaged(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load fp32 averaged weights into `model`, each cast to the tensor's current dtype/device."""
    current = model.state_dict()
    model.load_state_dict({k: state[k].to(dtype=current[k].dtype, device=current[k].device) for k in current},
                          strict=True)
