"""`golf validate`, `golf schema`, `golf plan` through the CLI dispatcher."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from golf_core.cli import run_cli
from orchestrator.plan.build import load_plan
from tests.orchestrator.spec.test_sweep import EXAMPLES, INVALID, SMOKE, _text

ROOT = Path(__file__).resolve().parents[3]
GOLF = str(Path(sys.executable).with_name("golf"))


def golf(argv: list[str]) -> int:
    # the real dispatcher (run_cli) with this command module: one-line errors, exit 2
    return run_cli("golf", ("orchestrator.cli.spec",), argv)


def _rows(out: str) -> dict[str, list[str]]:
    """The summary table's rows: kind -> [jobs, finished, to run, ...] (first table only)."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.split("│")[1:-1]]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_validate_ok(capsys):
    assert golf(["validate", str(SMOKE)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "ok: 2 train, 4 eval, 46 mix jobs"


@pytest.mark.parametrize("case,path,phrase", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_validate_invalid_prints_one_line_exit_2(tmp_path, capsys, case, path, phrase):
    spec = tmp_path / "bad.yaml"
    spec.write_text(_text(case))
    assert golf(["validate", str(spec)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"{spec}: {path}") and phrase in lines[0], lines[0]
    assert captured.out == ""


def test_validate_several_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert golf(["validate", str(SMOKE), str(bad), str(tmp_path / "missing.yaml")]) == 2
    captured = capsys.readouterr()
    assert f"{SMOKE}: ok: 2 train, 4 eval, 46 mix jobs" in captured.out
    assert captured.err.strip().splitlines() == [f"{bad}: train: required",
                                                 f"{tmp_path / 'missing.yaml'}: no such file"]


def test_schema_validates_every_example(capsys):
    assert golf(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in EXAMPLES:
        jsonschema.validate(json.loads(json.dumps(yaml.safe_load(path.read_text()))), schema)
    assert schema["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9._-]*$"


def test_plan_without_mlflow(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert golf(["plan", str(SMOKE), "--jobs"]) == 0
    out = capsys.readouterr().out
    assert "assuming nothing done" in out and "52 jobs" in out
    assert not (tmp_path / "mlflow.db").exists()  # a plan never creates a store
    for name in ("train/s1337", "eval/s42/e0", "mix/s42/e0/none"):
        assert name in out
    rows = _rows(out)
    assert [rows[k][0] for k in ("train", "eval", "mix", "none", "hashed_target", "normalized", "tilt", "all")] == \
        ["2", "4", "46", "2", "18", "18", "8", "52"]


def test_plan_unreachable_server_is_quick(capsys):
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    assert golf(["plan", str(SMOKE), "--tracking-uri", f"http://127.0.0.1:{port}"]) == 0
    assert time.time() - t0 < 20
    assert "unreachable" in capsys.readouterr().out


def test_plan_bad_spec_exit_2(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SMOKE.read_text().replace("buckets: 262144", "buckets: 1000"))
    assert golf(["plan", str(spec)]) == 2
    assert capsys.readouterr().err.strip() == f"{spec}: mixer.buckets: must be a power of two (got 1000)"


@pytest.mark.slow
def test_plan_counts_finished_runs_from_mlflow(tmp_path, capsys):
    """A FINISHED run tagged with a job's identity counts as done (real MLflow, SQLite store)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plan = load_plan(SMOKE)
    client = MlflowClient(uri)
    exp = client.create_experiment("smoke")
    for job, status in ((plan.by_kind("train")[0], "FINISHED"), (plan.by_kind("eval")[0], "KILLED")):
        run = client.create_run(exp, tags={"golf.identity": job.identity, "golf.kind": job.kind})
        client.set_terminated(run.info.run_id, status)
    assert golf(["plan", str(SMOKE), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["train"][:3] == ["2", "1", "1"]  # jobs, finished, to run
    assert rows["eval"][:3] == ["4", "0", "4"]  # KILLED is not done (2 plain + 2 tilt evals)


def test_golf_entry_point(tmp_path):
    """The installed `golf` script: exit 0 for a good spec, 2 and one line for a bad one."""
    ok = subprocess.run([GOLF, "validate", str(SMOKE)], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("seeds: [1337, 42]", "seeds: []"))
    res = subprocess.run([GOLF, "validate", str(bad)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.strip() == f"{bad}: train.seeds: must not be empty"


def test_plan_and_validate_an_optuna_script_sweep(tmp_path, capsys, monkeypatch):
    """No jobs before it runs: n trials x seeds is the most it runs, and what GPU-hours count."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    spec = tmp_path / "opt.yaml"
    spec.write_text("name: opt\ndata: {path: data/syn}\nsearch: {kind: optuna, n: 5, seed: 1}\n"
                    "train:\n  script: train_gpt.py\n  seeds: [1, 2]\n  gpus_per_job: 8\n"
                    "  max_wallclock_seconds: 600\n  env: {MATRIX_LR: {low: 0.01, high: 0.1, log: true}, "
                    "NUM_LAYERS: [9, 11], WARMUP: 20}\n")
    assert golf(["validate", str(spec)]) == 0
    assert "optuna: 5 trials x 2 seeds = up to 10 script_train jobs" in capsys.readouterr().out
    assert golf(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "5 trials x 2 seeds = up to 10 script_train jobs; MATRIX_LR in [0.01, 0.1] log, " \
           "NUM_LAYERS in {9, 11}" in " ".join(out.split())
    assert "WARMUP=20" in out and "MATRIX_LR=" not in out  # the shared env, not a searched value
    row = _rows(out)["script_train (optuna)"]
    assert row[:3] == ["up to 10", "0", "10"] and row[3:5] == ["8", "8"]
    # 10 jobs x 8 GPUs x (the 600 s cap + start-up) ~ 14 GPU-hours, the same to run and in all
    assert row[5] == row[6] and 13.3 < float(row[6]) < 15


def test_plan_and_validate_a_staged_sweep_show_each_stage_and_the_worst_case(tmp_path, capsys, monkeypatch):
    """Stage 1's jobs exactly, a later stage at most top-k (or a fraction) x its seeds; the worst
    case sums every stage's jobs to their caps, against the budget."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    spec = tmp_path / "staged.yaml"
    spec.write_text("name: staged\ndata: {path: data/syn}\nbudget: {gpu_hours: 20}\n"
                    "train:\n  script: train_gpt.py\n  seeds: [1]\n  env: {MATRIX_LR: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}\n"
                    "stages:\n"
                    "  - {name: screen, gpus_per_job: 1, env: {MAX_WALLCLOCK_SECONDS: 120}, promote: {fraction: 0.5}}\n"
                    "  - {name: confirm, seeds: [1, 2], gpus_per_job: 8, max_wallclock_seconds: 600, promote: {top: 1}}\n"
                    "  - {name: final, seeds: [1, 2, 3], gpus_per_job: 8, max_wallclock_seconds: 600}\n")
    # screen 6 x 1 GPU x 120 s = 0.2 h; confirm 3 x 2 x 8 x 600 s = 8 h; final 1 x 3 x 8 x 600 s = 4 h
    assert golf(["validate", str(spec)]) == 0
    assert capsys.readouterr().out.strip() == (
        "ok: 3 stages: screen 6 configuration(s) x 1 seed(s) = 6 jobs; confirm at most 3 configuration(s) x "
        "2 seed(s) = 6 jobs; final at most 1 configuration(s) x 3 seed(s) = 3 jobs; worst case 12.20 GPU-h; "
        "budget 20 GPU-h (fits)")
    assert golf(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["screen"] == ["6", "1", "6", "fraction 0.5", "0.20"]
    assert rows["confirm"] == ["at most 3", "2", "at most 6", "top 1", "8.00"]
    assert rows["final"] == ["at most 1", "3", "at most 3", "-", "4.00"]
    assert "worst case (every job to its training cap, or its timeout when uncapped): " \
           "12.20 GPU-h; budget 20 GPU-h (fits)" in " ".join(out.split())
    assert "jobs (grid search)" not in out and "no MAX_WALLCLOCK_SECONDS" not in out  # not the unstaged grid
