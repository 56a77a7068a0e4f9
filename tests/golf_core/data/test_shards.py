"""Shard format: round trip, one distinct error per kind of corruption, data-dir checks."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from golf_core.data.shards import (
    HEADER_BYTES,
    SHARD_MAGIC,
    ShardError,
    check_data_dir,
    find_tokenizer,
    load_split,
    read_shard,
    split_files,
    write_shard,
)


def test_round_trip_and_exact_layout(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 65536, size=1000).astype(np.uint16)
    path = write_shard(tmp_path / "fineweb_train_000000.bin", tokens)
    raw = path.read_bytes()
    assert len(raw) == HEADER_BYTES + 2 * tokens.size
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert (header[0], header[1], header[2]) == (SHARD_MAGIC, 1, 1000)
    assert not header[3:].any()
    assert np.frombuffer(raw[HEADER_BYTES:], dtype="<u2").tolist() == tokens.tolist()
    back = read_shard(path)
    assert back.dtype == np.uint16 and np.array_equal(back, tokens)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_write_accepts_int_lists_and_rejects_out_of_range(tmp_path):
    write_shard(tmp_path / "a.bin", [1, 2, 3])
    assert read_shard(tmp_path / "a.bin").tolist() == [1, 2, 3]
    with pytest.raises(ShardError, match="65535"):
        write_shard(tmp_path / "b.bin", [1, 70000])


def test_empty_shard(tmp_path):
    write_shard(tmp_path / "e.bin", np.zeros(0, dtype=np.uint16))
    assert read_shard(tmp_path / "e.bin", vocab_size=10).size == 0


def _good(tmp_path, n=100):
    return write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(n) % 50)


def _patch_int32(path, index, value):
    raw = bytearray(path.read_bytes())
    raw[4 * index:4 * index + 4] = np.array([value], dtype="<i4").tobytes()
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "corrupt, pattern",
    [
        (lambda p: _patch_int32(p, 0, 12345), r"bad magic 12345 \(expected 20240520\)"),
        (lambda p: _patch_int32(p, 1, 2), r"bad version 2 \(expected 1\)"),
        (lambda p: p.write_bytes(p.read_bytes()[:-6]), r"size mismatch: header says 100 tokens, expected 1224 bytes, file has 1218"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\0\0"), r"expected 1224 bytes, file has 1226"),
        (lambda p: _patch_int32(p, 2, 101), r"header says 101 tokens"),
        (lambda p: p.write_bytes(p.read_bytes()[:500]), r"short header \(500 bytes"),
    ],
    ids=["magic", "version", "truncated", "trailing", "count", "short_header"],
)
def test_each_corruption_has_its_own_error_naming_the_file(tmp_path, corrupt, pattern):
    path = _good(tmp_path)
    corrupt(path)
    with pytest.raises(ShardError, match=pattern) as e:
        read_shard(path)
    assert str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_token_out_of_vocab_names_token_and_index(tmp_path):
    path = write_shard(tmp_path / "x.bin", [5, 7, 1024, 3, 2000])
    assert read_shard(path, vocab_size=2001).size == 5
    with pytest.raises(ShardError, match=r"x.bin: token 1024 at index 2 is >= vocab_size 1024"):
        read_shard(path, vocab_size=1024)


def test_missing_file(tmp_path):
    with pytest.raises(ShardError, match="not found"):
        read_shard(tmp_path / "nope.bin")


def test_split_files_sorted_and_load_split_concatenates(tmp_path):
    write_shard(tmp_path / "fineweb_train_000001.bin", [4, 5])
    write_shard(tmp_path / "fineweb_train_000000.bin", [1, 2, 3])
    write_shard(tmp_path / "fineweb_val_000000.bin", [9])
    (tmp_path / "other_train_000000.bin").write_bytes(b"")
    assert [p.name for p in split_files(tmp_path, "train")] == ["fineweb_train_000000.bin", "fineweb_train_000001.bin"]
    t = load_split(tmp_path, "train")
    assert t.dtype == torch.int64 and t.tolist() == [1, 2, 3, 4, 5]
    assert load_split(tmp_path, "val").tolist() == [9]
    with pytest.raises(ValueError, match="split must be one of"):
        split_files(tmp_path, "test")


def test_load_split_without_shards(tmp_path):
    with pytest.raises(ShardError, match="no fineweb_val_"):
        load_split(tmp_path, "val")


def test_find_tokenizer(tmp_path):
    with pytest.raises(ShardError, match="no SentencePiece"):
        find_tokenizer(tmp_path)
    (tmp_path / "a.model").write_bytes(b"x")
    assert find_tokenizer(tmp_path).name == "a.model"
    (tmp_path / "b.model").write_bytes(b"x")
    with pytest.raises(ShardError, match="exactly one .*found 2: a.model, b.model"):
        find_tokenizer(tmp_path)
    with pytest.raises(ShardError, match="not found"):
        find_tokenizer(tmp_path / "missing")


def test_check_data_dir(synthetic_data_dir, tmp_path):
    check_data_dir(synthetic_data_dir, 1024)  # the fixture is valid
    with pytest.raises(ShardError, match="vocab_size 1024 does not match vocab_size 2048"):
        check_data_dir(synthetic_data_dir, 2048)
    with pytest.raises(ShardError, match="is >= vocab_size 512"):
        check_data_dir(synthetic_data_dir, 512)

    bad = tmp_path / "bad"
    shutil.copytree(synthetic_data_dir, bad)
    victim = split_files(bad, "train")[-1]
    victim.write_bytes(victim.read_bytes()[:-2])
    with pytest.raises(ShardError, match=f"{victim.name}: size mismatch"):
        check_data_dir(bad, 1024)

    no_tok = tmp_path / "no_tok"
    shutil.copytree(synthetic_data_dir, no_tok)
    for m in no_tok.glob("*.model"):
        m.unlink()
    with pytest.raises(ShardError, match="no SentencePiece"):
        check_data_dir(no_tok, 1024)

    no_val = tmp_path / "no_val"
    shutil.copytree(synthetic_data_dir, no_val)
    for f in split_files(no_val, "val"):
        f.unlink()
    with pytest.raises(ShardError, match="no fineweb_val_"):
        check_data_dir(no_val, 1024)
