"""Helpers of the end-to-end pruning, budget and stage tests (test_prune*.py: one file per
sweep shape, so pytest-xdist's --dist loadfile spreads them over both test processes)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.orchestrator.run.test_script_jobs import SCRIPT, _golf  # noqa: F401 - the prune tests' golf call

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
