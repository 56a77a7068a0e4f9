"""workers.script_runner: a real train_gpt.py-style script under real torchrun (gloo on CPU),
its log streamed and parsed, its hang killed with every rank (no Ray: the function itself; a
failing script through `golf run` is in tests/orchestrator/run/test_script_jobs.py)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from golf_core.logparse import parse_line
from workers.contract import Attempt, ScriptRef, ScriptTrainJob
from workers.script_runner import ScriptError, child_env, run_script_job, safe_run_id

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "scripts" / "train_gpt_tiny.py"


def _script_job(env: dict, nproc: int = 1, timeout_s: float = 300.0, score_tag=None, name="script/s7/LR=0.1",
                identity="x" * 64) -> ScriptTrainJob:
    ref = ScriptRef(path=str(SCRIPT.parent), entry="train_gpt.py", sha256="unchecked-here", files=1, folder=False)
    return ScriptTrainJob(identity=identity, name=name, seed=7, script=ref, nproc=nproc, ranks=nproc,
                          timeout_s=timeout_s, score_tag=score_tag,
                          env={"SEED": "7", "ITERATIONS": "6", "VAL_LOSS_EVERY": "3", **env})


def _job(env: dict, **kw) -> Attempt:
    return Attempt(job=_script_job(env, **kw), attempt=1, script_files={"train_gpt.py": SCRIPT.read_bytes()})


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped


def test_child_env_golf_defaults_then_job_env_wins(synthetic_data_dir):
    base = {"PATH": "/bin", "RANK": "3", "MASTER_PORT": "1", "WORLD_SIZE": "8"}
    env = child_env(base, {"RUN_ID": "mine", "VOCAB_SIZE": "1024"}, str(synthetic_data_dir), "script_s1")
    assert env["DATA_PATH"] == str(synthetic_data_dir) and env["TOKENIZER_PATH"].endswith(".model")
    assert env["RUN_ID"] == "mine" and env["PATH"] == "/bin"
    assert not {"RANK", "MASTER_PORT", "WORLD_SIZE"} & set(env)  # torchrun sets its own
    assert safe_run_id("script/s42/MATRIX_LR=0.02,X=a b") == "script_s42_MATRIX_LR=0.02_X=a_b"


def test_child_env_takes_the_attempts_tokenizer_outside_the_data_dir(synthetic_data_dir, tmp_path):
    import shutil

    from golf_core.data.shards import find_tokenizer

    data = tmp_path / "datasets" / "fineweb10B_sp1024"  # upstream's layout: the model is elsewhere
    data.mkdir(parents=True)
    for p in synthetic_data_dir.glob("fineweb_*.bin"):
        shutil.copy(p, data / p.name)
    tok = tmp_path / "tok" / "mine.model"
    tok.parent.mkdir()
    shutil.copy(find_tokenizer(synthetic_data_dir), tok)
    env = child_env({}, {}, str(data), "r", tokenizer=str(tok))
    assert env["TOKENIZER_PATH"] == str(tok)
    assert "TOKENIZER_PATH" not in child_env({}, {}, str(data), "r")  # none to find: the script's default


@pytest.mark.slow
def test_two_gloo_ranks_stream_the_log_and_the_result_is_its_last_score_line(synthetic_data_dir, tmp_path):
    events = []
    t0 = time.monotonic()
    result = run_script_job(_job({}, nproc=2), str(synthetic_data_dir), str(tmp_path), events.append)
    wall = time.monotonic() - t0
    log = (tmp_path / "train.log").read_text().splitlines()
    scores = [parse_line(x) for x in log if (e := parse_line(x)) is not None and e.kind == "score"]
    assert scores and result["val_bpb"] == scores[-1].values["val_bpb"]
    assert result["final_tag"] == "final_int8_zlib_roundtrip_exact"
    assert result["world_size"] == 2 and "world_size:2" in "\n".join(log)  # really two ranks
    assert result["steps"] == 6 and [p[0] for p in result["train_loss_curve"]] == list(range(1, 7))
    assert [v[0] for v in result["val_curve"]] == [3, 6]
    assert result["artifact_bytes_source"] == "log" and result["artifact_bytes"] > result["model_bytes"] > 0
    assert result["val_bpb.final_int8_zlib_roundtrip"] == pytest.approx(result["val_bpb"], abs=1e-4)
    # the progress the live display and the live metrics read, one event per parsed line
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 7))
    assert [e["step"] for e in events if e["event"] == "val"] == [3, 6]
    # the script ran in the job dir: its own log and its model files are there and copied up
    assert (tmp_path / "run" / "logs" / "script_s7_LR=0.1.txt").is_file()
    assert (tmp_path / "final_model.int8.ptz").is_file() and (tmp_path / "result.json").is_file()
    print(f"2-rank tiny script under torchrun: {wall:.1f} s")


@pytest.mark.slow
def test_a_hanging_script_is_killed_at_its_timeout_with_every_rank(synthetic_data_dir, tmp_path):
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    with pytest.raises(ScriptError, match="killed at its timeout"):
        run_script_job(_job({"TEST_FAIL": f"hang:{pidfile}"}, nproc=2, timeout_s=15),
                       str(synthetic_data_dir), str(tmp_path / "job"))
    took = time.monotonic() - t0
    pids = [int(p.read_text()) for p in sorted(tmp_path.glob("pid.*"))]
    assert len(pids) == 2, "both ranks started (and hung)"
    assert not [p for p in pids if _alive(p)], "a rank outlived the timeout"
    assert took < 15 + 20  # the timeout, the TERM grace and the reaping; not the hang
    assert os.getpgid(os.getpid())  # we are still here: only the job's tree was signalled


class _EnvRunner:
    """Stands in for GolfRunner (the GPUs are logical: Ray's, no CUDA): reports what torchrun
    would inherit."""

    def train(self, job, data_dir, out_dir, on_progress):
        on_progress({"event": "step", "step": 1, "train_loss": 2.5, "log": True})
        on_progress({"event": "val", "step": 1, "val_bpb": 1.5, "log": True})
        Path(out_dir, "train.log").write_text("x\n")
        return {"visible": os.environ.get("CUDA_VISIBLE_DEVICES", "")}


def test_a_script_job_is_one_actor_holding_all_its_gpus(ray_local):
    import ray

    from workers.gang import TrainGang

    job = Attempt(job=_script_job({}, name="script/s1", identity="a" * 64, nproc=4), attempt=1)
    gang = TrainGang(job, _EnvRunner(), ranks=1, gpus=4, use_gpus=True, data_dir=".", work_dir=None)
    try:
        assert gang.bundle == {"CPU": 1.0, "GPU": 4.0}
        out = None
        while out is None:
            ready, _ = ray.wait(gang.pending(), num_returns=1, timeout=60)
            assert ready, f"gang stuck in {gang.phase}"
            out = gang.advance(ready[0])
        assert len(out.result["visible"].split(",")) == 4  # torchrun sees every GPU of the job
        assert "train.log" in out.files  # a script job packs all its top-level files
        nxt, events = ray.get(gang.actors[0].drain.remote(0))
        assert nxt == 2 and [e["event"] for e in events] == ["step", "val"]
        assert ray.get(gang.actors[0].progress.remote())["event"] == "step"  # a val line keeps the step shown
    finally:
        gang.release()


# ---- issue 20: what a script does never outlives, fools, leaks or hangs its job ----------------

# A script that leaves a plain background child and a double-forked setsid daemon behind, dumps
# its environment, prints a score, and exits with $EXIT_WITH.
_LEAVER = r'''
import json, os, subprocess, sys, time
out = os.environ["PROBE_DIR"]
if os.environ.get("LOCAL_RANK", "0") == "0":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open(os.path.join(out, "child.pid"), "w").write(str(child.pid))
    if os.fork() == 0:  # the classic daemon: fork, setsid, fork again, the parent exits
        os.setsid()
        if os.fork() == 0:
            open(os.path.join(out, "daemon.pid"), "w").write(str(os.getpid()))
            time.sleep(300)
        os._exit(0)
    json.dump(dict(os.environ), open(os.path.join(out, "env.json"), "w"))
    time.sleep(0.5)
print("final_roundtrip val_loss:2.0000 val_bpb:1.2000", flush=True)
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
'''


def _plain(source: str, env: dict, timeout_s: float = 120.0, **kw) -> Attempt:
    job = _script_job(env, timeout_s=timeout_s, **kw)
    return Attempt(job=job, attempt=1, script_files={"train_gpt.py": source.encode()})


@pytest.mark.parametrize("exit_with", [0, 3])
def test_every_process_the_script_started_is_gone_when_the_job_ends(synthetic_data_dir, tmp_path, exit_with,
                                                                   monkeypatch):
    """Case 2: a plain Popen child and a setsid daemon kept running after `golf run` exited 0.
    Case 8: the script saw the driver's MLflow password, cloud keys and hub token."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    monkeypatch.setenv("GOLF_RAY_TOKEN", "ray-secret")
    monkeypatch.setenv("NCCL_DEBUG", "WARN")
    probe = tmp_path / "probe"
    probe.mkdir()
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "train.log").write_text("an earlier attempt's log\n")  # a driver killed and rerun
    att = _plain(_LEAVER, {"PROBE_DIR": str(probe), "EXIT_WITH": str(exit_with)})
    att = Attempt(job=type(att.job)(**{**att.job.__dict__, "pass_env": ("HF_TOKEN",)}), attempt=1,
                  script_files=att.script_files)
    if exit_with:
        with pytest.raises(ScriptError, match="exited with 1"):
            run_script_job(att, str(synthetic_data_dir), str(job_dir))
    else:
        assert run_script_job(att, str(synthetic_data_dir), str(job_dir))["val_bpb"] == 1.2
    ended = time.monotonic()
    pids = {name: int((probe / f"{name}.pid").read_text()) for name in ("child", "daemon")}
    while [p for p in pids.values() if _alive(p)] and time.monotonic() - ended < 5:
        time.sleep(0.1)
    assert not {n: p for n, p in pids.items() if _alive(p)}, "left running after the job ended"
    env = __import__("json").loads((probe / "env.json").read_text())
    assert not {"MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY", "GOLF_RAY_TOKEN"} & set(env)
    assert env["HF_TOKEN"] == "hf-secret"  # named in train.pass_env
    assert env["NCCL_DEBUG"] == "WARN" and env["PATH"] and env["DATA_PATH"] == str(synthetic_data_dir)
    assert (tmp_path / "job.1" / "train.log").read_text() == "an earlier attempt's log\n"  # kept, not overwritten
    assert "val_bpb:1.2000" in (job_dir / "train.log").read_text()


