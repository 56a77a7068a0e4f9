"""Optuna over a script's env through `golf run` (real local Ray, a real `mlflow server` on
loopback, the tiny upstream-style script under torchrun): every trial is a script_train run of
its own, trials run side by side, a rerun tells the study what MLflow has and runs only new trials."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from golf_core.logparse import parse_line
from tests.orchestrator.run.test_script_jobs import SCRIPT, _golf

LOW, HIGH = 0.01, 0.2
SPEC = f"""\
name: NAME
data: {{path: data/syn, synthetic_train_tokens: 300000, synthetic_val_tokens: 60000}}
train:
  script: scripts/train_gpt.py
  seeds: [1]
  env: {{MATRIX_LR: {{low: {LOW}, high: {HIGH}, log: true}}, ITERATIONS: 4, VAL_LOSS_EVERY: 2}}
search: {{kind: optuna, n: N, seed: 3}}
"""


def _runs(uri: str, name: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    runs = c.search_runs([c.get_experiment_by_name(name).experiment_id], "", max_results=1000)
    return c, [r for r in runs if r.data.tags.get("golf.kind") == "script_train"], \
        [r for r in runs if r.data.tags.get("golf.kind") == "sweep"]


@pytest.mark.slow
def test_golf_run_optuna_over_env_trials_are_jobs_and_a_rerun_resumes_the_study(tmp_path, mlflow_server):
    name = f"opt-{tmp_path.name}".lower()[:100]  # the tests share the server's store
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "train_gpt.py")
    spec = tmp_path / "opt.yaml"
    spec.write_text(SPEC.replace("NAME", name).replace("N,", "3,"))
    args = ["run", "opt.yaml", "--no-progress", "--num-cpus", "2", "--tracking-uri", mlflow_server.uri]

    val = _golf(["validate", "opt.yaml"], tmp_path)[0]
    assert val.returncode == 0 and "optuna: 3 trials x 1 seeds = up to 3 script_train jobs" in val.stdout
    first, t_first = _golf(args, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs, sweeps = _runs(mlflow_server.uri, name)
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(int(r.data.tags["golf.trial"]) for r in runs) == [0, 1, 2]
    assert len({r.data.tags["golf.study"] for r in runs}) == 1
    lrs = [float(r.data.params["env.MATRIX_LR"]) for r in runs]
    assert len(set(lrs)) == 3 and all(LOW <= x <= HIGH for x in lrs)
    for r in runs:  # each trial's value is its run's val_bpb: the last score line of its log
        log = Path(c.download_artifacts(r.info.run_id, "train.log", str(tmp_path / "dl" / r.info.run_id)))
        scores = [e for x in log.read_text().splitlines() if (e := parse_line(x)) is not None and e.kind == "score"]
        assert r.data.metrics["val_bpb"] == scores[-1].values["val_bpb"]
        assert f"MATRIX_LR={r.data.params['env.MATRIX_LR']} -> val_bpb {r.data.metrics['val_bpb']:.6f}" in first.stdout
    by_trial = {int(r.data.tags["golf.trial"]): r for r in runs}
    assert by_trial[1].info.start_time < by_trial[0].info.end_time  # two CPUs: trials side by side
    best = min(runs, key=lambda r: r.data.metrics["val_bpb"])
    (parent,) = sweeps
    assert parent.data.tags["golf.best_trial"] == best.data.tags["golf.trial"]
    assert parent.data.tags["golf.best_trial_env"] == f"MATRIX_LR={best.data.params['env.MATRIX_LR']}"
    assert parent.data.metrics["best_trial_val_bpb"] == best.data.metrics["val_bpb"]
    assert f"best trial {best.data.tags['golf.trial']}: MATRIX_LR=" in first.stdout

    again, t_again = _golf(args, tmp_path)  # the same n: the study is told 3 trials, nothing runs
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "told 3 finished trial(s)" in again.stdout and "3 reused" in again.stdout
    assert "ray:" not in again.stdout and len(_runs(mlflow_server.uri, name)[1]) == 3

    spec.write_text(SPEC.replace("NAME", name).replace("N,", "4,"))  # one more trial: exactly one new job
    more, t_more = _golf(args, tmp_path)
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert "told 3 finished trial(s)" in more.stdout and "1 finished, 3 reused" in more.stdout
    runs = _runs(mlflow_server.uri, name)[1]
    assert sorted(int(r.data.tags["golf.trial"]) for r in runs) == [0, 1, 2, 3]
    assert len({r.data.params["env.MATRIX_LR"] for r in runs}) == 4
    print(f"golf run optuna 3 trials: {t_first:.1f} s, rerun {t_again:.1f} s, n=4 {t_more:.1f} s")
