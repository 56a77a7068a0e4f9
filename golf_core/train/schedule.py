"""LR and momentum schedules. Pure functions of (step, elapsed time): easy to test.

The LR is constant, then decays linearly to 0 over the last `warmdown_iters` steps. Under a
wallclock cap (upstream train_gpt.py's `lr_mul`) "the last warmdown_iters steps" is estimated
from the average step time so far: the warmdown starts when the remaining wall clock drops
below warmdown_iters * (elapsed / step), so the LR reaches 0 as the cap is hit, whatever the
hardware speed.
"""
from __future__ import annotations


def lr_scale(step: int, elapsed_ms: float, *, iterations: int, warmdown_iters: int,
             max_wallclock_ms: float | None) -> float:
    """Multiplier on every group's base LR for the step about to run (in [0, 1])."""
    if warmdown_iters <= 0:
        return 1.0
    if max_wallclock_ms is None:
        # No cap: plain step-based linear warmdown over the last warmdown_iters iterations.
        start = max(iterations - warmdown_iters, 0)
        if start <= step < iterations:
            return max((iterations - step) / max(warmdown_iters, 1), 0.0)
        return 1.0
    step_ms = elapsed_ms / max(step, 1)
    warmdown_ms = warmdown_iters * step_ms
    remaining_ms = max(max_wallclock_ms - elapsed_ms, 0.0)
    if remaining_ms <= warmdown_ms:
        return remaining_ms / max(warmdown_ms, 1e-9)
    return 1.0


def muon_momentum(step: int, *, start: float, end: float, warmup_steps: int) -> float:
    """Momentum warmed up linearly from `start` to `end` over `warmup_steps` (upstream: 0.85 -> 0.95 / 500)."""
    frac = min(step / warmup_steps, 1.0) if warmup_steps > 0 else 1.0
    return (1.0 - frac) * start + frac * end


def effective_cap_ms(max_wallclock_seconds: float, reserve_seconds: float = 0.0) -> float | None:
    """The training budget in ms (None = no cap). PR #779 keeps 18 s of the 600 s in reserve."""
    if max_wallclock_seconds <= 0:
        return None
    return max(1000.0 * (max_wallclock_seconds - reserve_seconds), 0.0)
