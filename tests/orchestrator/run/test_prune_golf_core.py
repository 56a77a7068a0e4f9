"""Pruning golf_core's own training (a preset sweep: one configuration, its seeds one trial):
its loop's on_progress events (elapsed_s = train time) reach the prune hook, and a trial worse
than a reference curve is stopped at the first rung, its workers released, its dependents skipped (real local Ray and `mlflow server`, the fake
job functions of tests/workers/fakes.py, slowed so the curve streams)."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

pytest.importorskip("ray")

from orchestrator.run.driver import run_plan  # noqa: E402
from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.spec.spend import PruneSpec  # noqa: E402
from orchestrator.tracking import Tracker  # noqa: E402
from tests.workers.fakes import FakeRunner, small_plan  # noqa: E402


class SlowCurve(FakeRunner):
    """Reports a step every 0.4 s with its train time, loss 5.0 + 0.5 * seed: seed 2 is worse."""

    def train(self, attempt, data_dir, out_dir, on_progress):
        for s in range(1, 16):
            time.sleep(0.4)
            on_progress({"event": "step", "step": s, "train_loss": 5.0 + 0.5 * attempt.job.seed, "elapsed_s": 0.4 * s})
        return super().train(attempt, data_dir, out_dir, on_progress)


def test_a_golf_core_run_worse_than_the_reference_is_stopped_and_its_worker_freed(ray_local, mlflow_server,
                                                                                  tmp_path):
    from mlflow.tracking import MlflowClient

    plan = small_plan(f"prune-core-{tmp_path.name}", seeds=(0, 2), alphas=(0.1,))
    plan = replace(plan, prune=PruneSpec(against="ref", rungs_s=(1.0,)),
                   reference={"1": [(0.0, 5.2), (5.0, 5.2)], "2": [(0.0, 5.4), (5.0, 5.4)]})
    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
    try:
        report = run_plan(plan, tracker, DriverOptions(runner=SlowCurve(str(tmp_path)), work_dir=str(tmp_path / "w")))
    finally:
        assert tracker.close(timeout=60)
    by = {(o.job.kind, o.job.seed): o for o in report.outcomes.values()}
    assert by[("train", 0)].state == by[("train", 2)].state == "pruned"  # the mean of its seeds: 5.5 > 5.44
    assert by[("eval", 2)].state == by[("eval", 0)].state == "skipped"
    c = MlflowClient(mlflow_server.uri)
    for seed in (0, 2):
        att = by[("train", seed)].attempts
        if not att:  # its trial was stopped before this seed started
            continue
        run = c.get_run(att[-1]["run_id"])
        assert run.info.status == "KILLED" and run.data.tags["golf.pruned_at_s"] == "1"
        assert run.data.tags["golf.prune_reason"].startswith("against ref: train_loss")
        assert run.data.metrics["gpu_seconds"] > 0  # charged (the worker's start included: its GPU was held)
        # its curve streamed while it trained stays with it (issue 17: "its curve stays")
        curve = c.get_metric_history(run.info.run_id, "train_loss")
        assert curve and all(m.value == 5.0 + 0.5 * seed for m in curve)
        assert c.get_metric_history(run.info.run_id, "curve_train_time_s")
