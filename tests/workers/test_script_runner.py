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
