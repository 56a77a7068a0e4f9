"""How a sweep spends GPU time: `prune`, `budget` and `stages` (all optional).

    prune:  {kind: asha, metric: train_loss, rungs_s: [60, 180], eta: 3, min_trials: 3, margin: 0.0,
             against: null}
    budget: {gpu_hours: 40}
    stages:
      - {name: screen,  seeds: [1337], gpus_per_job: 1, env: {MAX_WALLCLOCK_SECONDS: 120}, promote: {top: 3}}
      - {name: confirm, seeds: [1337, 42, 2024], gpus_per_job: 8}

Rungs are in **train seconds** (the `train_time:` of a script's log lines; golf_core's loop
reports its elapsed train time), not steps: training is capped by wall clock and the LR warms
down over its last part, so two configurations with different step times compare at equal
train time (CONTEXT.md, "How competitors actually run"). What the pruners do with these fields:
orchestrator.run.prune. Everything here is checked before any job: a rung past the cap, eta < 2,
an `against` that is missing or has no curve (orchestrator.plan.reference, at plan time),
a stage whose env contradicts the train section.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from golf_core.config import MAX_SEED, Frozen
from orchestrator.spec.io import fail
from orchestrator.spec.script import env_axes

__all__ = ["BudgetSpec", "PromoteSpec", "PruneSpec", "StageSpec", "check_spend", "prune_identity"]

_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")


class PruneSpec(Frozen):
    kind: Literal["none", "asha", "median"] = Field(
        "none", description="asha: keep the best 1/eta at each rung; median: stop a trial worse than the "
                            "median of the others at the rung; none: no pruning (`against` may still stop)")
    metric: Literal["train_loss", "val_bpb_step"] = Field(
        "train_loss", description="the streamed curve trials are compared on (lower is better)")
    rungs_s: tuple[Annotated[float, Field(gt=0, le=10**7)], ...] = Field(
        (), max_length=64, description="train seconds at which trials are compared (increasing)")
    eta: float = Field(3.0, ge=2, le=1000, description="asha: a trial goes on if in the best 1/eta at a rung")
    min_trials: int = Field(3, ge=1, le=100_000, description="never judge a rung with fewer trials than this")
    margin: float = Field(0.0, ge=0, le=1000, description="never prune a trial within this much of the cut "
                                                          "(in the metric's units: seed noise)")
    against: str | None = Field(None, min_length=1, max_length=4096,
                                description="a record folder (its seed logs) or `mlflow:EXPERIMENT`: the "
                                            "reference curve; a trial worse than it by more than its seed "
                                            "spread + margin at a rung is stopped")

    @field_validator("rungs_s")
    @classmethod
    def _increasing(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"must be strictly increasing (got {list(v)})")
        return v

    @model_validator(mode="after")
    def _rungs(self) -> "PruneSpec":
        if (self.kind != "none" or self.against) and not self.rungs_s:
            fail([(("rungs_s",), f"{self.kind if self.kind != 'none' else 'against'} needs at least one rung "
                                 "(train seconds)")], "PruneSpec")
        return self

    @property
    def active(self) -> bool:
        return self.kind != "none" or self.against is not None


def prune_identity(prune: PruneSpec) -> str:
    """What a recorded prune decision depends on: the prune section (changing it reruns)."""
    return hashlib.sha256(json.dumps(prune.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class BudgetSpec(Frozen):
    gpu_hours: float = Field(gt=0, le=10**7, description="GPU-hours this sweep may spend, every attempt counted "
                                                         "(GPUs x wall, pruned and failed included)")

    @property
    def gpu_seconds(self) -> float:
        return self.gpu_hours * 3600.0


class PromoteSpec(Frozen):
    top: int | None = Field(None, ge=1, le=100_000, description="promote the k best configurations")
    fraction: float | None = Field(None, gt=0, le=1, description="promote this fraction (at least one)")

    @model_validator(mode="after")
    def _one(self) -> "PromoteSpec":
        if (self.top is None) == (self.fraction is None):
            fail([((), "set exactly one of top and fraction")], "PromoteSpec")
        return self

    def count(self, n: int) -> int:
        if self.top is not None:
            return min(self.top, n)
        return max(1, int(round(self.fraction * n)))


_EnvValue = str | int | float


class StageSpec(Frozen):
    name: str = Field(min_length=1, max_length=40, description="the stage's name (tag golf.stage)")
    seeds: tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...] | None = Field(
        None, min_length=1, max_length=10_000, description="this stage's seeds (default: train.seeds)")
    gpus_per_job: int | None = Field(None, ge=1, le=64, description="ranks per job in this stage")
    env: dict[str, _EnvValue] = Field({}, description="env values this stage sets (scalars: e.g. a shorter cap)")
    max_wallclock_seconds: float | None = Field(None, ge=0, le=10**8, description="this stage's training cap")
    promote: PromoteSpec | None = Field(None, description="what goes on to the next stage, by the stage's "
                                                          "seed-mean val_bpb")
    reproduce: bool = Field(False, description="last stage: statistics and a record folder per configuration "
                                               "it runs, as `golf reproduce` gives")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.fullmatch(v):
            raise ValueError(f"must be a slug of a-z 0-9 _ - (got {v!r})")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v):
        if v is not None and len(set(v)) != len(v):
            raise ValueError("must not repeat a seed")
        return v


def _cap_of(sweep: Any, stage: StageSpec | None) -> float | None:
    """The training cap (s) a job of `stage` runs under, if any is known from the spec."""
    if stage is not None and stage.max_wallclock_seconds is not None:
        return stage.max_wallclock_seconds or None
    if stage is not None and "MAX_WALLCLOCK_SECONDS" in stage.env:
        try:
            return float(stage.env["MAX_WALLCLOCK_SECONDS"]) or None
        except ValueError:
            return None
    t = sweep.train
    if t.max_wallclock_seconds is not None:
        return t.max_wallclock_seconds or None
    if sweep.is_script:
        v = t.env.get("MAX_WALLCLOCK_SECONDS")
        vals = v if isinstance(v, tuple) else (v,) if v is not None else ()
        try:
            caps = [float(x) for x in vals]
        except (TypeError, ValueError):
            return None
        return max(caps) or None if caps else None
    return sweep.run_config(t.seeds[0]).train.max_wallclock_seconds or None


def check_spend(sweep: Any) -> None:
    """The Sweep-level rules of prune / budget / stages (raises ValidationError via `fail`)."""
    errors: list[tuple[tuple, str]] = []
    stages: tuple[StageSpec, ...] = sweep.stages
    names = [s.name for s in stages]
    for i, s in enumerate(stages):
        where = ("stages", i)
        if names.index(s.name) != i:
            errors.append(((*where, "name"), f"repeats stage {s.name!r}"))
        last = i == len(stages) - 1
        if not last and s.promote is None:
            errors.append(((*where, "promote"), "required on every stage but the last ({top: k} or {fraction: f})"))
        if last and s.promote is not None:
            errors.append(((*where, "promote"), "the last stage promotes nothing"))
        if s.reproduce and not last:
            errors.append(((*where, "reproduce"), "only the last stage reproduces (its seeds are the claim's)"))
        if s.env and not sweep.is_script:
            errors.append(((*where, "env"), "env applies to a script spec (train.script); a preset stage sets "
                                            "max_wallclock_seconds, seeds, gpus_per_job"))
        for key in s.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                errors.append(((*where, "env", key), "not a valid environment variable name"))
            elif key == "SEED":
                errors.append(((*where, "env", "SEED"), "set by the stage's seeds"))
            elif sweep.is_script and key in env_axes(sweep.train):
                errors.append(((*where, "env", key), f"contradicts train.env.{key}, a searched axis: a stage "
                                                     "cannot fix what the sweep searches"))
            elif key == "MAX_WALLCLOCK_SECONDS" and (sweep.train.max_wallclock_seconds is not None or
                                                     s.max_wallclock_seconds is not None):
                errors.append(((*where, "env", key), "contradicts max_wallclock_seconds (set the cap once)"))
    if stages and sweep.search.kind == "optuna":
        errors.append((("stages",), "stages promote from a grid or random screen, not an optuna study"))
    prune: PruneSpec = sweep.prune
    if prune.active and prune.rungs_s:
        caps = [_cap_of(sweep, s) for s in stages] or [_cap_of(sweep, None)]
        if all(c is not None for c in caps):
            cap = max(caps)
            bad = [r for r in prune.rungs_s if r >= cap]
            if bad:
                errors.append((("prune", "rungs_s"), f"rung {bad[0]:g} s is at or past the training cap {cap:g} s: "
                                                     "no trial would reach it before it ends"))
    if errors:
        fail(errors, "Sweep")
