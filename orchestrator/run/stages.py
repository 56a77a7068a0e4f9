"""Running a staged sweep: one run of the driver per stage, the next stage over what the one
before promoted (orchestrator.plan.stages). The budget is the whole sweep's: each stage gets what
the stages before it left. A rerun reuses every finished stage's jobs and resumes at the first
stage with work left (a stage whose jobs MLflow holds never starts Ray)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

__all__ = ["run_stages"]


def run_stages(sweep: Any, workspace: Path, prepare: Callable[[Any], Any], runner: Callable,
               say: Callable[[str], None]) -> list[tuple[Any, Any]]:
    """Run every stage; returns [(plan, report)] of the stages that ran. `prepare(plan)` is
    orchestrator.run.sweep.prepare_sweep bound to the CLI's options; `runner` its run function."""
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
            report = runner(plan, run.tracker, run.data_dir, run.work)
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
