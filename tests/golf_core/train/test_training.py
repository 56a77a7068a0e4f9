"""run_training end to end on CPU: the result contract, the artifact roundtrip, the wallclock
cap, 1 rank vs 2 gloo ranks, NaN handling, and `golf train`."""
from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from golf_core.cli import main as core_main
from golf_core.presets import load_preset
from golf_core.train import run_training
from golf_core.train.loop import check_batch_shape
from golf_core.train.result import RESULT_KEYS

# 6 fixed steps, no cap (the LR schedule then depends on steps only: runs are deterministic),
# scored on the first 8192 validation tokens to keep the evals short.
FIXED = ["train.iterations=6", "train.max_wallclock_seconds=0", "train.warmdown_iters=3",
         "train.train_log_every=1", "train.val_loss_every=3", "eval.max_tokens=8192"]


def _golf_train(args: list[str], golf: bool = False) -> tuple[int, str, str]:
    """`python -m golf_core train ...` in-process, or the `golf` command itself (golf=True)."""
    if golf:
        from orchestrator.cli.main import main
    else:
        main = core_main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["train", *args])
    return rc, out.getvalue(), err.getvalue()


def _sets(sets: list[str]) -> list[str]:
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def one_rank(synthetic_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("train_1rank")
    rc, stdout, stderr = _golf_train(["--preset", "tiny", *_sets(FIXED), "--data", str(synthetic_data_dir),
                                      "--out", str(out)], golf=True)
    assert rc == 0, stderr
    return out, stdout


def test_golf_train_writes_contract_result_and_artifact(one_rank):
    out, stdout = one_rank
    result = json.loads((out / "result.json").read_text())
    assert set(RESULT_KEYS) <= set(result)
    assert (out / "model.ptz").is_file() and (out / "artifact.json").is_file()
    assert result["steps"] == 6 and result["stopped_by"] == "iterations" and result["world_size"] == 1
    assert [s for s, _ in result["train_loss_curve"]] == [1, 2, 3, 4, 5, 6]
    assert result["train_loss_curve"][-1][1] < result["train_loss_curve"][0][1]  # it learned
    # roundtrip score: the artifact read back; close to (not equal to) the float weights' score
    assert 0 < result["val_bpb"] < 10 and math.isfinite(result["val_loss"])
    assert abs(result["val_bpb"] - result["val_bpb_prequant"]) < 0.05
    assert result["artifact_bytes"] == result["model_bytes"] + result["code_bytes"]
    assert result["over_limit"] is False
    assert result["peak_mem_bytes"] > 0 and result["peak_mem_kind"] == "process_rss_peak"
    assert result["config"]["train"]["iterations"] == 6 and result["seed"] == 1337
    assert "val_bpb" in stdout and "result.json" in stdout
    assert "train step:3 val_loss:" in stdout  # val_loss_every=3: a validation mid-training


def test_train_log_records_what_made_the_run_and_every_event(one_rank):
    """--quiet or not, rank 0 writes train.log: the per-seed log a record ships and MLflow keeps."""
    out, _ = one_rank
    lines = (out / "train.log").read_text().splitlines()
    from golf_core import code_version

    assert lines[0].startswith(f"golf_core {code_version('train')}") and "torch" in lines[0]
    config = json.loads(lines[1].removeprefix("config "))
    assert config["train"]["iterations"] == 6
    steps = [ln for ln in lines if ln.startswith("step:")]
    assert [int(ln.split()[0].split(":")[1].split("/")[0]) for ln in steps] == [1, 2, 3, 4, 5, 6]
    assert any(ln.startswith("roundtrip step:6 val_loss:") for ln in lines)
    assert lines[-1].startswith("roundtrip") or any(ln.startswith("done ") for ln in lines)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank(one_rank, synthetic_data_dir, tmp_path):
    # Same global batch (micro_batches=2: 1 rank x 2 accumulation steps vs 2 ranks x 1).
    rc, _, stderr = _golf_train(["--preset", "tiny", *_sets(FIXED), "--data", str(synthetic_data_dir),
                                 "--out", str(tmp_path), "--nproc", "2"])
    assert rc == 0, stderr
    one = json.loads((one_rank[0] / "result.json").read_text())
    two = json.loads((tmp_path / "result.json").read_text())
    assert two["world_size"] == 2 and two["grad_accum_steps"] == 1 and one["grad_accum_steps"] == 2
    assert len(two["train_loss_curve"]) == len(one["train_loss_curve"]) == 6
    for (s1, l1), (s2, l2) in zip(one["train_loss_curve"], two["train_loss_curve"]):
        assert s1 == s2 and l2 == pytest.approx(l1, rel=1e-4), (s1, l1, l2)
    assert two["val_bpb_prequant"] == pytest.approx(one["val_bpb_prequant"], rel=1e-4)
    assert two["val_bpb"] == pytest.approx(one["val_bpb"], rel=1e-3)


def test_wallclock_cap_stops_on_time(synthetic_data_dir, tmp_path):
    cap = 1.5
    events = []
    cfg = load_preset("tiny", [f"train.max_wallclock_seconds={cap}", "train.iterations=100000",
                               "train.warmup_steps=1", "train.train_log_every=1", "train.val_loss_every=1",
                               "eval.max_tokens=8192"])
    result = run_training(cfg, synthetic_data_dir, tmp_path, on_progress=events.append)
    steps = [e for e in events if e["event"] == "step"]
    assert result["stopped_by"] == "wallclock"
    assert result["steps"] == steps[-1]["step"] < 100000
    longest_step_s = max(e["step_ms"] for e in steps) / 1000.0
    assert cap <= result["train_time_s"] <= cap + longest_step_s + 0.05
    # validations ran mid-training, and their time was not counted against the cap
    # (train_time is the steps' own time; counting the evaluations would add all of eval_s)
    eval_s = sum(e["eval_time_s"] for e in events if e["event"] == "val" and e["phase"] == "train")
    steps_s = sum(e["step_ms"] for e in steps) / 1000.0
    assert eval_s > 0.1 and result["train_time_s"] - steps_s < 0.5 * eval_s
    # the LR warmed down by remaining wall clock: ~0 at the cap
    assert steps[0]["lr_scale"] == 1.0 and steps[-1]["lr_scale"] < 0.3
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["stopped_by"] == "wallclock" and saved["val_bpb"] > 0
    assert (tmp_path / "model.ptz").is_file()
    assert [e["event"] for e in events][-1] == "done"
    assert {e["phase"] for e in events if e["event"] == "val"} == {"train", "prequant", "roundtrip"}
    # the result crosses Ray to the driver: unpickling it must not need torch there (a TorchVersion
    # in it made every driver import torch, ~2 s of CPU and ~250 MB, to read one result; issue 21)
    import pickle
    import subprocess
    import sys

    code = "import pickle, sys; pickle.loads(sys.stdin.buffer.read()); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(result), capture_output=True, check=True)
    assert out.stdout.strip() == b"False"


def test_nan_loss_stops_with_a_reason(synthetic_data_dir, tmp_path):
    # An absurd learning rate overflows the weights within a step or two.
    cfg = load_preset("tiny", ["train.iterations=8", "train.tied_embed_lr=1e30", "train.scalar_lr=1e30",
                               "train.matrix_lr=1e30", "train.max_wallclock_seconds=0"])
    result = run_training(cfg, synthetic_data_dir, tmp_path, on_progress=lambda e: None)
    assert result["nan"] is True and result["stopped_by"] == "nan"
    assert "non-finite train loss" in result["nan_reason"]
    assert result["steps"] < 8 and result["val_bpb"] is None
    saved = json.loads((tmp_path / "result.json").read_text())  # strict JSON, no bare NaN
    assert saved["nan"] is True and not (tmp_path / "model.ptz").exists()


def test_world_size_must_divide_micro_batches():
    cfg = load_preset("tiny", ["train.micro_batches=2"])
    assert check_batch_shape(cfg.train, 2) == 1
    with pytest.raises(ValueError, match="micro_batches 2 is not divisible by world_size 3"):
        check_batch_shape(cfg.train, 3)
    with pytest.raises(ValueError, match="train_seq_len"):
        check_batch_shape(load_preset("tiny", ["train.train_batch_tokens=4000"]).train, 1)


@pytest.mark.parametrize("args, needle", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "tiny", "--set", "train.no_such_key=1"], "train.no_such_key: unknown key"),
    (["--preset", "tiny", "--set", "train.iterations"], "expected section.key=value"),
    (["--preset", "tiny", "--set", "train.micro_batches=3", "--nproc", "2"], "not divisible by world_size 2"),
])
def test_golf_train_input_errors_are_one_line(args, needle, synthetic_data_dir, tmp_path):
    rc, stdout, stderr = _golf_train([*args, "--data", str(synthetic_data_dir), "--out", str(tmp_path / "o")])
    assert rc == 2 and needle in stderr and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "o").exists()  # nothing started


