"""Running a staged sweep: one run of the driver per stage, the next stage over what the one
before promoted (orchestrator.plan.stages). The budget is the whole sweep's: each stage gets what
the stages before it left. A rerun reuses every finished stage's jobs and resumes at the first
stage with work left (a stage whose jobs MLflow holds never starts Ray)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

__all__ = ["run_stages"]


def run_stages(sweep: Any, workspace: Path, prepare: Callable[[Any], Any], runner: Callable,
               say: Callable[[str], None], records: list | None = None) -> list[tuple[Any, Any]]:
    """Run every stage; returns [(plan, report)] of the stages that ran. `prepare(plan)` is
    orchestrator.run.start.prepare_sweep bound to the CLI's options; `runner` its run function.
    A last stage with `reproduce: true` appends to `records` one ReproduceResult per
    configuration it ran (None for one whose seeds did not all finish: the line says why)."""
    from dataclasses import replace

    from orchestrator.plan.stages import promote, stage_plan, stage_points
    from orchestrator.spec.script import env_axes
    from orchestrator.spec.spend import BudgetSpec

    points = stage_points(sweep)
    spent_s, done = 0.0, []
    for i, stage in enumerate(sweep.stages):
        plan = stage_plan(sweep, i, points, workspace)
        if sweep.budget is not None:
            left = sweep.budget.gpu_hours - spent_s / 3600.0
            if left <= 0:
                say(f"stage {stage.name}: budget spent; {len(points)} configuration(s) not started")
                break
            plan = replace(plan, budget=BudgetSpec(gpu_hours=left))
        say(f"stage {stage.name} ({i + 1}/{len(sweep.stages)}): {len(points)} configuration(s) x "
            f"{len(plan.jobs) // max(1, len(points))} seed(s) = {len(plan.jobs)} jobs")
        run = prepare(plan)
        try:
            report = runner(plan, run.tracker, run.data_dir, run.work, tokenizer=run.tokenizer)
            if stage.reproduce:  # the last stage (orchestrator.spec.spend): its jobs are the claim's seeds
                found = reproduce_stage(sweep, i, plan, report, run, workspace, say)
                if records is not None:
                    records.extend(found)
        finally:
            run.close(say)
        done.append((plan, report))
        if report.spend is not None:
            spent_s += report.spend.total_s()
        if i + 1 < len(sweep.stages):
            points = promote(sweep, i, plan, report)
            if not points:
                say(f"stage {stage.name} promoted nothing (no configuration finished every seed valid)")
                break
            axes = list(env_axes(sweep.train))  # what differs between configurations
            say(f"stage {stage.name} promotes {len(points)}: " + "; ".join(
                ", ".join(f"{k}={p[k]}" for k in axes) for p in points))
    return done


def reproduce_stage(sweep: Any, index: int, plan: Any, report: Any, run: Any, workspace: Path,
                    say: Callable[[str], None]) -> list:
    """`golf reproduce` of each configuration stage `index` ran, from the jobs it ran (nothing
    reruns): the configuration's env with the stage's seeds, gpus and cap is the reproduction's
    spec (orchestrator.records.script_resolve.spec_reproduction), its jobs' results and logs
    give the statistics and the folder (orchestrator.records.pipeline.record_from_report, the
    one reproduce pipeline, with the script record source). The folder is
    records/track_10min_16mb/<date>_<sweep>_<stage>[_<n>], n = 1 for the stage's best seed mean."""
    from datetime import datetime, timezone
    from types import SimpleNamespace

    from orchestrator.plan.stages import _point_key
    from orchestrator.records.pipeline import ReproduceError, record_from_report
    from orchestrator.records.script_record import ScriptRecord
    from orchestrator.records.script_resolve import spec_reproduction
    from orchestrator.records.write import TRACK_DIR
    from orchestrator.spec.sweep import sweep_from_dict

    stage = sweep.stages[index]
    groups: dict[str, tuple[dict, dict]] = {}
    for ident, point in plan.stage_points.items():
        groups.setdefault(_point_key(point), (point, {}))[1][ident] = report.outcomes[ident]

    def mean_bpb(outs: dict) -> float:
        vals = [(o.result or {}).get("val_bpb") for o in outs.values()]
        ok = [v for v in vals if isinstance(v, (int, float))]
        return sum(ok) / len(ok) if len(ok) == len(vals) and ok else float("inf")

    ordered = sorted(groups.values(), key=lambda g: mean_bpb(g[1]))
    date = datetime.now(timezone.utc).date().isoformat()
    found = []
    for n, (point, outs) in enumerate(ordered, 1):
        d = sweep.model_dump(mode="json", exclude_unset=True)
        for key in ("stages", "prune", "budget", "search"):
            d.pop(key, None)
        t = d["train"]
        t["env"] = {**t.get("env", {}), **point, **stage.env}
        for key in ("seeds", "gpus_per_job", "max_wallclock_seconds"):
            if getattr(stage, key) is not None:
                t[key] = list(stage.seeds) if key == "seeds" else getattr(stage, key)
        rep = spec_reproduction(sweep_from_dict(d), workspace=workspace)
        name = f"{sweep.name}_{stage.name}" + (f"_{n}" if len(ordered) > 1 else "")
        try:
            found.append(record_from_report(ScriptRecord(rep), plan, SimpleNamespace(outcomes=outs), run, name=name,
                                            out=TRACK_DIR, date=date, best_bpb=None, best_loss=None,
                                            workspace=workspace, log_sweep=len(ordered) == 1))
        except ReproduceError as e:
            say(f"stage {stage.name}: no record folder for {name}: {e}")
            found.append(None)
    return found
