"""The median stopping rule (Golovin et al. 2017, Vizier; optuna's MedianPruner): a trial whose
value at a rung is worse than the median of the other trials' values there (same seeds), by more
than `margin`, is stopped. Needs `min_trials` trials at the rung (itself included)."""
from __future__ import annotations

import statistics

from orchestrator.run.prune.board import Board, Decision

__all__ = ["Median"]


class Median:
    def __init__(self, *, min_trials: int, margin: float, metric: str):
        self.min_trials, self.margin, self.metric = min_trials, margin, metric

    def judge(self, board: Board, trial: str, rung_s: float) -> Decision | None:
        mine = board.value(trial, rung_s)
        peers = board.peers(trial, rung_s)
        if mine is None or len(peers) + 1 < self.min_trials or not peers:
            return None
        med = statistics.median(peers.values())
        if mine <= med + self.margin:
            return None
        return Decision(trial, rung_s, f"median: {self.metric} {mine:.4f} at {rung_s:g} s is above the median "
                                       f"{med:.4f} of {len(peers)} other trials + margin {self.margin:g}")