def test_base_env_is_minimal_and_pass_env_names_what_else_passes():
    from workers.script_runner import base_env

    environ = {"PATH": "/bin", "HOME": "/h", "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_IB_DISABLE": "1",
               "TORCHINDUCTOR_CACHE_DIR": "/c", "LC_ALL": "C", "OMP_NUM_THREADS": "4",
               "MLFLOW_TRACKING_PASSWORD": "x", "MLFLOW_TRACKING_URI": "http://u:p@h", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "HF_TOKEN": "x", "GOLF_RAY_TOKEN": "x", "RAY_AUTH_TOKEN": "x",
               "NCCL_SOCKET_TOKEN": "x", "RANK": "3", "WANDB_API_KEY": "x", "SOMETHING_ELSE": "x"}
    assert base_env(environ) == {"PATH": "/bin", "HOME": "/h", "CUDA_VISIBLE_DEVICES": "0,1",
                                 "NCCL_IB_DISABLE": "1", "TORCHINDUCTOR_CACHE_DIR": "/c", "LC_ALL": "C",
                                 "OMP_NUM_THREADS": "4"}
    assert base_env(environ, ("WANDB_API_KEY", "NOT_SET"))["WANDB_API_KEY"] == "x"


_SPAMMER = r'''
import sys, time
for i in range(10**9):
    print(f"step:{i}/1000000 train_loss:2.5 train_time:{i}ms step_avg:1.00ms " + "x" * 200)
'''


