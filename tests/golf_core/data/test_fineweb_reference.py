"""`golf data fineweb` writes what upstream's data/cached_challenge_fineweb.py writes, file by file.

The reference downloader (read from $GOLF_REFERENCE_DIR, run in a subprocess from a copy in a
temp `data/` folder, since it writes next to itself) and golf's both fetch from the same
hub-shaped dir through a stubbed `hf_hub_download`; the two output trees must be identical.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golf_core.data.fineweb import download_fineweb, hf_download_fn
from golf_core.data.shards import check_data_dir, write_shard
from tests.golf_core.data.hub_stub import StubApi

ROOT = Path(__file__).resolve().parents[3]
SHARD = 4_000


def _reference_script() -> Path:
    ref = os.environ.get("GOLF_REFERENCE_DIR")
    if not ref:
        pytest.skip("GOLF_REFERENCE_DIR is not set (the folder holding parameter-golf/)")
    p = Path(ref) / "parameter-golf" / "data" / "cached_challenge_fineweb.py"
    if not p.is_file():
        pytest.skip("GOLF_REFERENCE_DIR has no parameter-golf/data/cached_challenge_fineweb.py")
    return p


def _hub(root: Path, prefix: str, tokenizer_path: Path) -> Path:
    """root/<prefix>/{manifest.json, datasets/fineweb10B_{sp1024,byte260}/, tokenizers/}."""
    base = root / prefix if prefix else root
    rng = np.random.default_rng(0)
    datasets = []
    for name, vocab, tok in (("fineweb10B_sp1024", 1024, "sp_bpe_1024"), ("fineweb10B_byte260", 260, "pure_byte_260")):
        counts = {"val": [SHARD, 1_500], "train": [SHARD, SHARD, 700]}
        for split, sizes in counts.items():
            for i, n in enumerate(sizes):
                write_shard(base / "datasets" / name / f"fineweb_{split}_{i:06d}.bin", rng.integers(0, vocab, size=n))
        datasets.append({"name": name, "tokenizer_name": tok, "vocab_size": vocab,
                         "stats": {"files_train": 3, "files_val": 2, "tokens_train": 2 * SHARD + 700,
                                   "tokens_val": SHARD + 1_500}})
    (base / "tokenizers").mkdir(parents=True)
    shutil.copy(tokenizer_path, base / "tokenizers" / "fineweb_1024_bpe.model")
    (base / "tokenizers" / "fineweb_1024_bpe.vocab").write_text("<unk>\t0\n<s>\t0\n</s>\t0\n")
    (base / "tokenizers" / "fineweb_pure_byte_260.json").write_text(json.dumps({"kind": "byte", "vocab_size": 260}))
    (base / "docs_selected.jsonl").write_text('{"text": "a"}\n')
    (base / "docs_selected.source_manifest.json").write_text("{}")
    manifest = {"version": "10B", "shard_size": SHARD, "datasets": datasets, "tokenizers": [
        {"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": 1024,
         "model_path": "tokenizers/fineweb_1024_bpe.model", "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"},
        {"name": "pure_byte_260", "kind": "byte", "vocab_size": 260, "path": "tokenizers/fineweb_pure_byte_260.json"}]}
    (base / "manifest.json").write_text(json.dumps(manifest))
    return root


_RUN_REFERENCE = """
import json, runpy, sys, types
from tests.golf_core.data.hub_stub import make_hf_hub_download
hub, cache, calls_file, script, *argv = sys.argv[1:]
calls = []
m = types.ModuleType("huggingface_hub")
m.hf_hub_download = make_hf_hub_download(hub, cache, calls)
sys.modules["huggingface_hub"] = m
sys.argv = [script, *argv]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    open(calls_file, "w").write(json.dumps(calls))
"""


def _run_reference(script: Path, tmp: Path, hub: Path, argv: list[str], env: dict) -> tuple[Path, list]:
    data = tmp / "ref" / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(script, data / script.name)
    calls = tmp / "ref_calls.json"
    proc = subprocess.run([sys.executable, "-c", _RUN_REFERENCE, str(hub), str(tmp / "ref_cache"), str(calls),
                           str(data / script.name), *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})
    assert proc.returncode == 0, proc.stderr
    (data / script.name).unlink()
    return data, json.loads(calls.read_text())


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        assert not p.is_symlink(), f"{p}: a symlink into a cache, not a real file"
        if p.is_file():
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.mark.parametrize("variant, prefix, with_docs", [("sp1024", "datasets", False), ("byte260", "export", True)])
def test_golf_writes_exactly_what_upstream_writes(variant, prefix, with_docs, tmp_path, tokenizer_path, monkeypatch):
    script = _reference_script()
    hub = _hub(tmp_path / "hub", prefix, tokenizer_path)
    env = {"MATCHED_FINEWEB_REPO_ID": "someone/golf-mirror", "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX": prefix}
    argv = ["--variant", variant, "--train-shards", "2", *(["--with-docs"] if with_docs else [])]
    ref_root, ref_calls = _run_reference(script, tmp_path, hub, argv, env)

    for k, v in env.items():  # golf reads upstream's two variables too
        monkeypatch.setenv(k, v)
    api = StubApi(hub, tmp_path / "golf_cache")
    golf_root = tmp_path / "golf" / "data"
    s = download_fineweb(variant, 2, golf_root, download_fn=hf_download_fn("someone/golf-mirror", api),
                         with_docs=with_docs)

    ref, ours = _tree(ref_root), _tree(golf_root)
    assert sorted(ours) == sorted(ref)
    for name in ref:
        assert ours[name] == ref[name], name
    assert f"datasets/fineweb10B_{variant}/fineweb_train_000001.bin" in ref and "manifest.json" in ref
    # the same hub files asked for, of the same repo, as a dataset repo
    key = lambda c: (c["repo_id"], c["subfolder"], c["filename"], c["repo_type"])  # noqa: E731
    assert sorted(map(key, api.calls)) == sorted(map(key, ref_calls))
    assert {c["repo_id"] for c in ref_calls} == {"someone/golf-mirror"}
    assert s["data_dir"] == str(golf_root / "datasets" / f"fineweb10B_{variant}")
    if variant == "sp1024":
        check_data_dir(s["data_dir"], 1024)  # the upstream tree trains as it is


def test_resume_in_upstream_layout_refetches_only_what_is_bad(tmp_path, tokenizer_path):
    hub = _hub(tmp_path / "hub", "datasets", tokenizer_path)
    api = StubApi(hub, tmp_path / "cache")
    root = tmp_path / "data"
    download_fineweb("sp1024", 3, root, download_fn=hf_download_fn("r", api))
    ds = root / "datasets" / "fineweb10B_sp1024"
    bad = ds / "fineweb_train_000002.bin"
    bad.write_bytes(bad.read_bytes()[:-10])
    (root / "tokenizers" / "fineweb_1024_bpe.vocab").unlink()
    api.calls.clear()
    s = download_fineweb("sp1024", 3, root, download_fn=hf_download_fn("r", api))
    assert sorted(s["downloaded"]) == ["fineweb_1024_bpe.vocab", "fineweb_train_000002.bin"]
    assert [c["filename"] for c in api.calls] == ["manifest.json", "fineweb_train_000002.bin", "fineweb_1024_bpe.vocab"]
    assert _tree(root)["datasets/fineweb10B_sp1024/fineweb_train_000002.bin"] == \
        (hub / "datasets" / "datasets" / "fineweb10B_sp1024" / "fineweb_train_000002.bin").read_bytes()
