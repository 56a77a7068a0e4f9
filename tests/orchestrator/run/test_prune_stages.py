"""Staged promotion of a script sweep through golf run (real Ray and MLflow; see test_prune.py)."""
from __future__ import annotations

from pathlib import Path  # noqa: F401

import pytest

from tests.orchestrator.run.prune_e2e import ASHA, LRS, _alive, _golf, _runs, _ws  # noqa: F401


@pytest.mark.slow
def test_stages_confirm_runs_the_screens_top_k_and_a_rerun_resumes_at_confirm(tmp_path):
    stages = ("stages:\n  - {name: screen, seeds: [1], env: {ITERATIONS: 8}, promote: {top: 2}}\n"
              "  - {name: confirm, seeds: [1, 2], reproduce: true}\n")
    # three configurations: top 2 of 3 leaves one behind, as 2 of 4 did, with one job less
    ws = _ws(tmp_path, "staged", stages, lrs=[0.3, 0.01, 0.001])
    spec = ws / "staged.yaml"
    spec.write_text(spec.read_text().replace("STEP_SLEEP: 0.15", "STEP_SLEEP: 0"))
    args = ["run", "staged.yaml", "--no-progress", "--num-cpus", "2"]
    first, _ = _golf(args, ws)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs, _ = _runs(ws, "staged")
    screen = [r for r in runs if r.data.tags.get("golf.stage") == "screen"]
    confirm = [r for r in runs if r.data.tags.get("golf.stage") == "confirm"]
    assert len(screen) == 3 and all(r.data.params["env.ITERATIONS"] == "8" for r in screen)
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
    assert "reused=3" in again.stdout and "finished=4" in again.stdout, again.stdout[-3000:]  # screen, confirm
    assert len([r for r in _runs(ws, "staged")[1] if r.data.tags.get("golf.stage") == "confirm"]) == 4
