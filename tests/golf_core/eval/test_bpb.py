"""Exact bpb: the float64 sums against a brute-force per-token computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from golf_core.eval.bpb import BpbSums, bpb, bpb_of
from golf_core.eval.config import EvalConfig
from golf_core.eval.sliding import evaluate_sliding
from tests.golf_core.eval.neural_kit import tiny_model, val_stream


def test_byte_counts_match_decoded_documents(synthetic_data_dir, tokenizer_path, byte_luts):
    """Per document, the LUT bytes of its targets == the UTF-8 length of its decoded text."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    val = val_stream(synthetic_data_dir, 6000).numpy()
    nbytes = byte_luts.target_bytes_np(val[:-1], val[1:])  # target index t -> nbytes[t - 1]
    bos = np.nonzero(val == sp.bos_id())[0]
    assert len(bos) >= 5
    for a, b in zip(bos[:-1], bos[1:]):
        text = sp.decode(val[a + 1:b].tolist())
        assert int(nbytes[a:b - 1].sum()) == len(text.encode("utf-8"))
        assert nbytes[b - 1] == 0  # the next document's BOS stands for no bytes


@pytest.mark.parametrize("stride", [1, 16])
def test_sliding_bpb_equals_brute_force(synthetic_data_dir, byte_luts, tokenizer_path, stride):
    """val_bpb of evaluate_sliding == a per-token loop: one forward per target over the
    context the sliding rule gives it, bytes from the decoded pieces."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    L, N = 16, 120
    model = tiny_model(3)
    val = val_stream(synthetic_data_dir, N + 1)
    res = evaluate_sliding(model, val, byte_luts, EvalConfig(seq_len=L, stride=stride, batch_seqs=7), "cpu")

    nll_sum, byte_sum = 0.0, 0
    ids = val.tolist()
    with torch.no_grad():
        for p in range(1, N + 1):
            if stride == 1:  # the window ending at p-1 (the first window scores all of 0..L-1)
                start = max(0, p - L)
            else:  # windows every 16: p's window is the one whose last 16 positions hold p-1
                start = 0 if p <= L else ((p - 1 - L) // stride + 1) * stride
                start = min(start, N - L)
            logits = model.forward_logits(val[start:p][None])[0, -1].double()
            nll_sum += float(-F.log_softmax(logits, -1)[ids[p]])
            # bytes of target p from the decoded text: decode(prefix + p) - decode(prefix)
            doc0 = max(i for i in range(p) if ids[i] == sp.bos_id()) if sp.bos_id() in ids[:p] else 0
            before = sp.decode(ids[doc0 + 1:p]) if p > doc0 + 1 else ""
            after = sp.decode(ids[doc0 + 1:p + 1]) if ids[p] != sp.bos_id() else before
            byte_sum += len(after.encode()) - len(before.encode())
    assert res["tokens_scored"] == N and res["ratio_scored"] == 1.0
    assert res["bytes"] == byte_sum
    assert res["nll_sum"] == pytest.approx(nll_sum, rel=1e-5)
    assert res["val_bpb"] == pytest.approx(nll_sum / math.log(2) / byte_sum, rel=1e-5)


def test_sums_are_float64_and_exact():
    s = BpbSums()
    # 1e8 adds of 0.1 in float32 would drift; float64 sums of float32 values must not
    s.add(torch.full((1_000_000,), 0.1, dtype=torch.float32), torch.full((1_000_000,), 3))
    assert s.tokens == 1e6 and s.bytes == 3e6
    assert s.nll == pytest.approx(1e6 * float(np.float32(0.1)), rel=1e-12)
    assert s.val_bpb == pytest.approx(s.nll / math.log(2) / 3e6, rel=1e-15)
    assert bpb_of(np.array([math.log(2)] * 4), np.array([1, 1, 1, 1]))[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="byte count"):
        bpb(1.0, 0)
