"""Muon: Newton-Schulz orthogonalization, the optimizer step, weight decay."""
from __future__ import annotations

import pytest
import torch

from golf_core.train.muon import Muon, zeropower_via_newtonschulz5


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (96, 128)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_newton_schulz_singular_values_near_one(shape, dtype):
    g = torch.Generator().manual_seed(0)
    G = torch.randn(*shape, generator=g) * 3.0
    X = zeropower_via_newtonschulz5(G, steps=5, dtype=dtype).float()
    assert X.shape == G.shape
    s = torch.linalg.svdvals(X)
    # The quintic coefficients (3.4445, -4.7750, 2.0315) trade exactness for speed: after 5 steps
    # singular values sit in a band around 1 (about 0.68..1.13 here), not on 1. The raw input's
    # singular values span roughly 0.5x..1.5x of their mean times a large norm.
    assert s.min() > 0.6 and s.max() < 1.25, (s.min().item(), s.max().item())
    s_in = torch.linalg.svdvals(G)
    assert (s_in.max() / s_in.min()) > 2.5  # the input really was far from orthogonal


def test_newton_schulz_keeps_singular_vectors():
    # X should be close to U V^T of the input: its inner product with U V^T is large.
    torch.manual_seed(1)
    G = torch.randn(48, 160)
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    X = zeropower_via_newtonschulz5(G, dtype=torch.float32)
    cos = (X * (U @ Vh)).sum() / (X.norm() * (U @ Vh).norm())
    assert cos > 0.97


def _toy_problem(seed=0):
    torch.manual_seed(seed)
    A = torch.randn(32, 16)
    target = torch.randn(32, 24)
    W = torch.nn.Parameter(torch.zeros(16, 24))
    return A, target, W


def test_muon_step_decreases_loss():
    A, target, W = _toy_problem()
    opt = Muon([W], lr=0.05, momentum=0.9, ns_dtype=torch.float32)
    losses = []
    for _ in range(30):
        loss = ((A @ W - target) ** 2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[1] < losses[0]
    assert losses[-1] < 0.7 * losses[0]


def test_muon_update_shape_scaling_and_weight_decay():
    # One step from zero momentum: update = lr * NS(g + m*g) * max(1, rows/cols)^0.5.
    torch.manual_seed(2)
    W = torch.nn.Parameter(torch.randn(64, 16))
    W0 = W.detach().clone()
    W.grad = torch.randn(64, 16)
    lr, mom, wd = 0.1, 0.5, 0.3
    Muon([W], lr=lr, momentum=mom, weight_decay=wd, ns_dtype=torch.float32).step()
    expected_update = zeropower_via_newtonschulz5(W.grad * (1 + mom), dtype=torch.float32) * 2.0  # sqrt(64/16)
    expected = W0 * (1 - lr * wd) - lr * expected_update
    torch.testing.assert_close(W.detach(), expected, rtol=1e-5, atol=1e-6)


def test_muon_rejects_non_matrix():
    with pytest.raises(ValueError, match="2D"):
        Muon([torch.nn.Parameter(torch.zeros(3))], lr=0.1, momentum=0.9)
