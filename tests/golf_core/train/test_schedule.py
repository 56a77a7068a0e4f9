"""LR warmdown by remaining wall clock, step-based warmdown, momentum warmup."""
from __future__ import annotations

import pytest

from golf_core.train.schedule import effective_cap_ms, lr_scale, muon_momentum


def test_wallclock_warmdown_follows_remaining_time():
    kw = dict(iterations=20_000, warmdown_iters=100, max_wallclock_ms=10_000.0)
    # 10 ms/step so far -> warmdown window = 100 steps * 10 ms = 1000 ms before the cap.
    assert lr_scale(500, 5_000.0, **kw) == 1.0  # 5000 ms left > 1000 ms
    assert lr_scale(900, 9_000.0, **kw) == pytest.approx(1.0)  # exactly at the window's start
    assert lr_scale(950, 9_500.0, **kw) == pytest.approx(0.5)  # 500 of 1000 ms left
    assert lr_scale(990, 9_900.0, **kw) == pytest.approx(0.1)
    assert lr_scale(1000, 10_000.0, **kw) == 0.0
    assert lr_scale(1100, 11_000.0, **kw) == 0.0  # past the cap: never negative


def test_wallclock_warmdown_adapts_to_step_speed():
    # Same elapsed time, slower steps -> the window (in ms) is longer, so the decay starts earlier.
    kw = dict(iterations=20_000, warmdown_iters=100, max_wallclock_ms=10_000.0)
    fast = lr_scale(800, 8_000.0, **kw)  # 10 ms/step: window 1000 ms, 2000 ms left -> 1.0
    slow = lr_scale(400, 8_000.0, **kw)  # 20 ms/step: window 2000 ms, 2000 ms left -> 1.0
    slower = lr_scale(200, 8_000.0, **kw)  # 40 ms/step: window 4000 ms -> 0.5
    assert fast == 1.0 and slow == pytest.approx(1.0) and slower == pytest.approx(0.5)


def test_step_based_warmdown_without_cap():
    kw = dict(iterations=100, warmdown_iters=10, max_wallclock_ms=None)
    assert lr_scale(0, 0.0, **kw) == 1.0
    assert lr_scale(89, 0.0, **kw) == 1.0
    assert lr_scale(90, 0.0, **kw) == pytest.approx(1.0)
    assert lr_scale(95, 0.0, **kw) == pytest.approx(0.5)
    assert lr_scale(99, 0.0, **kw) == pytest.approx(0.1)


def test_no_warmdown():
    assert lr_scale(10**6, 1e12, iterations=10, warmdown_iters=0, max_wallclock_ms=1.0) == 1.0


def test_momentum_warmup():
    kw = dict(start=0.85, end=0.95, warmup_steps=500)
    assert muon_momentum(0, **kw) == pytest.approx(0.85)
    assert muon_momentum(250, **kw) == pytest.approx(0.90)
    assert muon_momentum(500, **kw) == pytest.approx(0.95)
    assert muon_momentum(10_000, **kw) == pytest.approx(0.95)
    assert muon_momentum(3, start=0.85, end=0.95, warmup_steps=0) == 0.95


def test_effective_cap():
    assert effective_cap_ms(0.0) is None
    assert effective_cap_ms(600.0) == 600_000.0
    assert effective_cap_ms(600.0, 18.0) == 582_000.0  # PR #779's reserve
