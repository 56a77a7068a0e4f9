"""Synthetic data: real format, challenge tokenizer settings, exact sizes, same seed → same bytes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from golf_core.data.shards import check_data_dir, load_split, read_shard, split_files
from golf_core.data.synthetic import RECIPE_FILE, DataDirError, _Generator, make_synthetic, own_files, recipe_of
from tests.fixtures.data import SYNTH_SHARD_TOKENS, SYNTH_TRAIN_TOKENS, SYNTH_VAL_TOKENS


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = make_synthetic(tmp_path / "a", 20_000, 5_000, seed=7, shard_tokens=8_000)
    b = make_synthetic(tmp_path / "b", 20_000, 5_000, seed=7, shard_tokens=8_000)
    c = make_synthetic(tmp_path / "c", 20_000, 5_000, seed=8, shard_tokens=8_000)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert sorted(fa) == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin",
                          "fineweb_val_000000.bin", RECIPE_FILE, "manifest.json", "synthetic_1024_bpe.model"]
    assert fa == fb  # byte-identical, the model included
    assert fa["fineweb_val_000000.bin"] != fc["fineweb_val_000000.bin"]
    assert fa["synthetic_1024_bpe.model"] != fc["synthetic_1024_bpe.model"]


def test_remaking_replaces_old_files(tmp_path):
    make_synthetic(tmp_path, 30_000, 5_000, seed=1, shard_tokens=10_000)
    assert recipe_of(tmp_path) == {"train_tokens": 30_000, "val_tokens": 5_000, "seed": 1, "vocab_size": 1024,
                                   "shard_tokens": 10_000}
    make_synthetic(tmp_path, 12_000, 5_000, seed=1)  # golf's own dir: no --force needed
    assert [p.name for p in split_files(tmp_path, "train")] == ["fineweb_train_000000.bin"]
    assert read_shard(tmp_path / "fineweb_train_000000.bin").size == 12_000
    assert own_files(tmp_path) == {p.name for p in tmp_path.iterdir()}
    assert not [p for p in tmp_path.parent.iterdir() if ".golf-" in p.name]  # no sibling left behind


def _hashes(d):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_refuses_a_dir_holding_files_it_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(DataDirError, match=r"holds files golf did not make \(notes.txt\).*--force"):
        make_synthetic(out, 10_000, 5_000, seed=0)
    assert _hashes(out) == {"notes.txt": _hashes(out)["notes.txt"]} and len(list(out.iterdir())) == 1
    # --force writes beside them, and a remake (with force) replaces only what golf wrote
    make_synthetic(out, 20_000, 5_000, seed=0, shard_tokens=8_000, force=True)
    assert (out / "notes.txt").read_text() == "my notes" and len(split_files(out, "train")) == 3
    make_synthetic(out, 5_000, 5_000, seed=0, force=True)
    assert (out / "notes.txt").read_text() == "my notes" and len(split_files(out, "train")) == 1
    check_data_dir(out, 1024)


def test_never_overwrites_data_files_it_did_not_make_even_with_force(tmp_path):
    from golf_core.data.shards import write_shard

    out = tmp_path / "fw"
    write_shard(out / "fineweb_train_000000.bin", np.arange(5000) % 1024)  # a half-finished download
    (out / "fineweb_1024_bpe.model").write_bytes(b"real tokenizer")
    before = _hashes(out)
    for force in (False, True):
        with pytest.raises(DataDirError, match="data files golf did not make.*never overwrites"):
            make_synthetic(out, 10_000, 5_000, seed=0, force=force)
        assert _hashes(out) == before
    # a recipe file naming other paths never makes golf delete them
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    own = tmp_path / "own"
    make_synthetic(own, 10_000, 5_000, seed=0)
    meta = json.loads((own / RECIPE_FILE).read_text())
    meta["files"] += ["../victim.txt", str(victim)]
    (own / RECIPE_FILE).write_text(json.dumps(meta))
    make_synthetic(own, 10_000, 5_000, seed=1)
    assert victim.read_text() == "keep"


def test_a_failed_or_killed_run_leaves_no_half_made_dir(tmp_path, monkeypatch):
    import golf_core.data.synthetic as S

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "write_shard", boom)
    with pytest.raises(RuntimeError):
        make_synthetic(tmp_path / "x", 10_000, 5_000, seed=0)
    assert list(tmp_path.iterdir()) == []  # neither x nor its temporary sibling
    monkeypatch.undo()
    # SIGKILL after the first shard: the data dir never appears under its name
    code = ("import os, signal, sys\n"
            "import golf_core.data.synthetic as S\n"
            "real = S.write_shard\n"
            "def once(*a, **k):\n"
            "    real(*a, **k); os.kill(os.getpid(), signal.SIGKILL)\n"
            "S.write_shard = once\n"
            "S.make_synthetic(sys.argv[1], 10_000, 5_000, seed=0)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "y")], capture_output=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == -9, p.stderr[-2000:]
    assert not (tmp_path / "y").exists()
    leftovers = [q.name for q in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".y.golf-tmp-")  # hidden, never mistaken for data
    make_synthetic(tmp_path / "y", 10_000, 5_000, seed=0)  # the next run clears the dead run's leftovers
    assert [q.name for q in tmp_path.iterdir()] == ["y"]


def test_fixture_layout_sizes_and_documents(synthetic_data_dir):
    check_data_dir(synthetic_data_dir, 1024)
    train, val = load_split(synthetic_data_dir, "train"), load_split(synthetic_data_dir, "val")
    assert (train.numel(), val.numel()) == (SYNTH_TRAIN_TOKENS, SYNTH_VAL_TOKENS)
    assert len(split_files(synthetic_data_dir, "train")) == -(-SYNTH_TRAIN_TOKENS // SYNTH_SHARD_TOKENS)
    assert val[0] == 1 and train[0] == 1  # both splits start with a document's BOS
    # Documents: BOS now and then, never EOS/PAD/UNK, and no empty document.
    bos = np.flatnonzero(val.numpy() == 1)
    assert len(bos) > 50 and np.diff(bos).min() > 10
    assert not np.isin(val.numpy(), [0, 2, 3]).any()
    m = json.loads((synthetic_data_dir / "manifest.json").read_text())
    assert m["train_tokens"] == SYNTH_TRAIN_TOKENS and m["val_tokens"] == SYNTH_VAL_TOKENS
    assert m["val_docs"] == len(bos) and m["tokenizer"] == "synthetic_1024_bpe.model"


def test_tokenizer_has_challenge_settings(tokenizer_path):
    proto = model_pb2.ModelProto()
    proto.ParseFromString(tokenizer_path.read_bytes())
    t, n = proto.trainer_spec, proto.normalizer_spec
    assert t.model_type == model_pb2.TrainerSpec.BPE and t.vocab_size == 1024
    assert t.byte_fallback and t.split_digits and not n.add_dummy_prefix
    assert n.name == "nmt_nfkc" and abs(t.character_coverage - 0.999) < 1e-6
    assert (t.pad_id, t.bos_id, t.eos_id, t.unk_id) == (0, 1, 2, 3)
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    assert sp.vocab_size() == 1024
    assert [sp.id_to_piece(i) for i in sp.encode("1931", out_type=int)] == ["1", "9", "3", "1"]


def test_text_is_english_like_and_round_trips(tokenizer_path):
    gen = _Generator(seed=3)
    docs = gen.documents(200)
    text = " ".join(docs)
    # The normalizer leaves the text as is, so bytes counted from tokens are the text's bytes.
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    assert sp.decode(sp.encode(docs, out_type=int)) == docs
    assert all(d[0].isupper() or d[0].isdigit() for d in docs)
    assert any(c.isdigit() for c in text) and "," in text and "?" in text
    assert any(ord(c) > 127 for c in text)  # some multi-byte characters
    words = [w.strip(".,?!").lower() for w in text.split()]
    counts = np.sort(np.unique(words, return_counts=True)[1])[::-1]
    # Zipf-like: a heavy head and a long tail.
    assert counts[0] > 20 * np.median(counts) and (counts == 1).sum() > 100


def test_word_transitions_are_predictable():
    # The Markov chain makes the next word far more predictable than its unigram frequency:
    # what lets a model (and an n-gram cache) learn something.
    words = " ".join(_Generator(seed=5).documents(400)).lower().split()
    ids = {w: i for i, w in enumerate(sorted(set(words)))}
    seq = np.array([ids[w] for w in words])
    _, uni = np.unique(seq, return_counts=True)
    p = uni / uni.sum()
    h_uni = -(p * np.log2(p)).sum()
    pairs, pc = np.unique(seq[:-1] * len(ids) + seq[1:], return_counts=True)
    ctx_counts = np.bincount(pairs // len(ids), weights=pc)
    h_bi = -(pc * np.log2(pc / ctx_counts[pairs // len(ids)])).sum() / pc.sum()
    assert h_bi < h_uni - 2.0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="train_tokens"):
        make_synthetic(tmp_path, 0, 10, seed=0)
    with pytest.raises(ValueError, match="vocab_size"):
        make_synthetic(tmp_path, 10, 10, seed=0, vocab_size=100)
    with pytest.raises(ValueError, match="shard_tokens"):
        make_synthetic(tmp_path, 10, 10, seed=0, shard_tokens=0)
