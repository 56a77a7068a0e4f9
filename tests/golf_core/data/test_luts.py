"""Byte tables against a brute-force count: UTF-8 bytes of the text SentencePiece decodes."""
from __future__ import annotations

import numpy as np
import pytest
import sentencepiece as spm
import torch

from golf_core.data.luts import build_byte_luts
from golf_core.data.shards import read_shard

BOS = 1


def _docs(stream: np.ndarray) -> list[np.ndarray]:
    """Split a token stream at BOS; every piece starts with BOS."""
    starts = np.flatnonzero(stream == BOS)
    return [stream[a:b] for a, b in zip(starts, [*starts[1:], stream.size])]


def _lut_bytes(luts, toks: np.ndarray) -> int:
    t = torch.from_numpy(toks.astype(np.int64))
    return int(luts.target_bytes(t[:-1], t[1:]).sum())


def test_tables_follow_upstream_rules(byte_luts, tokenizer_path):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    assert byte_luts.base_bytes.dtype == torch.int16
    assert byte_luts.has_leading_space.dtype == torch.bool and byte_luts.is_boundary.dtype == torch.bool
    for special in (0, 1, 2, 3):  # pad, bos, eos, unk
        assert byte_luts.is_boundary[special] and byte_luts.base_bytes[special] == 0
    byte_ids = [i for i in range(sp.vocab_size()) if sp.is_byte(i)]
    assert len(byte_ids) == 256 and all(byte_luts.base_bytes[i] == 1 for i in byte_ids)
    space = sp.piece_to_id("\u2581the")
    assert byte_luts.has_leading_space[space] and byte_luts.base_bytes[space] == 3


def test_document_bytes_match_decoded_text(synthetic_data_dir, tokenizer_path, byte_luts):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    val = np.asarray(read_shard(synthetic_data_dir / "fineweb_val_000000.bin"))
    docs = _docs(val)
    assert len(docs) > 100
    for doc in docs[:-1]:  # the last one may be cut mid-document
        text = sp.decode(doc[1:].tolist())
        assert _lut_bytes(byte_luts, doc) == len(text.encode("utf-8"))
    # Across document boundaries: the stream's total is the sum of its documents' bytes.
    whole = np.concatenate(docs[:-1])
    expected = sum(len(sp.decode(d[1:].tolist()).encode("utf-8")) for d in docs[:-1])
    assert _lut_bytes(byte_luts, whole) == expected


@pytest.mark.parametrize("text", [
    "Zürich is naïve, 2024 — ☃ snow ❄ and 漢字 too.",
    "  two leading spaces and\ttab",
    "Plain words only",
])
def test_byte_fallback_and_unseen_characters(tokenizer_path, byte_luts, text):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    ids = sp.encode(text, out_type=int)
    doc = np.asarray([BOS, *ids])
    assert _lut_bytes(byte_luts, doc) == len(sp.decode(ids).encode("utf-8"))


def test_numpy_twin_and_device_move(byte_luts, synthetic_data_dir):
    val = np.asarray(read_shard(synthetic_data_dir / "fineweb_val_000000.bin"))[:5000].astype(np.int64)
    t = byte_luts.target_bytes(torch.from_numpy(val[:-1]), torch.from_numpy(val[1:]))
    n = byte_luts.target_bytes_np(val[:-1], val[1:])
    assert t.dtype == torch.int32 and n.dtype == np.int32
    assert np.array_equal(t.numpy(), n)
    moved = byte_luts.to("cpu")
    assert torch.equal(moved.base_bytes, byte_luts.base_bytes)


def test_tables_padded_to_model_vocab(tokenizer_path):
    luts = build_byte_luts(tokenizer_path, 1100)
    assert luts.vocab_size == 1100
    assert luts.is_boundary[1024:].all() and (luts.base_bytes[1024:] == 0).all()
    with pytest.raises(FileNotFoundError):
        build_byte_luts(tokenizer_path.parent / "missing.model", 1024)