def test_disk_full_under_a_script_is_an_error_not_a_hang(synthetic_data_dir, tmp_path):
    """Case 7: the pump died on ENOSPC, nothing drained the pipe, the script blocked until its
    timeout. /dev/full answers every write with a real ENOSPC."""
    t0 = time.monotonic()
    with pytest.raises(ScriptError) as e:
        run_script_job(_plain(_SPAMMER, {}, timeout_s=120), str(synthetic_data_dir), str(tmp_path / "job"),
                       log_path="/dev/full")
    took = time.monotonic() - t0
    assert str(e.value) == "disk full writing /dev/full"
    assert took < 30, f"{took:.0f} s: waited for the timeout"


_SLOW = r'''
import time
for i in range(1, 9):
    print(f"step:{i}/8 train_loss:{3 - i / 10:.2f} train_time:{i * 500}ms step_avg:500.00ms", flush=True)
    time.sleep(0.6)
print("final_roundtrip val_loss:2.0000 val_bpb:1.2000", flush=True)
'''


def test_the_log_goes_out_in_pieces_while_the_script_runs(synthetic_data_dir, tmp_path):
    """Case 4: a running job's lines reach the driver every few seconds (it appends them to the
    run's train.log artifact), not only at the end."""
    seen: list[tuple[float, dict]] = []
    t0 = time.monotonic()
    run_script_job(_plain(_SLOW, {}), str(synthetic_data_dir), str(tmp_path / "job"),
                   lambda ev: seen.append((time.monotonic(), ev)))
    end = time.monotonic()
    logs = [(t, ev["text"]) for t, ev in seen if ev["event"] == "log"]
    assert len(logs) >= 2 and logs[0][0] < end - 1.0, "nothing streamed before the end"
    text = "".join(x for _, x in logs)
    assert text == (tmp_path / "job" / "train.log").read_text()  # the pieces add up to the log
    assert t0 < logs[0][0]


def test_the_parse_counts_inside_the_jobs_timeout(synthetic_data_dir, tmp_path, monkeypatch):
    """Case 3: the parse ran after the timeout stopped counting (a `timeout_s: 15` job ran 101.8 s
    and ended FINISHED, valid)."""
    from golf_core import logparse

    real = logparse.parse_line

    def slow(line):  # a parse far slower than the script: what quadratic patterns did
        time.sleep(1.0)
        return real(line)

    monkeypatch.setattr(logparse, "parse_line", slow)
    t0 = time.monotonic()
    with pytest.raises(ScriptError, match="killed at its timeout"):
        run_script_job(_plain(_SLOW.replace("time.sleep(0.6)", "pass").replace("range(1, 9)", "range(1, 40)"),
                              {}, timeout_s=15), str(synthetic_data_dir), str(tmp_path / "job"))
    assert time.monotonic() - t0 < 15 + 5  # the script prints 40 lines in ~5 s, then 40 s of parse
