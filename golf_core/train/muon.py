"""Muon: momentum SGD whose matrix updates are orthogonalized by a Newton–Schulz iteration.

As upstream train_gpt.py (borrowed there from modded-nanogpt; https://kellerjordan.github.io/posts/muon/):
nesterov momentum, 5 quintic Newton–Schulz steps with coefficients (3.4445, -4.7750, 2.0315),
the update scaled by max(1, rows/cols)^0.5, parameters assigned round-robin to ranks and the
flat update all-reduced (each rank orthogonalizes only its share). Decoupled weight decay
`p *= 1 - lr * wd` before the update is PR #779's (MUON_WD).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from golf_core.accel import compile_fn

# Quintic coefficients chosen (modded-nanogpt) to push singular values towards 1 fast, at the
# price of not converging exactly: after 5 steps they land in a band around 1, not on 1.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def zeropower_via_newtonschulz5(G: Tensor, steps: int = 5, eps: float = 1e-7, dtype=torch.bfloat16) -> Tensor:
    """Approximately U V^T for G = U S V^T (2D), computed in `dtype` (bf16 as upstream)."""
    a, b, c = NS_COEFFS
    X = G.to(dtype)
    X = X / (X.norm() + eps)  # spectral norm <= Frobenius norm = 1: inside the iteration's basin
    transposed = G.size(0) > G.size(1)
    if transposed:  # iterate on the short side: X X^T is (min, min)
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if transposed else X


class Muon(torch.optim.Optimizer):
    """Muon for 2D parameters. Group keys: lr, momentum, backend_steps, nesterov, weight_decay.

    `ns_dtype`: bf16 as upstream on CUDA; the CPU path may use fp32 (bf16 matmuls are slow
    there and its rounding would blur the 1-rank vs 2-rank equivalence tests).
    """

    def __init__(self, params, lr: float, momentum: float, backend_steps: int = 5,
                 nesterov: bool = True, weight_decay: float = 0.0, ns_dtype=torch.bfloat16,
                 compile_ns: bool = False):
        if lr < 0 or not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon: bad lr {lr} or momentum {momentum}")
        defaults = dict(lr=lr, momentum=momentum, backend_steps=backend_steps,
                        nesterov=nesterov, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        # Upstream compiles the Newton-Schulz function (one graph per matrix shape).
        self._ns = compile_fn(zeropower_via_newtonschulz5) if compile_ns else zeropower_via_newtonschulz5
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon: parameters must be 2D, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        distributed = dist.is_available() and dist.is_initialized()
        world_size = dist.get_world_size() if distributed else 1
        rank = dist.get_rank() if distributed else 0

        for group in self.param_groups:
            params = group["params"]
            if not params:
                continue
            lr, momentum = group["lr"], group["momentum"]
            total = sum(p.numel() for p in params)
            # Each rank fills only its round-robin share; the SUM all-reduce then assembles the
            # full update (every slot is non-zero on exactly one rank, so the sum is exact).
            flat = torch.zeros(total, device=params[0].device, dtype=self.ns_dtype)
            offset = 0
            for i, p in enumerate(params):
                if i % world_size == rank and p.grad is not None:
                    g = p.grad
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(g)
                    buf = state["momentum_buffer"]
                    buf.mul_(momentum).add_(g)
                    if group["nesterov"]:
                        g = g.add(buf, alpha=momentum)
                    g = self._ns(g, steps=group["backend_steps"], dtype=self.ns_dtype)
                    # Scale correction from the Muon reference implementations (tall matrices).
                    g = g * max(1.0, g.size(0) / g.size(1)) ** 0.5
                    flat[offset:offset + p.numel()] = g.reshape(-1)
                offset += p.numel()
            if distributed and world_size > 1:
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            wd = group.get("weight_decay", 0.0)
            offset = 0
            for p in params:
                if wd > 0.0:
                    p.mul_(1.0 - lr * wd)  # decoupled weight decay: PR #779
                p.add_(flat[offset:offset + p.numel()].view_as(p).to(p.dtype), alpha=-lr)
                offset += p.numel()
        return loss
