"""Script training jobs: the spec's `train.script`, their identities, and `golf run` end to end
(real local Ray, real MLflow on SQLite, the tiny upstream-style script under torchrun)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from golf_core.logparse import parse_line
from orchestrator.plan.build import build_plan
from orchestrator.spec.sweep import SpecError, sweep_from_dict

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "fixtures" / "scripts" / "train_gpt_tiny.py"
GOLF = [sys.executable, "-m", "orchestrator.cli.main"]


def _spec(**train) -> dict:
    return {"name": "byo", "data": {"path": "data/syn"},
            "train": {"script": "train_gpt.py", "seeds": [1, 2], **train}}


def _errors(data: dict) -> list[str]:
    with pytest.raises(SpecError) as e:
        sweep_from_dict(data)
    return e.value.lines


# ------------------------------------------------------------------------------------ spec


def test_script_spec_rules_one_line_each():
    assert any("exactly one of train.preset and train.script" in x
               for x in _errors(_spec(preset="tiny")))
    assert _errors({**_spec(), "eval": {"seq_len": 64}}) == [
        "eval: a script spec has no eval section: the script scores itself (its score line is the result)"]
    assert any(x.startswith("mixer:") for x in _errors({**_spec(), "mixer": {"modes": ["none"]}}))
    lines = _errors(_spec(env={"1BAD": 1, "OK": True, "L": [], "N": {"a": 1}, "X": [1, 1]}))
    assert any(x.startswith("train.env.1BAD: not a valid environment variable name") for x in lines)
    assert any(x.startswith("train.env.OK: must be a string or a number, not a boolean") for x in lines)
    assert "train.env.L: an axis must not be empty" in lines
    assert any(x.startswith("train.env.N: a range is {low, high, log}") for x in lines)
    assert "train.env.X: an axis must not repeat a value" in lines
    assert any("leaves the workspace" in x for x in _errors(_spec(script="../x.py")))
    assert any(x.startswith("train.env.MATRIX_LR: a {low, high} range needs search.kind random")
               for x in _errors(_spec(env={"MATRIX_LR": {"low": 0.01, "high": 0.1}})))
    assert any(x.startswith("search: random search needs a searched env variable")
               for x in _errors({**_spec(), "search": {"kind": "random", "n": 3}}))
    assert any("train.env.SEED" in x for x in _errors(_spec(env={"SEED": 3})))


def test_counts_and_env_points():
    s = sweep_from_dict(_spec(env={"A": [1, 2, 3], "B": "x", "C": [0.1, 0.2]}))
    assert s.counts()["script_train"] == 12
    r = sweep_from_dict({**_spec(env={"A": {"low": 1e-3, "high": 1e-1, "log": True}, "B": [1, 2]}),
                         "search": {"kind": "random", "n": 5, "seed": 0}})
    assert r.counts()["script_train"] == 10


def _plan(tmp_path, script_bytes: bytes, code_version="golf-1", **train):
    (tmp_path / "train_gpt.py").write_bytes(script_bytes)
    return build_plan(sweep_from_dict(_spec(**train)), tmp_path, code_version=code_version)


def test_identity_is_the_script_bytes_env_seed_ranks_not_golfs_code(tmp_path):
    base = _plan(tmp_path, b"print(1)\n", env={"LR": [0.1, 0.2], "N": 3})
    ids = [j.identity for j in base.jobs]
    assert len(set(ids)) == 4 and {j.kind for j in base.jobs} == {"script_train"}
    job = base.jobs[0]
    assert job.env == {"LR": "0.1", "N": "3", "SEED": "1", "VOCAB_SIZE": "1024"}
    assert job.name == "script/s1/LR=0.1" and job.ranks == job.gpus == 1
    assert [j.identity for j in _plan(tmp_path, b"print(1)\n", "golf-2", env={"LR": [0.1, 0.2], "N": 3}).jobs] == ids
    changed = _plan(tmp_path, b"print(2)\n", env={"LR": [0.1, 0.2], "N": 3})
    assert not set(ids) & {j.identity for j in changed.jobs}  # one byte: every job reruns
    assert _plan(tmp_path, b"print(1)\n", env={"LR": [0.1, 0.2], "N": 4}).jobs[0].identity != ids[0]
    assert _plan(tmp_path, b"print(1)\n", env={"LR": [0.1, 0.2], "N": 3}, gpus_per_job=2).jobs[0].identity != ids[0]
    capped = _plan(tmp_path, b"print(1)\n", env={"LR": [0.1, 0.2], "N": 3}, max_wallclock_seconds=600).jobs[0]
    assert capped.env["MAX_WALLCLOCK_SECONDS"] == "600.0" and capped.identity != ids[0]
    assert capped.timeout_s > 600 + 600  # the cap, the eval budget and a margin


def test_a_record_folder_hashes_every_file_beside_the_script(tmp_path):
    rec = tmp_path / "records" / "r1"
    rec.mkdir(parents=True)
    (rec / "train_gpt.py").write_text("print(1)\n")
    (rec / "README.md").write_text("a")
    spec = {**_spec(script="records/r1")}
    one = build_plan(sweep_from_dict(spec), tmp_path).jobs[0]
    assert one.script.folder and one.script.files == 2
    (rec / "README.md").write_text("b")
    assert build_plan(sweep_from_dict(spec), tmp_path).jobs[0].identity != one.identity
    (rec / "train_gpt.py").unlink()
    with pytest.raises(SpecError, match="holds no train_gpt.py"):
        build_plan(sweep_from_dict(spec), tmp_path)
    with pytest.raises(SpecError, match="no such file"):
        build_plan(sweep_from_dict(_spec(script="missing.py")), tmp_path)


def test_submit_stages_the_script_or_the_record_folder_beside_the_spec(tmp_path):
    from orchestrator.plan.script import stage_script

    ws, stage = tmp_path / "ws", tmp_path / "stage"
    (ws / "records" / "r1").mkdir(parents=True)
    (ws / "records" / "r1" / "train_gpt.py").write_text("print(1)\n")
    (ws / "records" / "r1" / "submission.json").write_text("{}")
    assert stage_script(sweep_from_dict(_spec(script="records/r1")), ws, stage) == "records/r1"
    assert sorted(p.name for p in (stage / "records" / "r1").iterdir()) == ["submission.json", "train_gpt.py"]
    (ws / "train_gpt.py").write_text("print(2)\n")
    assert stage_script(sweep_from_dict(_spec()), ws, stage) == "train_gpt.py"
    assert (stage / "train_gpt.py").read_text() == "print(2)\n"
    opt = sweep_from_dict({**_spec(env={"A": [1, 2]}), "search": {"kind": "optuna", "n": 4}})
    assert opt.counts() == {"script_train": 8}  # up to n trials x 2 seeds
    assert any(x.startswith("search: optuna search needs a searched env variable")
               for x in _errors({**_spec(env={"A": 1}), "search": {"kind": "optuna", "n": 4}}))


# ------------------------------------------------------------------------------------ golf run


def _env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", COLUMNS="120", OMP_NUM_THREADS="1")
    return env


def _golf(args, cwd, timeout=600):
    t0 = time.monotonic()
    p = subprocess.run(GOLF + list(args), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


SPEC = """\
name: byo
data: {path: data/syn, synthetic_train_tokens: 300000, synthetic_val_tokens: 60000}
train:
  script: scripts/train_gpt.py
  seeds: [1, 2]
  env: {MATRIX_LR: [0.05, 0.1], ITERATIONS: 6, VAL_LOSS_EVERY: 3}
