"""Entropy-adaptive alpha (#779) and per-order centers (#798)."""
from __future__ import annotations

import math

import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.mixer import alpha, mix_probs, mixed_nll

CENTERS_798 = {7: 3.0, 6: 3.2, 5: 3.5, 4: 3.8, 3: 4.2, 2: 4.5}


def test_default_alpha_is_779_formula():
    H = torch.linspace(0, 8, 33, dtype=torch.float64)
    order = torch.full((33,), 5)
    got = alpha(H, order, MixerConfig(mode="hashed_target"))
    want = torch.tensor([0.05 + 0.55 / (1 + math.exp(-2 * (h - 4.0))) for h in H.tolist()], dtype=torch.float64)
    assert torch.allclose(got, want, atol=1e-15, rtol=0)


def test_order_zero_is_model_alone_and_alpha_max_clamps():
    cfg = MixerConfig(mode="normalized", alpha_max=0.3)
    H = torch.tensor([8.0, 8.0, 0.0], dtype=torch.float64)
    a = alpha(H, torch.tensor([0, 3, 3]), cfg)
    assert a[0] == 0 and a[1] == 0.3 and 0.05 < a[2] < 0.06
    nll = mixed_nll(torch.tensor([0.2, 0.2, 0.2], dtype=torch.float64), torch.tensor([0.9, 0.9, 0.9], dtype=torch.float64),
                    H, torch.tensor([0, 3, 3]), cfg)
    assert math.isclose(nll[0].item(), -math.log(0.2))
    assert math.isclose(nll[1].item(), -math.log(0.7 * 0.2 + 0.3 * 0.9))


def test_per_order_centers_change_alpha_per_order():
    H = torch.full((6,), 3.6, dtype=torch.float64)
    order = torch.tensor([2, 3, 4, 5, 6, 7])
    a = alpha(H, order, MixerConfig(mode="normalized", entropy_centers=CENTERS_798))
    want = [0.05 + 0.55 / (1 + math.exp(-2 * (3.6 - CENTERS_798[o]))) for o in order.tolist()]
    assert torch.allclose(a, torch.tensor(want, dtype=torch.float64), atol=1e-15)
    assert torch.all(a[1:] > a[:-1])  # higher orders trusted at lower entropy
    # no hit (order 1) falls back to entropy_center, as #798's default 4.0 for no match
    a1 = alpha(torch.tensor([3.6], dtype=torch.float64), torch.tensor([1]),
               MixerConfig(mode="normalized", entropy_centers=CENTERS_798))
    assert math.isclose(a1.item(), 0.05 + 0.55 / (1 + math.exp(-2 * (3.6 - 4.0))))


def test_mix_of_distributions_is_a_distribution():
    g = torch.Generator().manual_seed(0)
    pm = torch.softmax(torch.randn(5, 50, generator=g, dtype=torch.float64), -1)
    pn = torch.softmax(torch.randn(5, 50, generator=g, dtype=torch.float64), -1)
    a = alpha(torch.rand(5, generator=g, dtype=torch.float64) * 7, torch.tensor([0, 2, 4, 6, 7]),
              MixerConfig(mode="normalized"))
    assert torch.allclose(mix_probs(pm, pn, a[:, None]).sum(1), torch.ones(5, dtype=torch.float64))
