"""The deduplicated normalized lookup against the former per-position (N, V) gather, and the
#779 miss_vocab=max_token option against the #779 reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.ngram import NgramError, NgramTables, context_matrix, ngram_pass
from golf_core.eval.windows import scored_positions, sliding_windows, window_chunks
from tests.golf_core.eval.ngram_ref import markov_stream, ref_779_window_scores

V = 32


def ref_lookup_normalized(tab: NgramTables, ctx, target, n_ctx=None):
    """The former lookup_normalized: every position gathers all V candidate counts of its
    selected order from the full 64-bit hash, (N, V) int64, then renormalizes."""
    order, slot, h, _ = tab.select(ctx, n_ctx)
    y = torch.as_tensor(target).to(device=tab.device, dtype=torch.int64)
    p = torch.full(order.shape, 1.0 / tab.V, dtype=torch.float64, device=tab.device)
    act = torch.nonzero(order >= 2).reshape(-1)
    if act.numel():
        key = ((h[act][:, None] ^ tab._vp[slot[act]]) & tab.mask) + slot[act][:, None] * tab.buckets
        full = tab.full.view(-1)[key].to(torch.int64)  # (n, V)
        tot = full.sum(1)
        num = full.gather(1, y[act][:, None]).squeeze(1)
        p[act] = torch.where(tot > 0, num.to(torch.float64) / tot.clamp(min=1).to(torch.float64),
                             torch.full_like(p[act], 1.0 / tab.V))
    return order, p


def ref_normalized_pass(val, pos, chunk, cfg, chunk_tokens, vocab_size):
    """ngram_pass's schedule with the reference lookup (targets only)."""
    tab = NgramTables(cfg, vocab_size)
    valt = torch.from_numpy(val)
    order = np.zeros(pos.size, dtype=np.int8)
    p = np.full(pos.size, 1.0 / vocab_size)
    total = len(val) - 1
    for c in range(int(chunk.max()) + 1):
        rows = np.nonzero(chunk == c)[0]
        if rows.size == 0:
            continue
        pt = torch.from_numpy(pos[rows])
        o, q = ref_lookup_normalized(tab, context_matrix(valt, pt, tab.width), valt[pt], pt)
        order[rows], p[rows] = o.numpy(), q.numpy()
        tab.absorb(valt[c * chunk_tokens:min((c + 1) * chunk_tokens, total)])
    return order, p


@pytest.mark.parametrize("buckets,succ,Vs", [(64, 3, V), (1024, 4, V), (1 << 16, 6, 300)])
def test_dedup_lookup_is_bit_identical_to_full_gather(buckets, succ, Vs):
    # 64 buckets: masked-key collisions everywhere (distinct full hashes share a ctx_key)
    val = markov_stream(4000, Vs, seed=11, succ=succ)
    cfg = MixerConfig(mode="normalized", buckets=buckets, warmup_tokens=0)
    tab = NgramTables(cfg, Vs)
    tab.absorb(val[:2500])
    pos = torch.arange(2500, 4000)
    ctx = context_matrix(torch.from_numpy(val), pos, tab.width)
    y = torch.from_numpy(val[2500:4000])
    n_ctx = pos.clone()
    n_ctx[::3] = torch.arange(0, 1500, 3) % 8  # positions that may only try orders <= n_ctx
    o_ref, p_ref = ref_lookup_normalized(tab, ctx, y, n_ctx)
    for block in (None, 5):  # default and a block that splits every order's contexts
        o, p = tab.lookup_normalized(ctx, y, n_ctx, block=block)
        assert torch.equal(o, o_ref) and torch.equal(p, p_ref)
    tab._cmult = 2**31  # pretend int32 sums could overflow: the int64 accumulator path
    assert torch.equal(tab.lookup_normalized(ctx, y, n_ctx)[1], p_ref)
    act = o_ref >= 2
    assert len(set(o_ref[act].tolist())) >= 4 and (o_ref == 1).any()
    assert (p_ref[act] < 1).any() and (p_ref[act] > 0).any()
    if buckets == 64:  # the premise of deduplicating on the masked key is exercised
        order, slot, h, _ = tab.select(ctx, n_ctx)
        a = order >= 2
        full_ids = torch.unique(torch.stack([slot[a], h[a]], 1), dim=0).shape[0]
        masked_ids = torch.unique(slot[a] * tab.buckets + (h[a] & tab.mask)).numel()
        assert masked_ids < full_ids


