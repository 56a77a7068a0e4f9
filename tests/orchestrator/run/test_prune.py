"""Pruning, budget and stages of a script sweep through `golf run` (real local Ray, real MLflow
on SQLite, the tiny upstream-style script under torchrun, sleeping per step so its train time is
real): trials stopped on their live curves at equal train time, a budget that stops the sweep,
a reference curve."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.orchestrator.run.test_script_jobs import SCRIPT, _golf

# the best learning rate first: later, worse trials reach the rung behind it and are cut
LRS = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
SPEC = """\
name: NAME
data: {path: data/syn, synthetic_train_tokens: 300000, synthetic_val_tokens: 60000}
train:
  script: scripts/train_gpt.py
  seeds: [1]
  env: {MATRIX_LR: LRS, ITERATIONS: 24, VAL_LOSS_EVERY: 0, STEP_SLEEP: 0.15, PID_DIR: PIDS}
PRUNE
"""
ASHA = "prune: {kind: asha, rungs_s: [0.9], eta: 2, min_trials: 2}\n"


def _ws(tmp_path: Path, name: str, extra: str, lrs=LRS) -> Path:
    ws = tmp_path / name
    (ws / "scripts").mkdir(parents=True)
    (ws / "pids").mkdir()
    shutil.copy(SCRIPT, ws / "scripts" / "train_gpt.py")
    (ws / f"{name}.yaml").write_text(SPEC.replace("NAME", name).replace("LRS", str(lrs))
                                     .replace("PIDS", str(ws / "pids")).replace("PRUNE\n", extra))
    return ws


def _runs(ws: Path, name: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], "", max_results=1000)
    return (c, [r for r in runs if r.data.tags.get("golf.kind") == "script_train"],
            [r for r in runs if r.data.tags.get("golf.kind") == "sweep"])


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_asha_prunes_trials_on_their_live_curves_and_a_rerun_runs_nothing(tmp_path):
    ws = _ws(tmp_path, "asha", ASHA)
    args = ["run", "asha.yaml", "--no-progress", "--num-cpus", "2"]
    first, took = _golf(args, ws)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs, sweeps = _runs(ws, "asha")
    pruned = [r for r in runs if r.data.tags.get("golf.pruned") == "true"]
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert pruned and done and len(pruned) + len(done) == len(LRS), \
        [(r.info.status, r.data.tags.get("golf.reason")) for r in runs]
    # a decision that lands after a trial's script already exited 0 with its score line (a loaded
    # machine) stops nothing: that run trained to its end, so it is FINISHED, saying so
    late = [r for r in done if "golf.prune_late" in r.data.tags]
    for r in late:
        assert r.data.tags["golf.prune_late"].startswith("finished before the stop landed (asha: train_loss")
        assert "val_bpb" in r.data.metrics and "golf.pruned" not in r.data.tags
    for r in pruned:
        assert r.info.status == "KILLED" and r.data.tags["golf.pruned_at_s"] == "0.9"
        assert r.data.tags["golf.prune_reason"].startswith("asha: train_loss")
        assert "train.log" in {a.path for a in c.list_artifacts(r.info.run_id)}  # the partial log
        log = Path(c.download_artifacts(r.info.run_id, "train.log", str(tmp_path / "dl" / r.info.run_id)))
        assert "train_loss:" in log.read_text()  # what it logged until it was stopped
        assert float(r.data.tags["golf.stop_s"]) < 10  # decision -> every process gone -> run closed
        assert r.data.metrics["gpu_seconds"] > 0
        assert c.get_metric_history(r.info.run_id, "train_loss")  # its curve stays
    # the pruned trials trained for less time than the finished ones
    t_pruned = max(max(m.value for m in c.get_metric_history(r.info.run_id, "curve_train_time_s")) for r in pruned)
    assert t_pruned < min(r.data.metrics["train_time_s"] for r in done)
    # every process of every job is gone; a pruned job's slot was taken by the next trial at once
    pids = [int(f.read_text()) for f in (ws / "pids").iterdir()]
    assert len(pids) == len(LRS) and not [p for p in pids if _alive(p)]
    starts = sorted(r.info.start_time for r in runs)
    for r in pruned:
        later = [s for s in starts if s >= r.info.end_time - 2000]
        assert not later or later[0] - r.info.end_time < 8000, "the freed slot stayed idle"
    # the parent: GPU-hours spent and what a full grid would have cost, trials pruned per rung
    m = sweeps[0].data.metrics
    assert m["trials_pruned"] == len(pruned) == m["trials_pruned.rung_0.9s"]
    assert m["gpu_hours_spent"] < m["gpu_hours_full"]
    assert abs(m["gpu_seconds"] - sum(r.data.metrics["gpu_seconds"] for r in runs)) < 1e-6 * m["gpu_seconds"] + 1e-3
    assert "prune_curves.png" in {a.path for a in c.list_artifacts(sweeps[0].info.run_id)}
    best = min(done, key=lambda r: r.data.metrics["val_bpb"])

    again, took_again = _golf(args, ws)  # the decisions are recorded: nothing runs, Ray is not started
    assert again.returncode == 0 and "ray:" not in again.stdout, again.stdout[-2000:]
    assert len(_runs(ws, "asha")[1]) == len(LRS)

    # the full grid on the same seeds (the pruned trials run now; the finished ones are reused)
    (ws / "grid.yaml").write_text((ws / "asha.yaml").read_text().replace("name: asha", "name: grid")
                                  .replace(ASHA, ""))
    # 4 at once: the jobs mostly sleep (STEP_SLEEP) and nothing is judged, so 2 cores can take them
    grid, took_grid = _golf(["run", "grid.yaml", "--no-progress", "--num-cpus", "4"], ws)
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-3000:]
    g = _runs(ws, "grid")[1]
    assert len(g) == len(LRS)
    assert min(g, key=lambda r: r.data.metrics["val_bpb"]).data.params["env.MATRIX_LR"] == \
        best.data.params["env.MATRIX_LR"]
    print(f"asha over {len(LRS)} trials: {len(pruned)} pruned ({len(late)} late, kept finished), {took:.1f} s; rerun {took_again:.1f} s; "
          f"grid {took_grid:.1f} s")


@pytest.mark.slow
def test_a_budget_stops_the_sweep_and_a_larger_one_runs_only_the_rest(tmp_path):
    ws = _ws(tmp_path, "budget", "budget: {gpu_hours: 0.015}\n")  # 54 GPU-seconds: some of the 6 trials
    spec = ws / "budget.yaml"
    spec.write_text(spec.read_text().replace("seeds: [1]", "seeds: [1]\n  max_wallclock_seconds: 3"))
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
    assert total <= 54 + 1.35 * longest

    spec.write_text(spec.read_text().replace("gpu_hours: 0.015", "gpu_hours: 1"))
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


@pytest.mark.slow
def test_stages_confirm_runs_the_screens_top_k_and_a_rerun_resumes_at_confirm(tmp_path):
    stages = ("stages:\n  - {name: screen, seeds: [1], env: {ITERATIONS: 8}, promote: {top: 2}}\n"
              "  - {name: confirm, seeds: [1, 2], reproduce: true}\n")
    ws = _ws(tmp_path, "staged", stages, lrs=[0.3, 0.1, 0.01, 0.001])
    spec = ws / "staged.yaml"
    spec.write_text(spec.read_text().replace("STEP_SLEEP: 0.15", "STEP_SLEEP: 0"))
    args = ["run", "staged.yaml", "--no-progress", "--num-cpus", "2"]
    first, _ = _golf(args, ws)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs, _ = _runs(ws, "staged")
    screen = [r for r in runs if r.data.tags.get("golf.stage") == "screen"]
    confirm = [r for r in runs if r.data.tags.get("golf.stage") == "confirm"]
    assert len(screen) == 4 and all(r.data.params["env.ITERATIONS"] == "8" for r in screen)
    top = {r.data.params["env.MATRIX_LR"] for r in sorted(screen, key=lambda r: r.data.metrics["val_bpb"])[:2]}
    assert {(r.data.params["env.MATRIX_LR"], r.data.params["env.SEED"]) for r in confirm} == \
        {(lr, s) for lr in top for s in ("1", "2")}
    assert all(r.data.params["env.ITERATIONS"] == "24" for r in confirm)
    assert not {r.data.tags["golf.identity"] for r in screen} & {r.data.tags["golf.identity"] for r in confirm}
    # reproduce: true: per confirmed configuration, `golf reproduce`'s statistics and record folder
    # from the confirm jobs themselves (nothing reruns), the best seed mean first (_1)
    assert first.stdout.count("golf: against the best 1.") == 2, first.stdout[-3000:]
    folders = sorted((ws / "records" / "track_10min_16mb").iterdir())
    assert [f.name.split("_", 1)[1] for f in folders] == ["staged_confirm_1", "staged_confirm_2"]
    best_lr = min(top, key=lambda lr: sum(r.data.metrics["val_bpb"] for r in confirm
                                          if r.data.params["env.MATRIX_LR"] == lr))
    for r in confirm:
        if r.data.params["env.MATRIX_LR"] == best_lr:
            log = c.download_artifacts(r.info.run_id, "train.log", str(tmp_path / "dl" / r.info.run_id))
            assert (folders[0] / f"train_seed{r.data.params['env.SEED']}.log").read_bytes() == Path(log).read_bytes()
    assert f"MATRIX_LR={best_lr} " in (folders[0] / "README.md").read_text()

    for r in confirm:  # as if the sweep had stopped after its screen stage
        c.delete_run(r.info.run_id)
    again, _ = _golf(args, ws)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reused=4" in again.stdout and "finished=4" in again.stdout, again.stdout[-3000:]  # screen, confirm
    assert len([r for r in _runs(ws, "staged")[1] if r.data.tags.get("golf.stage") == "confirm"]) == 4
