"""Entropy-adaptive mixing of the model's probability with the n-gram estimate.

alpha = min(alpha_base + alpha_range * sigmoid(slope * (H - center[order])), alpha_max),
H = entropy (nats) of the model's distribution at the position. With the defaults this is
PR #779's `0.05 + 0.55 * sigmoid(2 * (H - 4.0))`. Per-order centers are PR #798's
(higher orders trusted at lower entropy); order 1 (no hit) uses `entropy_center`, as #798's
default of 4.0 for no match. Order 0 (warm-up) gives alpha = 0: the model alone.

The mixed probability is p = (1 - alpha) * p_model + alpha * p_ngram and the score is
-log max(p, 1e-12) (#779). alpha depends only on the model's entropy and the selected order,
both fixed before the target is seen, so a mix of two normalized distributions stays
normalized (C2); in hashed_target mode p_ngram itself is not a distribution.
"""
from __future__ import annotations

import torch

from golf_core.eval.config import MixerConfig

P_FLOOR = 1e-12  # #779's clamp before the log
MAX_ORDER_CODE = 17  # order codes 0..16 (MixerConfig.orders lie in 1..16)


def center_table(cfg: MixerConfig, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """(17,) entropy center indexed by order code (#798's per-order centers when set)."""
    t = torch.full((MAX_ORDER_CODE,), float(cfg.entropy_center), dtype=dtype, device=device)
    if cfg.entropy_centers:
        for n, c in cfg.entropy_centers.items():
            t[int(n)] = float(c)
    return t


def alpha(entropy: torch.Tensor, order: torch.Tensor, cfg: MixerConfig) -> torch.Tensor:
    """Per-position mixing weight (same dtype as entropy); 0 where order == 0 or mode none."""
    entropy = torch.as_tensor(entropy)
    order = torch.as_tensor(order).to(device=entropy.device, dtype=torch.int64)
    if cfg.mode == "none":
        return torch.zeros_like(entropy)
    center = center_table(cfg, entropy.dtype, entropy.device)[order]
    a = cfg.alpha_base + cfg.alpha_range * torch.sigmoid(cfg.entropy_slope * (entropy - center))
    a = a.clamp(max=cfg.alpha_max)
    return torch.where(order > 0, a, torch.zeros_like(a))


def mix_probs(p_model: torch.Tensor, p_ngram: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(1 - a) * p_model + a * p_ngram, elementwise (broadcasts, e.g. a[:, None] over (N, V))."""
    return (1.0 - a) * p_model + a * p_ngram


def nll_of(p: torch.Tensor) -> torch.Tensor:
    """-log max(p, 1e-12), #779's score of a mixed probability."""
    return -torch.log(p.clamp(min=P_FLOOR))


def mixed_nll(p_model, p_ngram, entropy, order, cfg: MixerConfig) -> torch.Tensor:
    """Per-position NLL (nats). Order 0 is the model alone, -log p_model, as #779's warm-up
    returns the unclamped neural NLL."""
    p_model = torch.as_tensor(p_model)
    a = alpha(torch.as_tensor(entropy).to(p_model.dtype), order, cfg)
    mixed = nll_of(mix_probs(p_model, torch.as_tensor(p_ngram).to(p_model.dtype), a))
    alone = -torch.log(p_model.clamp(min=torch.finfo(p_model.dtype).tiny))
    if cfg.mode == "none":
        return alone
    return torch.where(torch.as_tensor(order).to(p_model.device) > 0, mixed, alone)
