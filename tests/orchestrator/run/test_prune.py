"""Pruning, budget and stages of a script sweep through `golf run` (real local Ray, real MLflow
on SQLite, the tiny upstream-style script under torchrun, sleeping per step so its train time is
real): trials stopped on their live curves at equal train time, a budget that stops the sweep,
a reference curve."""
from __future__ import annotations

from pathlib import Path  # noqa: F401

import pytest

from tests.orchestrator.run.prune_e2e import ASHA, LRS, _alive, _golf, _runs, _ws  # noqa: F401


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
