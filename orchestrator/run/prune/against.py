"""Against a reference curve (`prune.against`): a trial whose value at a rung is worse than the
reference's seed mean there by more than the reference's own seed spread (the sample standard
deviation over its seeds; 0 with one seed) plus `margin` is stopped. The reference is a record
folder's seed logs or another experiment's runs (orchestrator.plan.reference), each seed's
curve interpolated at the rung. Judged on every trial alone: no `min_trials`, a reference
needs no peers."""
from __future__ import annotations

import statistics

from orchestrator.run.prune.board import Board, Decision, interpolate

__all__ = ["Against"]


class Against:
    def __init__(self, curves: dict[str, list[tuple[float, float]]], *, margin: float, metric: str, source: str):
        self.curves, self.margin, self.metric, self.source = curves, margin, metric, source

    def at(self, rung_s: float) -> tuple[float, float] | None:
        """The reference's (mean, spread) at the rung; None when no seed of it got there."""
        vals = [v for pts in self.curves.values() if (v := interpolate(pts, rung_s)) is not None]
        if not vals:
            return None
        return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    def judge(self, board: Board, trial: str, rung_s: float) -> Decision | None:
        mine, ref = board.value(trial, rung_s), self.at(rung_s)
        if mine is None or ref is None:
            return None
        mean, spread = ref
        if mine <= mean + spread + self.margin:
            return None
        return Decision(trial, rung_s, f"against {self.source}: {self.metric} {mine:.4f} at {rung_s:g} s is worse "
                                       f"than the reference {mean:.4f} by more than its seed spread {spread:.4f} "
                                       f"+ margin {self.margin:g}")
