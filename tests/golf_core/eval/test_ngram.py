"""The n-gram tables and pass against straightforward references (PR #779 semantics)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.mix import mix_nll
from golf_core.eval.ngram import NgramError, NgramTables, context_matrix, ngram_pass
from golf_core.eval.windows import scored_positions, sliding_windows, window_chunks
from tests.golf_core.eval.ngram_ref import PRIMES, markov_stream, ref_779_window_scores

V = 32


def _stats_for(val, seq_len, stride, chunk_tokens, seed=0):
    """Stats-like arrays from the eval's own window geometry plus a stand-in model."""
    total = len(val) - 1
    w = sliding_windows(total, seq_len, stride)
    pos = scored_positions(w)
    chunk = np.repeat(window_chunks(w, chunk_tokens), w.n_scored)
    ws = np.repeat(w.starts, w.n_scored)
    rng = np.random.default_rng(seed)
    p_model_by_pos = rng.uniform(1e-4, 0.9, size=total + 1)
    entropy_by_pos = rng.uniform(0.5, 6.5, size=total + 1)
    stats = {"pos": pos, "chunk": chunk, "target": val[pos], "prev": val[pos - 1],
             "bytes": np.ones(pos.size, dtype=np.int64), "p_model": p_model_by_pos[pos],
             "entropy": entropy_by_pos[pos]}
    return stats, pos - ws, p_model_by_pos, entropy_by_pos  # n_ctx = j + 1 = pos - ws


def test_torch_hash_matches_numpy_uint64():
    rng = np.random.default_rng(1)
    toks = rng.integers(0, 65535, size=(500, 6))
    want = np.zeros(500, dtype=np.uint64)
    for k in range(6):
        want ^= toks[:, k].astype(np.uint64) * np.uint64(PRIMES[k])
    mask = (1 << 22) - 1
    cfg = MixerConfig(mode="hashed_target")
    tab = NgramTables(cfg, 65536)
    got = tab._hash(torch.from_numpy(toks), 7)
    assert np.array_equal((want & np.uint64(mask)).astype(np.int64), (got & mask).numpy())
    # and against values big enough that int64 products wrap: same low bits as uint64
    big = np.array([2**62 + 12345, 2**63 - 1], dtype=np.int64)
    t = torch.from_numpy(big) * 233017
    u = big.astype(np.uint64) * np.uint64(233017)
    assert np.array_equal((t & mask).numpy(), (u & np.uint64(mask)).astype(np.int64))


def test_absorb_counts_every_ngram_exactly():
    val = markov_stream(400, V, seed=2)
    cfg = MixerConfig(mode="hashed_target", buckets=1 << 20, orders=(2, 3))
    tab = NgramTables(cfg, V)
    tab.absorb(val)
    assert tab.total_tokens == 400
    # with 2^20 buckets and 32 tokens there are no collisions at order 2: counts are exact
    counts = {}
    for i in range(len(val) - 1):
        counts[(val[i], val[i + 1])] = counts.get((val[i], val[i + 1]), 0) + 1
    for (a, b), n in counts.items():
        h = (int(a) * PRIMES[0]) & ((1 << 20) - 1)
        assert int(tab.full[0][(int(a) * PRIMES[0] ^ int(b) * PRIMES[1]) & ((1 << 20) - 1)]) == n
        assert int(tab.ctx[0][h]) == sum(v for (x, _), v in counts.items() if x == a)
    assert int(tab.ctx[1].sum()) == 398 and int(tab.full[1].sum()) == 398


