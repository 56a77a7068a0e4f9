"""`golf run` never destroys data: a dir lacking a split, a symlink out of the workspace, a split
too short for one sequence or window, an empty shard: each one line, exit 2, before any work,
every file byte-identical afterwards."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from golf_core.data.shards import write_shard
from golf_core.data.synthetic import make_synthetic
from orchestrator.cli.main import main
from orchestrator.plan.datasets import resolve_data_dir
from golf_core.data.config import DataConfig

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "experiments" / "smoke.yaml"


def _hashes(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()}


def _spec(ws: Path, **data) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec["data"].update(data)
    (ws / "s.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return ws / "s.yaml"


def _run(ws: Path, capsys, *extra) -> list[str]:
    assert main(["run", "s.yaml", "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not (ws / "mlflow.db").exists() and not (ws / ".golf").exists()  # nothing started
    return err


def _half_download(d: Path, tokenizer: Path, split: str) -> None:
    """A data dir as an interrupted download leaves it: real shards of one split, the tokenizer."""
    for k in range(2):
        write_shard(d / f"fineweb_{split}_{k:06d}.bin", np.arange(5000, dtype=np.uint16) % 1024)
    shutil.copy(tokenizer, d / "fineweb_1024_bpe.model")
    (d / "README.txt").write_text("downloaded on the pod, 3 hours\n")


@pytest.mark.parametrize("source", ["synthetic", "fineweb"])
@pytest.mark.parametrize("present", ["train", "val"])
def test_run_on_a_half_finished_download_names_the_split_and_touches_nothing(
        tmp_path, monkeypatch, capsys, tokenizer_path, source, present):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "data" / "fw"
    d.mkdir(parents=True)
    _half_download(d, tokenizer_path, present)
    before = _hashes(tmp_path / "data")
    _spec(tmp_path, path="data/fw", source=source)
    (err,) = _run(tmp_path, capsys)
    missing = "val" if present == "train" else "train"
    assert f"{missing} shards (fineweb_{missing}_*.bin) missing" in err
    assert "golf data fineweb --variant sp1024 --train-shards 80 --layout flat --out data/fw" in err
    assert _hashes(tmp_path / "data") == before  # every file byte-identical, nothing added


def test_the_golf_console_entry_refuses_the_same_way(tmp_path, tokenizer_path):
    d = tmp_path / "data" / "fw"
    d.mkdir(parents=True)
    _half_download(d, tokenizer_path, "train")
    before = _hashes(d)
    _spec(tmp_path, path="data/fw")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", "s.yaml", "--no-progress"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip().count("\n") == 0 and "val shards" in p.stderr and "Traceback" not in p.stderr
    assert _hashes(d) == before


def test_synthetic_data_is_made_only_into_an_empty_or_golf_made_dir(tmp_path, monkeypatch):
    from orchestrator.plan.datasets import ensure_data

    said = []
    data = DataConfig(path="data/s", synthetic_train_tokens=20_000, synthetic_val_tokens=5_000)
    d = tmp_path / "data" / "s"
    d.mkdir(parents=True)
    ensure_data(data, d, said.append)  # empty: made
    first = _hashes(d)
    ensure_data(data, d, said.append)  # complete and same recipe: left alone
    assert _hashes(d) == first and len(said) == 1
    (d / "fineweb_val_000000.bin").unlink()  # golf's own, a split gone: remade
    ensure_data(data, d, said.append)
    assert (d / "fineweb_val_000000.bin").is_file() and _hashes(d) == first and len(said) == 2


def test_a_data_dir_symlinked_out_of_the_workspace_is_refused(tmp_path, monkeypatch, capsys):
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    (ws / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not golf's")
    (ws / "data" / "x").symlink_to(elsewhere)
    monkeypatch.chdir(ws)
    _spec(ws, path="data/x")
    (err,) = _run(ws, capsys)
    assert err.startswith("golf: error: data.path data/x resolves to") and "data.external: true" in err
    assert [p.name for p in elsewhere.iterdir()] == ["keep.txt"]
    # golf plan says the same
    assert main(["plan", "s.yaml"]) == 2
    assert "data.path data/x resolves to" in capsys.readouterr().err
    # with external: true it is the user's choice
    cfg = DataConfig(path="data/x")
    assert resolve_data_dir(cfg, ws, external=True) == elsewhere.resolve()


def test_a_work_dir_symlinked_out_of_the_workspace_is_refused(tmp_path, monkeypatch, capsys, synthetic_data_dir):
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    ws.mkdir(), elsewhere.mkdir()
    (ws / "scratch").symlink_to(elsewhere)
    monkeypatch.chdir(ws)
    _spec(ws, path="data/smoke")
    assert main(["run", "s.yaml", "--no-progress", "--work-dir", "scratch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--work-dir scratch resolves to" in err[0] and "absolute path" in err[0]
    assert list(elsewhere.iterdir()) == [] and not (ws / "data").exists()  # checked before data is made


def _small(ws: Path, train: int, val: int) -> Path:
    d = ws / "data" / "small"
    make_synthetic(d, train, val, seed=0)
    return d


@pytest.mark.parametrize("train,val,phrase", [
    (100_000, 100, "the val split holds 100 tokens, fewer than the 129 one eval window (seq_len 128 + 1)"),
    (100, 5_000, "the train split holds 100 tokens, fewer than the 129 one training sequence (train_seq_len 128 + 1)"),
])
def test_a_split_shorter_than_one_window_is_refused_before_training(tmp_path, monkeypatch, capsys, train, val,
                                                                     phrase):
    monkeypatch.chdir(tmp_path)
    d = _small(tmp_path, train, val)
    # the spec's recipe matches the dir, so golf keeps it and checks it
    _spec(tmp_path, path="data/small", synthetic_train_tokens=train, synthetic_val_tokens=val)
    before = _hashes(d)
    (err,) = _run(tmp_path, capsys)
    assert phrase in err, err
    assert _hashes(d) == before


def test_an_empty_shard_is_refused(tmp_path, monkeypatch, capsys, synthetic_data_dir):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "data" / "e"
    shutil.copytree(synthetic_data_dir, d)
    write_shard(d / "fineweb_train_000009.bin", np.zeros(0, dtype=np.uint16))
    _spec(tmp_path, path="data/e")
    (err,) = _run(tmp_path, capsys)
    assert "fineweb_train_000009.bin: empty shard (0 tokens)" in err