def test_normalized_pass_matches_reference_schedule():
    total = 64 + 16 * ((1600 - 64) // 16)
    val = markov_stream(total + 1, V, seed=12, succ=3)
    w = sliding_windows(total, 64, 16)
    pos = scored_positions(w)
    chunk = np.repeat(window_chunks(w, 300), w.n_scored)
    cfg = MixerConfig(mode="normalized", buckets=256)
    res = ngram_pass(val, pos, chunk, cfg, 300, vocab_size=V)
    r_order, r_p = ref_normalized_pass(val, pos, chunk, cfg, 300, V)
    assert np.array_equal(res.order, r_order)
    assert np.array_equal(res.p_ngram, r_p)
    assert (r_order >= 2).sum() > pos.size // 2


def test_normalizers_of_empty_tables_and_no_active_positions():
    cfg = MixerConfig(mode="normalized", buckets=128, warmup_tokens=0, min_count=1)
    tab = NgramTables(cfg, V)
    ctx = torch.zeros((4, tab.width), dtype=torch.int64)
    o, p = tab.lookup_normalized(ctx, torch.zeros(4, dtype=torch.int64))
    assert torch.all(o == 1) and torch.all(p == 1.0 / V)  # nothing counted: no order hit
    assert tab.normalizers(torch.zeros(0, dtype=torch.int64)).numel() == 0


def _stats(val, seq_len, stride, chunk_tokens):
    total = len(val) - 1
    w = sliding_windows(total, seq_len, stride)
    pos = scored_positions(w)
    chunk = np.repeat(window_chunks(w, chunk_tokens), w.n_scored)
    n_ctx = pos - np.repeat(w.starts, w.n_scored)  # #779's j + 1
    rng = np.random.default_rng(0)
    return pos, chunk, n_ctx, rng.uniform(1e-4, 0.9, total + 1), rng.uniform(0.5, 6.5, total + 1)


def test_miss_vocab_max_token_equals_779_reference():
    Vm = 1024  # the model's vocabulary; the stream's ids stay below 200, so #779's V = max + 1
    total = 32 * 30
    val = markov_stream(total + 1, 200, seed=13, succ=4)
    assert int(val.max()) + 1 < Vm - 1
    pos, chunk, n_ctx, pm, H = _stats(val, 32, 32, 250)  # non-overlapping windows: misses
    vmax = int(val.max()) + 1
    ref = ref_779_window_scores(val, 32, 32, 250, pm, H, vmax, 1024)
    r_order = np.array([ref[p][0][0] for p in pos])
    r_png = np.array([ref[p][0][1] for p in pos])
    cfg = MixerConfig(mode="hashed_target", buckets=1024, miss_vocab="max_token")
    res = ngram_pass(val, pos, chunk, cfg, 250, vocab_size=Vm, n_ctx=n_ctx)
    assert np.array_equal(res.order, r_order) and (r_order == 1).any() and (r_order >= 2).any()
    live = r_order > 0
    assert np.allclose(res.p_ngram[live], r_png[live], rtol=0, atol=1e-12)
    assert np.all(res.p_ngram[r_order == 1] == 1.0 / vmax)
    # the default uses the model's vocabulary on a miss, and only there differs
    dflt = ngram_pass(val, pos, chunk, MixerConfig(mode="hashed_target", buckets=1024), 250, vocab_size=Vm,
                      n_ctx=n_ctx)
    assert np.all(dflt.p_ngram[r_order == 1] == 1.0 / Vm)
    assert np.array_equal(dflt.p_ngram[r_order >= 2], res.p_ngram[r_order >= 2])
    assert cfg.table_key() != MixerConfig(mode="hashed_target", buckets=1024).table_key()


def test_miss_vocab_incremental_api():
    val = markov_stream(600, 20, seed=14)
    cfg = MixerConfig(mode="hashed_target", buckets=256, miss_vocab="max_token", warmup_tokens=0)
    with pytest.raises(NgramError, match="max_token"):
        NgramTables(cfg, 64)
    tab = NgramTables(cfg, 64, max_token=int(val.max()))
    tab.absorb(val[:300])
    pos = torch.arange(300, 600)
    ctx = context_matrix(torch.from_numpy(val), pos, tab.width)
    n_ctx = pos % 5  # short contexts: some positions find no order
    order, p = tab.lookup(ctx, torch.from_numpy(val[300:600]), n_ctx)
    assert (order == 1).any() and torch.all(p[order == 1] == 1.0 / (int(val.max()) + 1))
    _, rows = tab.lookup_all(ctx, n_ctx, normalize=False)
    assert torch.equal(rows[torch.arange(300), torch.from_numpy(val[300:600])], p)
    # normalized mode ignores miss_vocab: its rows are distributions over the model's V
    ncfg = cfg.model_copy(update={"mode": "normalized"})
    assert NgramTables(ncfg, 64).miss_p == 1.0 / 64
    assert ncfg.table_key() == MixerConfig(mode="normalized", buckets=256, warmup_tokens=0).table_key()
