"""Batched mix points on a real local Ray and `mlflow server` (issue 21): each point its own
FINISHED child run with its own identity and result, as when they ran one call each."""
from __future__ import annotations

from collections import Counter

import pytest

ray = pytest.importorskip("ray")

from tests.orchestrator.run.test_driver import _by_identity, _run, _runs  # noqa: E402
from tests.workers.fakes import small_plan  # noqa: E402


def test_a_grid_of_mixes_runs_in_batches_each_its_own_run(ray_local, mlflow_server, tmp_path):
    alphas = tuple(round(0.02 * i, 2) for i in range(1, 21))
    plan = small_plan("batched", seeds=(3,), alphas=alphas, modes=("normalized", "hashed_target"))
    report = _run(plan, mlflow_server, tmp_path)
    assert report.counts() == Counter(finished=len(plan.jobs))
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    mixes = [o for o in report.outcomes.values() if o.job.kind == "mix"]
    assert len(mixes) == 40 and len({o.result["val_bpb"] for o in mixes}) > 1
    for o in mixes:
        (run,) = runs[o.job.identity]
        # legal first (issue 19): a hashed_target score is logged as val_bpb_noncompliant
        key = "val_bpb_noncompliant" if o.job.mixer.mode == "hashed_target" else "val_bpb"
        assert run.info.status == "FINISHED" and run.data.metrics[key] == o.result["val_bpb"]
        assert o.result["mixer"]["alpha_base"] == o.job.mixer.alpha_base
        assert run.data.tags["golf.compliant"] == ("false" if o.job.mixer.mode == "hashed_target" else "true")
    # one n-gram pass per (worker, table key), not one per point
    assert sum(o.result["ngram_passes"] for o in mixes) <= 2 * len({o.output["actor_pid"] for o in mixes})


def test_prefetch_gets_a_turns_results_in_one_call_and_errors_stay_per_ref(ray_local):
    """RayLauncher.prefetch (issue 21): the values of done refs fetched in one ray.get and
    handed out by get(); a turn holding a failed ref falls back to one get per ref, so the
    error is raised for that ref alone (as JobFailed) and the others still come back."""
    from orchestrator.run.ray_launcher import RayLauncher
    from workers.contract import JobFailed

    @ray.remote(num_returns=3)
    def three(x):
        return x, x + 1, x + 2

    @ray.remote
    def boom():
        raise ValueError("bad point")

    launcher = RayLauncher(None, data_dir=".", work_dir=None, vocab_size=8)
    refs = list(three.remote(10))
    ray.wait(refs, num_returns=3)
    launcher.prefetch(refs)
    assert set(launcher._fetched) == set(refs)  # fetched together
    assert [launcher.get(r) for r in refs] == [10, 11, 12] and not launcher._fetched
    bad = boom.remote()
    more = list(three.remote(20))
    ray.wait([bad, *more], num_returns=4)
    launcher.prefetch([bad, *more])
    assert launcher._fetched == {}  # one failed: nothing prefetched
    assert [launcher.get(r) for r in more] == [20, 21, 22]
    with pytest.raises(JobFailed, match="bad point"):
        launcher.get(bad)
