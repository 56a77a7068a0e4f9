"""A GPU-hour budget that stops a script sweep, and a reference curve that stops a run (golf run,
real Ray and MLflow; see test_prune.py)."""
from __future__ import annotations

from pathlib import Path  # noqa: F401

import pytest

from tests.orchestrator.run.prune_e2e import ASHA, LRS, _alive, _golf, _runs, _ws  # noqa: F401


@pytest.mark.slow
def test_a_budget_stops_the_sweep_and_a_larger_one_runs_only_the_rest(tmp_path):
    # 36 GPU-seconds against 6 trials capped at 6 s of training each (80 steps of 0.15 s would take
    # 12 s: the cap binds): they cannot all fit whatever a job's start-up costs, and the first one
    # always starts. (A 54 s budget over 3 s caps assumed ~9 s a job: once jobs got faster, all six
    # fit and nothing was left to stop.)
    ws = _ws(tmp_path, "budget", "budget: {gpu_hours: 0.01}\n")
    spec = ws / "budget.yaml"
    spec.write_text(spec.read_text().replace("seeds: [1]", "seeds: [1]\n  max_wallclock_seconds: 6")
                    .replace("ITERATIONS: 24", "ITERATIONS: 80"))
    args = ["run", "budget.yaml", "--no-progress", "--num-cpus", "2"]
    first, _ = _golf(args, ws)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs, sweeps = _runs(ws, "budget")
    ran = {r.data.params["env.MATRIX_LR"] for r in runs}
    assert 0 < len(ran) < len(LRS), first.stdout[-2000:]
    assert f"budget: {len(LRS) - len(ran)} trial(s) not started" in first.stdout
    total = sweeps[0].data.metrics["gpu_seconds"]
    longest = max(r.data.metrics["gpu_seconds"] for r in runs)
    assert total == pytest.approx(sum(r.data.metrics["gpu_seconds"] for r in runs))
    # within one job's length of the budget (a third more: on 2 loaded CPU cores a job's wall varies that much)
    assert total <= 36 + 1.35 * longest

    spec.write_text(spec.read_text().replace("gpu_hours: 0.01", "gpu_hours: 1"))
    second, _ = _golf(args, ws)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    runs2 = _runs(ws, "budget")[1]
    assert len(runs2) == len(LRS) and {r.data.params["env.MATRIX_LR"] for r in runs2} == {str(x) for x in LRS}
    assert f"{len(ran)} reused" in second.stdout and "golf: budget:" not in second.stdout


@pytest.mark.slow
def test_against_a_reference_folder_stops_a_run_worse_on_purpose_at_the_first_rung(tmp_path):
    ws = _ws(tmp_path, "against", "prune: {against: ref, rungs_s: [0.9, 1.8]}\n", lrs=[0.1])
    spec = ws / "against.yaml"
    spec.write_text(spec.read_text().replace("PID_DIR:", "LOSS_OFFSET: [0, 4], PID_DIR:"))
    (ws / "ref").mkdir()
    for seed, loss in ((1, 7.6), (2, 7.8)):  # a reference a little above the script's own curve
        (ws / "ref" / f"train_seed{seed}.log").write_text("".join(
            f"step:{i}/20 train_loss:{loss - 0.05 * i:.3f} train_time:{250 * i}ms step_avg:250.00ms\n"
            for i in range(1, 21)))
    p, _ = _golf(["run", "against.yaml", "--no-progress", "--num-cpus", "2"], ws)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    runs = {r.data.params["env.LOSS_OFFSET"]: r for r in _runs(ws, "against")[1]}
    assert runs["0"].info.status == "FINISHED"
    bad = runs["4"]
    assert bad.info.status == "KILLED" and bad.data.tags["golf.pruned_at_s"] == "0.9"
    assert bad.data.tags["golf.prune_reason"].startswith("against ref: train_loss")
