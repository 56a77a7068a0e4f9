"""Asynchronous successive halving (ASHA, Li et al. 2018; Ray Tune's ASHAScheduler): at each
rung a trial goes on only if its value is within the best 1/eta of the trials that reached the
rung (on the same seeds), plus `margin`. Asynchronous: a trial is judged when it gets there,
against whoever got there before it, so no GPU waits for a rung to fill; a rung with fewer than
`min_trials` trials (itself included) lets everyone through."""
from __future__ import annotations

import math

from orchestrator.run.prune.board import Board, Decision

__all__ = ["Asha"]


class Asha:
    def __init__(self, *, eta: float, min_trials: int, margin: float, metric: str):
        self.eta, self.min_trials, self.margin, self.metric = eta, min_trials, margin, metric

    def judge(self, board: Board, trial: str, rung_s: float) -> Decision | None:
        mine = board.value(trial, rung_s)
        peers = board.peers(trial, rung_s)
        n = len(peers) + 1
        if mine is None or n < self.min_trials:
            return None
        keep = max(1, math.floor(n / self.eta))
        cut = sorted([mine, *peers.values()])[keep - 1]
        if mine <= cut + self.margin:
            return None
        k = len(board.seeds(trial, rung_s))
        return Decision(trial, rung_s, f"asha: {self.metric} {mine:.4f} at {rung_s:g} s (mean of {k} seed(s)) "
                                       f"is outside the best {keep} of {n} trials (cut {cut:.4f} + margin "
                                       f"{self.margin:g})")
