"""Pruning on live curves: the hook the driver owns, and the pruners that plug into it.

A job reports intermediate values while it runs (a script's streamed log lines,
workers.script_runner; golf_core's loop through on_progress, whose `elapsed_s` is its train
time); the driver hands each to `PruneHook.report`, which files the point on the `Board` and,
when a seed passes a rung, asks every pruner. A Decision stops the whole trial (every seed's
job; orchestrator.run.scheduler.Scheduler.stop).

A new pruner is one class with `judge(board, trial, rung_s) -> Decision | None` in this package
(asha.py, median.py, against.py are the examples) and one line in `make_pruners`.

Noise: a single seed's loss at one moment is noisy; a trial is judged on its seed mean, only
against trials with the same seeds (board.py), a rung with fewer than `min_trials` trials
judges nobody (early rungs would otherwise cut on two noisy points), and `margin` (in the
metric's units; about the seed-to-seed spread of the curve at the rung) lets a trial within
noise of the cut go on: pruning a good trial costs the sweep its answer, keeping a bad one
costs one more rung of GPU time.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from orchestrator.run.prune.against import Against
from orchestrator.run.prune.asha import Asha
from orchestrator.run.prune.board import Board, Decision, Pruner, interpolate
from orchestrator.run.prune.median import Median

__all__ = ["Against", "Asha", "Board", "Decision", "Median", "PruneHook", "Pruner", "interpolate",
           "make_pruners", "trial_key"]


def trial_key(job: Any) -> str:
    """A trial = one configuration with its seeds: the job's result-changing config minus its
    seed (a script job's env without SEED; a golf_core train job's RunConfig without train.seed),
    and its stage. A preset sweep trains one configuration: its seeds are one trial, which only
    `against` can stop (ASHA and median need other trials)."""
    env, run = getattr(job, "env", None), getattr(job, "run", None)
    if env is not None:
        cfg: Any = {k: v for k, v in env.items() if k != "SEED"}
    elif run is not None:
        cfg = run.model_dump(mode="json")
        cfg.get("train", {}).pop("seed", None)
    else:  # an eval or mix job reports no curve: a trial of its own
        return f"{job.kind}:{job.identity[:16]}"
    stage = getattr(job, "stage", None)
    blob = json.dumps({"cfg": cfg, "ranks": job.ranks, "stage": stage}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_pruners(spec: Any, reference: dict | None = None, source: str = "") -> list[Pruner]:
    out: list[Pruner] = []
    if spec.kind == "asha":
        out.append(Asha(eta=spec.eta, min_trials=spec.min_trials, margin=spec.margin, metric=spec.metric))
    elif spec.kind == "median":
        out.append(Median(min_trials=spec.min_trials, margin=spec.margin, metric=spec.metric))
    if reference:
        out.append(Against(reference, margin=spec.margin, metric=spec.metric, source=source or str(spec.against)))
    return out


class PruneHook:
    """Where intermediate values arrive (the driver calls `report`) and decisions come from."""

    def __init__(self, spec: Any, reference: dict | None = None):
        self.spec = spec
        self.board = Board(tuple(spec.rungs_s))
        self.pruners = make_pruners(spec, reference)
        self.decided: dict[str, Decision] = {}

    def point(self, event: dict) -> tuple[float, float] | None:
        """(train seconds, value) of a progress event for the spec's metric, or None."""
        want = ("step", "train_loss") if self.spec.metric == "train_loss" else ("val", "val_bpb")
        if event.get("event") != want[0]:
            return None
        v = event.get(want[1])
        t = event.get("train_time_s", event.get("elapsed_s"))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not isinstance(t, (int, float)):
            return None
        return float(t), float(v)

    def report(self, trial: str, seed: int, event: dict) -> Decision | None:
        if not self.pruners or trial in self.decided:
            return None
        pt = self.point(event)
        if pt is None:
            return None
        for rung in self.board.add(trial, seed, *pt):
            for p in self.pruners:
                d = p.judge(self.board, trial, rung)
                if d is not None:
                    self.decided[trial] = d
                    return d
        return None
