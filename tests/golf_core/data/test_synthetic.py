"""Synthetic data: real format, challenge tokenizer settings, exact sizes, same seed → same bytes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as model_pb2

from golf_core.data.shards import check_data_dir, load_split, read_shard, split_files
from golf_core.data.synthetic import _Generator, make_synthetic
from tests.fixtures.data import SYNTH_SHARD_TOKENS, SYNTH_TRAIN_TOKENS, SYNTH_VAL_TOKENS


def _files(d):
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = make_synthetic(tmp_path / "a", 20_000, 5_000, seed=7, shard_tokens=8_000)
    b = make_synthetic(tmp_path / "b", 20_000, 5_000, seed=7, shard_tokens=8_000)
    c = make_synthetic(tmp_path / "c", 20_000, 5_000, seed=8, shard_tokens=8_000)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert sorted(fa) == ["fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin",
                          "fineweb_val_000000.bin", "manifest.json", "synthetic_1024_bpe.model"]
    assert fa == fb  # byte-identical, the model included
    assert fa["fineweb_val_000000.bin"] != fc["fineweb_val_000000.bin"]
    assert fa["synthetic_1024_bpe.model"] != fc["synthetic_1024_bpe.model"]


def test_remaking_replaces_old_files(tmp_path):
    make_synthetic(tmp_path, 30_000, 5_000, seed=1, shard_tokens=10_000)
    make_synthetic(tmp_path, 12_000, 5_000, seed=1)
    assert [p.name for p in split_files(tmp_path, "train")] == ["fineweb_train_000000.bin"]
    assert read_shard(tmp_path / "fineweb_train_000000.bin").size == 12_000


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
