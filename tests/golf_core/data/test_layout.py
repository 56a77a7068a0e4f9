"""Upstream's data layout (data/datasets/fineweb10B_sp1024 + data/tokenizers/*.model) read as it
is, golf's flat dir as before, and `--tokenizer` on `golf train` / `golf eval`."""
from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

from golf_core.data.layout import resolve_tokenizer
from golf_core.data.shards import ShardError, check_data_dir, find_tokenizer


@pytest.fixture(scope="module")
def upstream_root(synthetic_data_dir, tmp_path_factory):
    """data/{datasets/fineweb10B_sp1024/*.bin, tokenizers/fineweb_1024_bpe.{model,vocab}}, no manifest."""
    root = tmp_path_factory.mktemp("upstream") / "data"
    ds = root / "datasets" / "fineweb10B_sp1024"
    ds.mkdir(parents=True)
    for f in synthetic_data_dir.glob("fineweb_*.bin"):
        shutil.copy(f, ds / f.name)
    (root / "tokenizers").mkdir()
    shutil.copy(find_tokenizer(synthetic_data_dir), root / "tokenizers" / "fineweb_1024_bpe.model")
    (root / "tokenizers" / "fineweb_1024_bpe.vocab").write_text("<unk>\t0\n")
    return root


def test_flat_dir_keeps_working(synthetic_data_dir):
    assert find_tokenizer(synthetic_data_dir).name == "synthetic_1024_bpe.model"


def test_upstream_layout_found_by_name_and_by_manifest(upstream_root, tmp_path):
    ds = upstream_root / "datasets" / "fineweb10B_sp1024"
    assert resolve_tokenizer(ds) == upstream_root / "tokenizers" / "fineweb_1024_bpe.model"
    check_data_dir(ds, 1024)
    # the manifest's pairing wins over the naming convention
    root = tmp_path / "data"
    shutil.copytree(upstream_root, root)
    (root / "tokenizers" / "fineweb_1024_bpe.model").rename(root / "tokenizers" / "other.model")
    (root / "manifest.json").write_text(json.dumps({
        "tokenizers": [{"name": "t", "model_path": "tokenizers/other.model"}],
        "datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "t"}]}))
    assert resolve_tokenizer(root / "datasets" / "fineweb10B_sp1024") == root / "tokenizers" / "other.model"


def test_missing_tokenizer_errors_name_the_fix(upstream_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(upstream_root, root)
    (root / "tokenizers" / "fineweb_1024_bpe.model").unlink()
    with pytest.raises(ShardError, match=r"upstream layout, but its tokenizer .*fineweb_1024_bpe.model is missing"):
        find_tokenizer(root / "datasets" / "fineweb10B_sp1024")
    with pytest.raises(ShardError, match=r"nope.model: tokenizer file not found"):
        find_tokenizer(root / "datasets" / "fineweb10B_sp1024", tmp_path / "nope.model")
    with pytest.raises(ShardError, match=r"no SentencePiece \*.model tokenizer file \(pass --tokenizer"):
        find_tokenizer(root / "datasets")


def _golf(argv):
    from orchestrator.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_golf_train_and_eval_on_upstream_layout(upstream_root, tmp_path):
    ds = upstream_root / "datasets" / "fineweb10B_sp1024"
    tok = upstream_root / "tokenizers" / "fineweb_1024_bpe.model"
    sets = ["train.iterations=2", "train.max_wallclock_seconds=0", "train.warmdown_iters=1",
            "train.val_loss_every=0", "eval.max_tokens=4096"]
    out = tmp_path / "run"
    rc, stdout, stderr = _golf(["train", "--preset", "tiny", *[a for s in sets for a in ("--set", s)],
                                "--data", str(ds), "--tokenizer", str(tok), "--out", str(out)])
    assert rc == 0, stderr
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 2 and result["val_bpb"] > 0
    # the tokenizer named explicitly on a dir where nothing pairs it: eval with --tokenizer
    flat = tmp_path / "flat"
    shutil.copytree(ds, flat)
    rc, stdout, stderr = _golf(["eval", str(out), "--data", str(flat), "--out", str(tmp_path / "ev"),
                                "--set", "eval.max_tokens=4096"])
    assert rc == 2 and "no SentencePiece *.model" in stderr and "Traceback" not in stderr
    rc, stdout, stderr = _golf(["eval", str(out), "--data", str(flat), "--tokenizer", str(tok),
                                "--out", str(tmp_path / "ev"), "--set", "eval.max_tokens=4096"])
    assert rc == 0, stderr
    assert json.loads((tmp_path / "ev" / "result.json").read_text())["val_bpb"] > 0
