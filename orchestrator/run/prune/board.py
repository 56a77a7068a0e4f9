"""What every pruner reads: each trial's curve, and its value at each rung, per seed.

A *trial* is one configuration with its seeds (a script sweep's env point; its jobs differ only
in SEED). Each job reports points (train seconds, value) of the streamed metric as its log
lines come; when a seed's curve passes a rung r (train seconds), its value at r is recorded once,
linearly interpolated between the points on either side (a log line rarely falls on r). Rungs
are train seconds, not steps: under a wallclock cap with the LR warming down over the cap's last
part, configurations with different step times compare at equal train time.

Seeds: at a rung a trial is judged on the mean over the seeds that reached it, and only against
trials that have those same seeds at that rung (`peers`): a mean over seeds {1, 2} is never
compared with another trial's seed 1 alone, so seed luck cannot decide a comparison.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Board", "Decision", "Pruner", "interpolate"]


@dataclass(frozen=True)
class Decision:
    """A pruner's verdict on a trial at a rung: stop it (with the reason the run is tagged with)."""
    trial: str
    rung_s: float
    reason: str


class Pruner(Protocol):
    """One small interface (like optuna's BasePruner.prune, Ray Tune's on_trial_result -> STOP):
    asked after a trial got a new value at `rung_s`; returns a Decision to stop it, or None."""

    def judge(self, board: "Board", trial: str, rung_s: float) -> Decision | None: ...


def interpolate(points: list[tuple[float, float]], t: float) -> float | None:
    """The curve's value at train time t (points sorted by time); None before it reaches t."""
    prev = None
    for pt, pv in points:
        if pt >= t:
            if prev is None or pt == prev[0]:
                return pv
            return prev[1] + (pv - prev[1]) * (t - prev[0]) / (pt - prev[0])
        prev = (pt, pv)
    return None


@dataclass
class Board:
    rungs_s: tuple[float, ...]
    curves: dict[tuple[str, int], list[tuple[float, float]]] = field(default_factory=dict)
    at: dict[float, dict[str, dict[int, float]]] = field(default_factory=dict)  # rung -> trial -> seed -> value

    def add(self, trial: str, seed: int, t_s: float, value: float) -> list[float]:
        """Add one point; returns the rungs this seed passed with it (their values recorded)."""
        pts = self.curves.setdefault((trial, seed), [])
        if pts and t_s < pts[-1][0]:  # a restarted log (a retried attempt): start the curve over
            pts.clear()
        pts.append((float(t_s), float(value)))
        passed = []
        for r in self.rungs_s:
            seen = self.at.setdefault(r, {}).setdefault(trial, {})
            if seed in seen:
                continue
            v = interpolate(pts, r)
            if v is None:
                break
            seen[seed] = v
            passed.append(r)
        return passed

    def value(self, trial: str, rung_s: float, seeds: frozenset[int] | None = None) -> float | None:
        """The trial's mean at the rung over `seeds` (default: every seed it has there)."""
        vals = self.at.get(rung_s, {}).get(trial, {})
        seeds = frozenset(vals) if seeds is None else seeds
        if not seeds or not seeds <= vals.keys():
            return None
        return statistics.fmean(vals[s] for s in seeds)

    def seeds(self, trial: str, rung_s: float) -> frozenset[int]:
        return frozenset(self.at.get(rung_s, {}).get(trial, {}))

    def peers(self, trial: str, rung_s: float) -> dict[str, float]:
        """The other trials that have every seed `trial` has at the rung: their means over those seeds."""
        seeds = self.seeds(trial, rung_s)
        out = {}
        for other in self.at.get(rung_s, {}):
            if other != trial:
                v = self.value(other, rung_s, seeds)
                if v is not None:
                    out[other] = v
        return out