"""


def _runs(ws: Path, name: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    exp = c.get_experiment_by_name(name)
    runs = c.search_runs([exp.experiment_id], "", max_results=1000)
    return c, [r for r in runs if r.data.tags.get("golf.kind") == "script_train"]


@pytest.mark.slow
def test_golf_run_sweeps_a_users_script_reuses_it_and_reruns_a_changed_byte(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "train_gpt.py")
    (tmp_path / "byo.yaml").write_text(SPEC)
    first, t_first = _golf(["run", "byo.yaml", "--no-progress"], tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    c, runs = _runs(tmp_path, "byo")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert {(r.data.params["env.MATRIX_LR"], r.data.params["env.SEED"]) for r in runs} == \
        {("0.05", "1"), ("0.05", "2"), ("0.1", "1"), ("0.1", "2")}
    for r in runs:
        log = Path(c.download_artifacts(r.info.run_id, "train.log", str(tmp_path / "dl" / r.info.run_id)))
        scores = [e for x in log.read_text().splitlines() if (e := parse_line(x)) is not None and e.kind == "score"]
        assert r.data.metrics["val_bpb"] == scores[-1].values["val_bpb"]  # the last score line
        assert r.data.tags["golf.valid"] == "true" and r.data.tags["golf.final_tag"] == scores[-1].tag
        curve = c.get_metric_history(r.info.run_id, "train_loss")
        assert sorted(m.step for m in curve) == list(range(1, 7))  # every step once (live + final)
        assert sorted(m.step for m in c.get_metric_history(r.info.run_id, "val_bpb_step")) == [3, 6]
        assert r.data.metrics["artifact_bytes"] > 0 and r.data.metrics["steps"] == 6
        assert "final_model.int8.ptz" in {a.path for a in c.list_artifacts(r.info.run_id)}

    second, t_second = _golf(["run", "byo.yaml", "--no-progress"], tmp_path)
    assert second.returncode == 0 and "4 reused" in second.stdout and "ray:" not in second.stdout
    assert len(_runs(tmp_path, "byo")[1]) == 4

    script = tmp_path / "scripts" / "train_gpt.py"
    script.write_bytes(script.read_bytes() + b"\n")  # one byte
    third, t_third = _golf(["run", "byo.yaml", "--no-progress"], tmp_path)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "4 finished" in third.stdout
    assert len(_runs(tmp_path, "byo")[1]) == 8
    print(f"golf run 4 script jobs: {t_first:.1f} s, rerun {t_second:.1f} s, changed byte {t_third:.1f} s")


@pytest.mark.slow
def test_golf_run_a_failing_and_a_hanging_script_end_failed_with_nothing_left(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "train_gpt.py")
    pid = tmp_path / "pid"
    (tmp_path / "bad.yaml").write_text(SPEC.replace("name: byo", "name: bad").replace("seeds: [1, 2]", "seeds: [1]")
                                       .replace("MATRIX_LR: [0.05, 0.1]", f"TEST_FAIL: ['exit:1', 'hang:{pid}']")
                                       + "  timeout_s: 25\nretries: 2\n")
    p, took = _golf(["run", "bad.yaml", "--no-progress"], tmp_path)
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr[-3000:]
    c, runs = _runs(tmp_path, "bad")
    by = {r.data.params["env.TEST_FAIL"].split(":")[0]: r for r in runs}
    assert len(runs) == 2 and all(r.info.status == "FAILED" for r in runs)  # not retried: the script failed
    assert "exited with 1" in by["exit"].data.tags["golf.reason"]
    assert "TEST_FAIL asked to fail" in by["exit"].data.tags["golf.reason"]
    assert "killed at its timeout after 25 s" in by["hang"].data.tags["golf.reason"]
    assert "train.log" in {a.path for a in c.list_artifacts(by["exit"].info.run_id)}  # kept for debugging
    pids = [int(f.read_text()) for f in tmp_path.glob("pid.*")]
    assert pids and not [x for x in pids if Path(f"/proc/{x}").exists()
                         and Path(f"/proc/{x}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    print(f"golf run failing + hanging script: {took:.1f} s")


def test_pass_env_names_what_else_a_script_sees_and_is_not_identity(tmp_path):
    """Issue 20, case 8: credentials reach a script only when train.pass_env names them."""
    from orchestrator.records.script_resolve import passed_env_line

    plain = _plan(tmp_path, b"print(1)\n").jobs[0]
    named = _plan(tmp_path, b"print(1)\n", pass_env=["HF_TOKEN"]).jobs[0]
    assert plain.pass_env == () and named.pass_env == ("HF_TOKEN",)
    assert named.identity == plain.identity  # a credential never changes a result
    assert any(x.startswith("train.pass_env: not an environment variable name: 'A B'")
               for x in _errors(_spec(pass_env=["A B"])))
    environ = {"PATH": "/bin", "HOME": "/h", "HF_TOKEN": "s", "AWS_SECRET_ACCESS_KEY": "s"}
    assert passed_env_line((), environ) == \
        "passes from this environment: HOME PATH  (no credentials: train.pass_env names any)"
    assert passed_env_line(("HF_TOKEN",), environ).startswith("passes from this environment: HF_TOKEN HOME PATH")


_SLOW_WHILE_FLAG = r'''
import os, time
slow = os.path.exists(os.environ["SLOW_FLAG"])
for i in range(1, 1000 if slow else 4):
    print(f"step:{i}/1000 train_loss:{3 - i / 1000:.4f} train_time:{i * 300}ms step_avg:300.00ms", flush=True)
    time.sleep(0.3 if slow else 0.0)
print("final_roundtrip val_loss:2.0000 val_bpb:1.2000", flush=True)
'''


@pytest.mark.slow
def test_a_killed_drivers_run_keeps_its_partial_log_and_no_attempt_overwrites_another(tmp_path):
    """Issue 20, case 4 ("lost logs when a VM died"): after kill -9 of the driver the rerun
    closed the run KILLED with no artifact and overwrote attempt-1/train.log."""
    import signal

    flag = tmp_path / "slow"
    flag.write_text("1")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "train_gpt.py").write_text(_SLOW_WHILE_FLAG)
    (tmp_path / "live.yaml").write_text(
        "name: live\ndata: {path: data/syn, synthetic_train_tokens: 300000, synthetic_val_tokens: 60000}\n"
        f"train:\n  script: scripts/train_gpt.py\n  seeds: [1]\n  env: {{SLOW_FLAG: '{flag}'}}\n")
    from mlflow.tracking import MlflowClient

    # the store exists before golf opens it: this test's reads never race golf's schema creation
    # (two processes migrating one new SQLite file: "table _alembic_tmp_... already exists")
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()
    proc = subprocess.Popen(GOLF + ["run", "live.yaml", "--no-progress"], cwd=tmp_path, env=_env(),
                            stdout=open(tmp_path / "first.out", "wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        partial = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1.0)
            if not (tmp_path / "mlflow.db").exists():
                continue
            try:
                c, runs = _runs(tmp_path, "live")
            except Exception:  # noqa: BLE001 - the experiment is not there yet
                continue
            running = [r for r in runs if r.info.status == "RUNNING"]
            if running and "train.log" in {a.path for a in c.list_artifacts(running[0].info.run_id)}:
                text = Path(c.download_artifacts(running[0].info.run_id, "train.log", str(tmp_path / "dl0"))).read_text()
                if text.count("step:") >= 3:
                    partial = running[0].info.run_id
                    break
        assert partial, "no train.log reached MLflow while the job ran: " + (tmp_path / "first.out").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-run: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    flag.unlink()  # the rerun's script finishes at once
    second, _ = _golf(["run", "live.yaml", "--no-progress"], tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    c, runs = _runs(tmp_path, "live")
    by = {r.info.run_id: r for r in runs}
    assert by[partial].info.status == "KILLED"
    killed_log = Path(c.download_artifacts(partial, "train.log", str(tmp_path / "dl1"))).read_text()
    assert killed_log.startswith("step:1/1000 ") and "val_bpb" not in killed_log  # the partial log, kept
    assert [r.info.status for r in runs if r.info.run_id != partial] == ["FINISHED"]
    job_dirs = list((tmp_path / ".golf" / "jobs").glob("*/*/attempt-1*")) or \
        list((tmp_path / ".golf").rglob("attempt-1*"))
    names = sorted(p.name for p in job_dirs)
    assert names == ["attempt-1", "attempt-1.1"], job_dirs  # the killed attempt's files moved aside
    earlier = next(p for p in job_dirs if p.name == "attempt-1.1")
    assert "step:1/1000" in (earlier / "train.log").read_text()

def test_an_env_key_the_script_never_reads_is_an_error_naming_the_closest(tmp_path):
    shutil.copy(SCRIPT, tmp_path / "train_gpt.py")
    with pytest.raises(SpecError) as e:
        build_plan(sweep_from_dict(_spec(env={"ITERATONS": 4, "MATRIX_LR": 0.05, "NCCL_NET": "Socket"})), tmp_path)
    assert e.value.lines == ["train.env.ITERATONS: train_gpt.py never reads it; did you mean ITERATIONS? "
                             "(list it in train.env_unchecked to pass it anyway)"]
    with pytest.raises(SpecError, match=r"train.env.ZZZ_UNRELATED: train_gpt.py never reads it \(list it"):
        build_plan(sweep_from_dict(_spec(env={"ZZZ_UNRELATED": 1})), tmp_path)
    # listed in env_unchecked, golf's own variables (DATA_PATH, RUN_ID) and the launcher's: passed
    plan = build_plan(sweep_from_dict(_spec(env={"ITERATONS": 4, "RUN_ID": "x", "PYTORCH_CUDA_ALLOC_CONF": "y"},
                                            env_unchecked=["ITERATONS"])), tmp_path)
    assert plan.jobs[0].env["ITERATONS"] == "4"
    # a script that reads no environment in plain text (compressed): nothing to check against
    (tmp_path / "train_gpt.py").write_text("import lzma, base64\nexec(lzma.decompress(base64.b85decode(b'')))\n")
    assert build_plan(sweep_from_dict(_spec(env={"ITERATONS": 4})), tmp_path).jobs