@pytest.mark.parametrize("seq_len,stride,chunk_tokens,buckets,window_ctx", [
    (64, 16, 200, 256, False),  # overlapping windows: stream positions = #779's window rule
    (32, 32, 50, 16, True),     # non-overlapping windows: #779 masks each window's first n-1
])
def test_hashed_target_equals_779_reference(seq_len, stride, chunk_tokens, buckets, window_ctx):
    total = seq_len + stride * ((700 - seq_len) // stride)  # no ragged tail window
    val = markov_stream(total + 1, V, seed=3, succ=4)
    stats, n_ctx, pm, H = _stats_for(val, seq_len, stride, chunk_tokens)
    cfg = MixerConfig(mode="hashed_target", buckets=buckets)
    res = ngram_pass(val, stats["pos"], stats["chunk"], cfg, chunk_tokens, vocab_size=V,
                     n_ctx=n_ctx if window_ctx else None)
    ref = ref_779_window_scores(val, seq_len, stride, chunk_tokens, pm, H, V, buckets)
    assert sorted(ref) == stats["pos"].tolist() and all(len(v) == 1 for v in ref.values())
    r_order = np.array([ref[p][0][0] for p in stats["pos"]])
    r_png = np.array([ref[p][0][1] for p in stats["pos"]])
    r_nll = np.array([ref[p][0][2] for p in stats["pos"]])
    assert np.array_equal(res.order, r_order)
    assert np.allclose(res.p_ngram[r_order > 0], r_png[r_order > 0], rtol=0, atol=1e-12)
    nll = mix_nll(stats, res, cfg)
    assert np.allclose(nll, r_nll, rtol=0, atol=1e-12)
    # the stream is collision-heavy and exercises warm-up, every order and "no hit"
    assert (r_order == 0).any() and (r_order == 7).any()
    if buckets == 256:  # every backoff level, "no hit" included
        assert set(r_order.tolist()) == {0, 1, 2, 3, 4, 5, 6, 7}
    assert (r_png[r_order >= 2] < 1).any() and (r_png[r_order >= 2] == 1).any()


def test_normalized_rows_sum_to_one_and_order_ignores_target():
    val = markov_stream(3000, V, seed=4)
    cfg = MixerConfig(mode="normalized", buckets=512, warmup_tokens=0)
    tab = NgramTables(cfg, V)
    tab.absorb(val[:600])
    pos = torch.arange(2000, 3000)
    ctx = context_matrix(torch.from_numpy(val), pos, tab.width)
    n_ctx = pos.clone()
    n_ctx[:50] = 1  # the scorer saw one token only: no order applies
    order, probs = tab.lookup_all(ctx, n_ctx)
    assert torch.all(order[:50] == 1)
    assert torch.allclose(probs.sum(1), torch.ones(1000, dtype=torch.float64), atol=1e-9)
    assert (probs >= 0).all() and set(order.unique().tolist()) >= {1, 2, 7}
    assert torch.all(probs[order == 1] == 1.0 / V)  # no order hit: uniform
    # the order chosen, and every row, do not depend on the target
    o1, p1 = tab.lookup_normalized(ctx, torch.from_numpy(val[2000:3000]), n_ctx)
    o2, p2 = tab.lookup_normalized(ctx, torch.from_numpy((val[2000:3000] + 5) % V), n_ctx)
    assert torch.equal(o1, order) and torch.equal(o2, order)
    assert torch.allclose(p1, probs[torch.arange(1000), torch.from_numpy(val[2000:3000])], atol=1e-15)
    assert torch.allclose(p2, probs[torch.arange(1000), torch.from_numpy((val[2000:3000] + 5) % V)], atol=1e-15)
    # the hashed_target rows over the vocabulary, by contrast, sum far above 1
    _, raw = tab.lookup_all(ctx, n_ctx, normalize=False)
    assert raw[order >= 2].sum(1).mean() > 2


def test_pass_is_score_first_and_audit_rows_match():
    val = markov_stream(1201, V, seed=5)
    stats, _, _, _ = _stats_for(val, 64, 16, 300)
    cfg = MixerConfig(mode="normalized", buckets=128)
    aidx = np.array([3, 400, 650, 1100])
    res = ngram_pass(val, stats["pos"], stats["chunk"], cfg, 300, vocab_size=V, audit_idx=aidx)
    assert np.allclose(res.audit_p_ngram.sum(1), 1.0, atol=1e-12)
    assert np.allclose(res.audit_p_ngram[np.arange(4), val[stats["pos"][aidx]]], res.p_ngram[aidx], atol=1e-15)
    cheap = ngram_pass(val, stats["pos"], stats["chunk"], cfg, 300, vocab_size=V, audit_idx=aidx, targets=False)
    assert np.array_equal(cheap.audit_p_ngram, res.audit_p_ngram) and np.array_equal(cheap.order[aidx], res.order[aidx])
    kinds = [e[0] for e in res.events]
    assert kinds == ["score", "absorb"] * 4
    assert res.events[1] == ("absorb", 0, 300) and res.events[-1] == ("absorb", 900, 1200)
    # changing tokens after the last scored position of chunk 0 changes nothing in chunk 0
    val2 = val.copy()
    cut = int(stats["pos"][stats["chunk"] == 0].max()) + 1
    val2[cut:] = (val2[cut:] * 7 + 3) % V
    res2 = ngram_pass(val2, stats["pos"], stats["chunk"], cfg, 300, vocab_size=V)
    m = stats["chunk"] == 0
    assert np.array_equal(res.p_ngram[m], res2.p_ngram[m])


def test_pass_input_errors():
    val = np.arange(10) % V
    cfg = MixerConfig(mode="normalized")
    with pytest.raises(NgramError, match="pos must lie"):
        ngram_pass(val, [0, 1], [0, 0], cfg, 4, vocab_size=V)
    with pytest.raises(NgramError, match="vocab_size"):
        ngram_pass(val, [1, 2], [0, 0], cfg, 4, vocab_size=5)
    with pytest.raises(NgramError, match="order 1"):
        NgramTables(MixerConfig(mode="normalized", orders=(1, 2)), V)
