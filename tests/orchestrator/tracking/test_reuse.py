"""Reuse across experiments (real local Ray, real `mlflow server`, the fake runner): a plan whose
jobs have FINISHED runs in another experiment runs nothing and shows them as child runs tagged
golf.reused_from; a rerun adds no second copy; reuse=False (`--no-reuse`) recomputes, and the
recomputed runs finish FINISHED beside the earlier ones."""
from __future__ import annotations

import dataclasses
from collections import Counter

from mlflow.tracking import MlflowClient

from tests.orchestrator.run.test_driver import _run
from tests.workers.fakes import small_plan


def _children(uri, name):
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(name)
    return [r for r in c.search_runs([exp.experiment_id], "", max_results=1000) if "golf.identity" in r.data.tags]


def test_reuse_across_experiments_then_no_reuse(ray_local, mlflow_server, tmp_path):
    plan = small_plan("xreuse", seeds=(1,), alphas=(0.1,))
    first = _run(plan, mlflow_server, tmp_path / "a")
    assert first.counts() == Counter(finished=len(plan.jobs))
    orig = {r.data.tags["golf.identity"]: r for r in _children(mlflow_server.uri, "xreuse")}

    copy = dataclasses.replace(plan, sweep_name="xreuse-copy", sweep_identity="c" * 64)
    second = _run(copy, mlflow_server, tmp_path / "b")
    assert second.counts() == Counter(reused=len(plan.jobs))  # nothing ran
    kids = _children(mlflow_server.uri, "xreuse-copy")
    assert len(kids) == len(plan.jobs)
    for r in kids:
        src = orig[r.data.tags["golf.identity"]]
        assert r.data.tags["golf.reused_from"] == src.info.run_id and r.info.status == "FINISHED"
        assert r.data.metrics.get("val_bpb") == src.data.metrics.get("val_bpb")
    for o in second.outcomes.values():  # dependents would fetch files from the computing run
        assert o.run_id == orig[o.job.identity].info.run_id

    third = _run(copy, mlflow_server, tmp_path / "c")  # a rerun: reused, and no second copy
    assert third.counts() == Counter(reused=len(plan.jobs))
    assert len(_children(mlflow_server.uri, "xreuse-copy")) == len(plan.jobs)

    forced = _run(copy, mlflow_server, tmp_path / "d", reuse=False)
    assert forced.counts() == Counter(finished=len(plan.jobs))
    kids = _children(mlflow_server.uri, "xreuse-copy")
    computed = [r for r in kids if "golf.reused_from" not in r.data.tags]
    assert len(computed) == len(plan.jobs) and all(r.info.status == "FINISHED" for r in computed)