def test_golf_train_bad_data_is_one_line(synthetic_data_dir, tmp_path):
    import shutil

    bad = tmp_path / "data"
    shutil.copytree(synthetic_data_dir, bad)
    shard = sorted(bad.glob("fineweb_train_*.bin"))[-1]
    shard.write_bytes(shard.read_bytes()[:-3])  # truncated download
    rc, _, stderr = _golf_train(["--preset", "tiny", "--data", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2 and shard.name in stderr and "size mismatch" in stderr and stderr.count("\n") == 1
    rc, _, stderr = _golf_train(["--preset", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in stderr


def test_bad_data_under_a_distributed_launch_fails_every_rank_with_one_line(synthetic_data_dir, tmp_path):
    """As under torchrun: rank 0 alone reads the shards and every rank raises its verdict."""
    import shutil
    import subprocess
    import sys

    bad = tmp_path / "data"
    shutil.copytree(synthetic_data_dir, bad)
    shard = sorted(bad.glob("fineweb_val_*.bin"))[0]
    shard.write_bytes(shard.read_bytes()[:-3])
    argv = ["-m", "golf_core.train", "--preset", "tiny", "--data", str(bad), "--out", str(tmp_path / "o")]
    code = f"import sys; from golf_core.train.distributed import launch_local; sys.exit(launch_local({argv!r}, 2))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert shard.name in proc.stderr and "size mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # no rank got as far as training


def test_python_m_golf_core_train_entry_point(synthetic_data_dir, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "golf_core.train", "--preset", "tiny", "--set", "model.bogus=1",
                           "--data", str(synthetic_data_dir), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "python -m golf_core.train: error: model.bogus: unknown key"
