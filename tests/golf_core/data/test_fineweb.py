"""FineWeb download against a local directory laid out like the hub repo (no network)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from golf_core.data.fineweb import DownloadError, dataset_name, download_fineweb, hf_download_fn, local_download_fn
from golf_core.data.shards import ShardError, check_data_dir, find_tokenizer, read_shard, write_shard

SHARD = 10_000  # tokens per full shard in the fake export


@pytest.fixture
def fake_hub(tmp_path, tokenizer_path):
    """hub/datasets/{manifest.json, datasets/fineweb10B_sp1024/*.bin, tokenizers/fineweb_1024_bpe.model}."""
    root = tmp_path / "hub"
    ds = root / "datasets" / "datasets" / "fineweb10B_sp1024"
    ds.mkdir(parents=True)
    rng = np.random.default_rng(0)
    counts = {"val": [SHARD, 4_000], "train": [SHARD, SHARD, 2_500]}
    for split, sizes in counts.items():
        for i, n in enumerate(sizes):
            write_shard(ds / f"fineweb_{split}_{i:06d}.bin", rng.integers(0, 1024, size=n))
    (root / "datasets" / "tokenizers").mkdir()
    shutil.copy(tokenizer_path, root / "datasets" / "tokenizers" / "fineweb_1024_bpe.model")
    (root / "datasets" / "tokenizers" / "fineweb_1024_bpe.vocab").write_text("<unk>\t0\n<s>\t0\n")
    manifest = {  # the shape upstream download_hf_docs_and_tokenize.py writes
        "version": "10B", "shard_size": SHARD, "append_eos": False,
        "tokenizers": [{"name": "sp_bpe_1024", "kind": "sentencepiece_bpe", "vocab_size": 1024,
                        "model_path": "tokenizers/fineweb_1024_bpe.model",
                        "vocab_path": "tokenizers/fineweb_1024_bpe.vocab"}],
        "datasets": [{"name": "fineweb10B_sp1024", "tokenizer_name": "sp_bpe_1024", "vocab_size": 1024,
                      "stats": {"files_train": 3, "files_val": 2, "tokens_train": 22_500, "tokens_val": 14_000}}],
    }
    (root / "datasets" / "manifest.json").write_text(json.dumps(manifest))
    return root


class Recorder:
    """local_download_fn that remembers what was fetched."""

    def __init__(self, root):
        self.fn, self.calls = local_download_fn(root), []

    def __call__(self, remote, dest):
        self.calls.append(remote)
        self.fn(remote, dest)


def _hub_file(root, name):
    return root / "datasets" / "datasets" / "fineweb10B_sp1024" / name


def test_full_download(fake_hub, tmp_path):
    rec = Recorder(fake_hub)
    out = tmp_path / "data"
    s = download_fineweb("sp1024", 2, out, download_fn=rec, layout="flat")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fineweb_1024_bpe.model", "fineweb_1024_bpe.vocab", "fineweb_train_000000.bin", "fineweb_train_000001.bin",
                     "fineweb_val_000000.bin", "fineweb_val_000001.bin", "manifest.json"]
    assert rec.calls == [
        "datasets/manifest.json",
        "datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin",
        "datasets/datasets/fineweb10B_sp1024/fineweb_val_000001.bin",
        "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin",
        "datasets/datasets/fineweb10B_sp1024/fineweb_train_000001.bin",
        "datasets/tokenizers/fineweb_1024_bpe.model",
        "datasets/tokenizers/fineweb_1024_bpe.vocab",
    ]
    for f in out.glob("*.bin"):
        assert f.read_bytes() == _hub_file(fake_hub, f.name).read_bytes()
    check_data_dir(out, 1024)
    assert find_tokenizer(out).name == "fineweb_1024_bpe.model"
    assert s["tokens"] == 2 * SHARD + 14_000 and len(s["downloaded"]) == 6 and not s["skipped"]


def test_resume_skips_good_files_and_redoes_partial_ones(fake_hub, tmp_path):
    out = tmp_path / "data"
    download_fineweb("sp1024", 3, out, download_fn=local_download_fn(fake_hub), layout="flat")

    rec = Recorder(fake_hub)
    s = download_fineweb("sp1024", 3, out, download_fn=rec, layout="flat")
    assert rec.calls == ["datasets/manifest.json"] and not s["downloaded"]

    partial = out / "fineweb_train_000001.bin"
    partial.write_bytes(partial.read_bytes()[:5000])  # an interrupted copy
    bad_header = out / "fineweb_val_000000.bin"
    raw = bytearray(bad_header.read_bytes())
    raw[0:4] = b"\0\0\0\0"  # right size, corrupt header
    bad_header.write_bytes(bytes(raw))
    (out / "fineweb_train_000002.bin.part").write_bytes(b"junk")  # a crashed download
    tok = out / "fineweb_1024_bpe.model"
    tok.write_bytes(tok.read_bytes()[:100])

    rec = Recorder(fake_hub)
    s = download_fineweb("sp1024", 3, out, download_fn=rec, layout="flat")
    assert sorted(s["downloaded"]) == ["fineweb_1024_bpe.model", "fineweb_train_000001.bin", "fineweb_val_000000.bin"]
    assert len(rec.calls) == 4
    assert not list(out.glob("*.part"))
    for f in out.glob("*.bin"):
        assert f.read_bytes() == _hub_file(fake_hub, f.name).read_bytes()
    check_data_dir(out, 1024)


def test_size_mismatch_against_manifest(fake_hub, tmp_path):
    # The hub's last train shard is shorter than the manifest's token count implies.
    write_shard(_hub_file(fake_hub, "fineweb_train_000002.bin"), np.zeros(2_000, dtype=np.uint16))
    out = tmp_path / "data"
    with pytest.raises(ShardError, match=r"fineweb_train_000002.bin: size mismatch .* manifest implies 6024 bytes, got 5024"):
        download_fineweb("sp1024", 3, out, download_fn=local_download_fn(fake_hub), layout="flat")
    assert not (out / "fineweb_train_000002.bin").exists()  # a bad file is never left to be trusted
    assert read_shard(out / "fineweb_train_000001.bin").size == SHARD  # earlier files stay


def test_corrupt_hub_shard(fake_hub, tmp_path):
    p = _hub_file(fake_hub, "fineweb_val_000001.bin")
    p.write_bytes(p.read_bytes()[:-2])
    with pytest.raises(ShardError, match="fineweb_val_000001.bin: size mismatch: header says"):
        download_fineweb("sp1024", 0, tmp_path / "data", download_fn=local_download_fn(fake_hub), layout="flat")


def test_input_errors(fake_hub, tmp_path):
    fn = local_download_fn(fake_hub)
    with pytest.raises(ValueError, match="has 3 train shards .* requested 4"):
        download_fineweb("sp1024", 4, tmp_path / "d", download_fn=fn, layout="flat")
    with pytest.raises(ValueError, match="dataset fineweb10B_sp4096 not in"):
        download_fineweb("sp4096", 1, tmp_path / "d", download_fn=fn)
    with pytest.raises(ValueError, match="unsupported FineWeb variant 'gpt2'"):
        dataset_name("gpt2")
    with pytest.raises(ValueError, match="train_shards must be >= 0"):
        download_fineweb("sp1024", -1, tmp_path / "d", download_fn=fn, layout="flat")


def test_hf_download_fn_uses_dataset_repo_and_materializes_cache_symlinks(tmp_path):
    blob = tmp_path / "cache" / "blobs" / "abc"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"payload")

    class FakeApi:  # stands in for huggingface_hub.HfApi (no network here)
        calls = []

        def hf_hub_download(self, **kw):
            self.calls.append(kw)
            link = tmp_path / "cache" / "snapshots" / kw["filename"]
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(blob)
            return str(link)

    api = FakeApi()
    dest = tmp_path / "out.bin"
    hf_download_fn("someone/repo", api)("datasets/datasets/fineweb10B_sp1024/fineweb_val_000000.bin", dest)
    assert api.calls == [{"repo_id": "someone/repo", "filename": "fineweb_val_000000.bin",
                          "subfolder": "datasets/datasets/fineweb10B_sp1024", "repo_type": "dataset"}]
    assert dest.read_bytes() == b"payload" and not Path(dest).is_symlink()


def test_hub_errors_become_one_line_download_errors(tmp_path):
    class OfflineApi:
        def hf_hub_download(self, **kw):
            raise ConnectionError("Max retries exceeded\nwith url ...")

    with pytest.raises(DownloadError, match=r"someone/repo:datasets/manifest.json: download failed "
                                            r"\(ConnectionError: Max retries exceeded\)$"):
        download_fineweb("sp1024", 1, tmp_path / "d", repo_id="someone/repo", api=OfflineApi())
