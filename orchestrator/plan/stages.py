"""A staged script sweep (`stages:`): stage n+1 runs only the configurations stage n promotes.

Stage 0 runs every env point of the sweep (grid or random); each later stage runs the points the
stage before promoted (`promote: {top: k}` or `{fraction: f}`, by the stage's seed-mean val_bpb;
a configuration with a failed, pruned or invalid seed is not promoted). A stage overrides the
train section's seeds, gpus_per_job, cap and env values (`env`: e.g. a shorter cap to screen).
Each stage's jobs carry the stage's name (`ScriptTrainJob.stage`, tag `golf.stage`) in their
identity, so they are their own jobs even where a stage repeats another's settings; a rerun
reuses every finished stage and resumes at the first with work left.
"""
from __future__ import annotations

import hashlib
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.plan.build import Plan, _finish_plan, _with_reference, data_identity, identity_of
from orchestrator.plan.script import SCRIPT_CODE_VERSION, load_bundle, script_job
from orchestrator.spec.script import env_axes, env_points, env_str

__all__ = ["StageOutline", "promote", "stage_outline", "stage_plan", "stage_points"]


def stage_points(sweep: Any) -> list[dict[str, Any]]:
    """Stage 0's configurations: the sweep's env points."""
    return env_points(sweep.train, sweep.search)


def _point_key(point: dict[str, Any]) -> str:
    return hashlib.sha256(repr(sorted((k, env_str(v)) for k, v in point.items())).encode()).hexdigest()[:16]


def stage_plan(sweep: Any, index: int, points: list[dict[str, Any]], workspace: str | Path = ".") -> Plan:
    """The plan of stage `index` over `points`; its jobs' `config["point"]`-like origin is kept in
    `Plan.stage_points` (job identity -> point) for `promote`."""
    stage = sweep.stages[index]
    base = sweep.train
    upd: dict[str, Any] = {}
    if stage.seeds is not None:
        upd["seeds"] = stage.seeds
    if stage.gpus_per_job is not None:
        upd["gpus_per_job"] = stage.gpus_per_job
    if stage.max_wallclock_seconds is not None:
        upd["max_wallclock_seconds"] = stage.max_wallclock_seconds
    train = base.model_copy(update=upd)
    data = sweep.data_config()
    data_id = data_identity(data, workspace)
    bundle = load_bundle(train, workspace)
    shown = list(env_axes(base))
    jobs, origin = [], {}
    for point in points:
        for seed in train.seeds:
            job = script_job(train, bundle, {**point, **stage.env}, seed, vocab_size=data.vocab_size,
                             data_id=data_id, data_path=data.path, shown=shown)
            ident = identity_of("script_train", {"job": job.identity, "stage": stage.name}, SCRIPT_CODE_VERSION)
            job = replace(job, identity=ident, name=f"{stage.name}/{job.name}", stage=stage.name)
            jobs.append(job)
            origin[ident] = point
    plan = _with_reference(_finish_plan(sweep, tuple(jobs), data, data_id), sweep, workspace)
    key = hashlib.sha256(f"{plan.sweep_identity}/{stage.name}".encode()).hexdigest()
    return replace(plan, sweep_identity=key, stage=stage.name, stage_points=origin)


def promote(sweep: Any, index: int, plan: Plan, report: Any) -> list[dict[str, Any]]:
    """The points stage `index` promotes: the best by seed-mean val_bpb over the stage's seeds
    (only configurations whose every seed finished valid), `top` k or `fraction` f of them."""
    by_point: dict[str, list] = {}
    points: dict[str, dict] = {}
    for ident, point in plan.stage_points.items():
        k = _point_key(point)
        points[k] = point
        by_point.setdefault(k, []).append(report.outcomes[ident])
    scored = []
    for k, outs in by_point.items():
        vals = [(o.result or {}).get("val_bpb") for o in outs]
        ok = all(str(o.state) in ("finished", "reused") and (o.verdict is None or o.verdict.valid)
                 and isinstance(v, (int, float)) for o, v in zip(outs, vals))
        if ok:
            scored.append((statistics.fmean(vals), k))
    scored.sort()
    n = sweep.stages[index].promote.count(len(by_point))
    return [points[k] for _, k in scored[:n]]


@dataclass(frozen=True)
class StageOutline:
    """What one stage of a staged sweep runs, before it runs: stage 0's configurations exactly,
    a later stage's at most what the stage before promotes (`exact` False)."""

    name: str
    configurations: int
    seeds: int
    exact: bool
    worst_gpu_hours: float | None  # every job to its cap (or timeout); None: no plan built, uncapped

    @property
    def jobs(self) -> int:
        return self.configurations * self.seeds


def stage_outline(sweep: Any, workspace: str | Path | None = None) -> list[StageOutline]:
    """Per stage: configurations x seeds and the worst case in GPU-hours. With a workspace the
    stages' plans are built (the script is read) and each job's worst case is
    orchestrator.run.spend's (GPUs x cap, else timeout; a later stage counts its most expensive
    configurations); without one, only the spec (gpus_per_job x the stage's cap, None uncapped)."""
    from orchestrator.spec.spend import _cap_of

    points = stage_points(sweep)
    out, n = [], len(points)
    for i, stage in enumerate(sweep.stages):
        if i:
            n = sweep.stages[i - 1].promote.count(n)
        seeds = len(stage.seeds if stage.seeds is not None else sweep.train.seeds)
        if workspace is None:
            cap = _cap_of(sweep, stage)
            gpus = stage.gpus_per_job or sweep.train.gpus_per_job
            worst = None if cap is None else n * seeds * gpus * cap / 3600.0
        else:
            from orchestrator.run.spend import cap_of, gpus_of

            plan = stage_plan(sweep, i, points, workspace)
            per: dict[str, float] = {}
            for job in plan.jobs:
                k = _point_key(plan.stage_points[job.identity])
                per[k] = per.get(k, 0.0) + gpus_of(job) * cap_of(job)
            worst = sum(sorted(per.values(), reverse=True)[:n]) / 3600.0
        out.append(StageOutline(stage.name, n, seeds, i == 0, worst))
    return out
