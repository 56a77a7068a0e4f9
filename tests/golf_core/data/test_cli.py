"""`data synthetic | fineweb | check` through the real argument parser."""
from __future__ import annotations

import json
import shutil

from golf_core.cli import main
from golf_core.data.shards import check_data_dir, read_shard


def test_data_synthetic_then_check(tmp_path, capsys):
    out = tmp_path / "syn"
    rc = main(["data", "synthetic", "--out", str(out), "--train-tokens", "30000", "--val-tokens", "6000",
               "--seed", "5", "--shard-tokens", "16000"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "train: 2 shard(s), 30,000 tokens" in text and "val  : 1 shard(s), 6,000 tokens, 13,024 bytes" in text
    check_data_dir(out, 1024)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 5

    assert main(["data", "check", str(out)]) == 0
    assert main(["data", "check", str(out), "--vocab-size", "256"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and ">= vocab_size 256" in err and len(err.strip().splitlines()) == 1


def test_data_synthetic_bad_input_is_one_line(tmp_path, capsys):
    rc = main(["data", "synthetic", "--out", str(tmp_path), "--train-tokens", "0"])
    assert rc == 2
    assert "train_tokens (0)" in capsys.readouterr().err


def test_data_fineweb_from_local_mirror(tmp_path, synthetic_data_dir, capsys):
    # A hub-shaped mirror built from the synthetic shards (one val, three train shards).
    hub = tmp_path / "hub" / "datasets"
    ds = hub / "datasets" / "fineweb10B_sp1024"
    ds.mkdir(parents=True)
    for f in synthetic_data_dir.glob("*.bin"):
        shutil.copy(f, ds / f.name)
    (hub / "tokenizers").mkdir()
    shutil.copy(next(synthetic_data_dir.glob("*.model")), hub / "tokenizers" / "fineweb_1024_bpe.model")
    n_train = [read_shard(p).size for p in sorted(ds.glob("fineweb_train_*.bin"))]
    manifest = {"shard_size": n_train[0],
                "tokenizers": [{"name": "sp", "model_path": "tokenizers/fineweb_1024_bpe.model"}],
                "datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "sp", "vocab_size": 1024,
                              "stats": {"files_train": len(n_train), "files_val": 1,
                                        "tokens_train": sum(n_train),
                                        "tokens_val": read_shard(ds / "fineweb_val_000000.bin").size}}]}
    (hub / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "fw"
    rc = main(["data", "fineweb", "--variant", "sp1024", "--train-shards", "1", "--out", str(out),
               "--from-dir", str(tmp_path / "hub")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "train: 1 shard(s)" in printed and "golf train --data" in printed
    check_data_dir(out / "datasets" / "fineweb10B_sp1024", 1024)  # upstream's layout, found as it is
    rc = main(["data", "fineweb", "--variant", "sp1024", "--train-shards", "1", "--layout", "flat",
               "--out", str(tmp_path / "flat"), "--from-dir", str(tmp_path / "hub")])
    assert rc == 0
    check_data_dir(tmp_path / "flat", 1024)


def test_data_synthetic_refuses_a_foreign_dir_unless_force(tmp_path, capsys, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("months of work")
    args = ["data", "synthetic", "--out", str(out), "--train-tokens", "10000", "--val-tokens", "5000"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "golf did not make (thesis.tex)" in err[0] and "--force" in err[0]
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
    assert main(args + ["--force"]) == 0
    assert (out / "thesis.tex").read_text() == "months of work"
    check_data_dir(out, 1024)


def test_data_synthetic_out_through_a_symlink_outside_the_workspace(tmp_path, capsys, monkeypatch):
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    ws.mkdir(), elsewhere.mkdir()
    (ws / "data").symlink_to(elsewhere)
    monkeypatch.chdir(ws)
    assert main(["data", "synthetic", "--out", "data/x", "--train-tokens", "10000", "--val-tokens", "5000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out data/x resolves to" in err[0] and "outside the workspace" in err[0]
    assert list(elsewhere.iterdir()) == []
    assert main(["data", "synthetic", "--out", str(elsewhere / "x"), "--train-tokens", "10000",
                 "--val-tokens", "5000"]) == 0  # the absolute path: an explicit choice
