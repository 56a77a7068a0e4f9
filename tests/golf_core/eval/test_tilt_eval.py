"""Tilt mode end to end in golf_core: the fused path (a record's run) == the factorized one
(hints priced by the neural pass, then threshold/boost elementwise) within 1e-6 bpb, counts in
result.json, the audit's tilt checks, and the closed form against the full tilted row."""
from __future__ import annotations

import math

import numpy as np
import pytest

from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig, TTTConfig
from golf_core.eval.tilt import hint_pass, tilt_nll, tilt_row
from tests.golf_core.eval.test_run import artifact_dir  # noqa: F401  (module fixture)

EVAL = EvalConfig(seq_len=32, stride=16, batch_seqs=8, chunk_tokens=512, max_tokens=3072, audit_positions=16)
TILT = MixerConfig(mode="tilt", tilt_order=3, tilt_threshold=0.3, tilt_boost=1.5)


@pytest.fixture(scope="module")
def runs(artifact_dir, synthetic_data_dir, tmp_path_factory):  # noqa: F811
    from golf_core.eval.run import run_eval

    def go(mixer: MixerConfig, eval_cfg: EvalConfig = EVAL, ttt: bool = False):
        out = tmp_path_factory.mktemp("tilt")
        spec = EvalSpec(eval=eval_cfg, mixer=mixer, ttt=TTTConfig(enabled=ttt, lr=1e-3, batch_seqs=4))
        return run_eval(artifact_dir, spec, synthetic_data_dir, out), out
    return go


@pytest.mark.parametrize("ttt", [False, True], ids=["plain", "ttt"])
def test_fused_tilt_equals_factorized(runs, ttt):
    from golf_core.eval.mix import mix_bpb, mix_nll
    from golf_core.eval.mix_dir import mix_job
    from golf_core.eval.stats import bpb_from_stats, load_stats

    tables = ((TILT.tilt_order, TILT.tilt_table_bits), (5, 0))
    neural, ndir = runs(MixerConfig(), EVAL.model_copy(update={"tilt_tables": tables}), ttt=ttt)
    fused, _ = runs(TILT, ttt=ttt)
    stats = load_stats(ndir)
    for key in ("tilt_hint_o3_b0", "tilt_ptop_o3_b0", "tilt_q_o3_b0", "tilt_q_o5_b0"):
        assert key in stats
    nll = mix_nll(stats, None, TILT)
    bpb = bpb_from_stats(stats, nll)
    assert abs(fused["val_bpb"] - bpb) < 1e-6
    assert abs(mix_bpb(stats, None, [TILT, MixerConfig()])[0] - bpb) < 1e-9
    assert fused["val_bpb_model"] == pytest.approx(neural["val_bpb"], rel=1e-12)
    assert fused["tilt_gated"] > 50 and 0 < fused["tilt_hits"] <= fused["tilt_gated"]
    assert fused["val_bpb"] != pytest.approx(neural["val_bpb"], abs=1e-4), "the tilt changed the score"
    assert "tilt_hint_time_s" in fused and fused["tilt_hint_time_s"] <= fused["eval_time_s"]
    job = mix_job(ndir, TILT)
    assert abs(job["val_bpb"] - bpb) < 1e-12
    # `golf mix --grid`: tilt points beside others, grouped per hint table (orders 3 and 5)
    from golf_core.eval.mix import grid_from_dict
    from golf_core.eval.mix_dir import grid_rows

    cfgs = grid_from_dict({"mixer": {"mode": "tilt", "tilt_order": [3, 5], "tilt_threshold": [0.3, 0.9],
                                     "tilt_boost": [0.5, 1.5]}})
    rows = grid_rows(ndir, cfgs + [MixerConfig()])
    for c, r in zip(cfgs, rows):
        assert abs(r["val_bpb"] - bpb_from_stats(stats, mix_nll(stats, None, c))) < 1e-9 and r["compliant"]
    assert rows[[c.model_dump() for c in cfgs].index(TILT.model_dump())]["val_bpb"] == pytest.approx(bpb, abs=1e-9)
    assert rows[-1]["val_bpb"] == pytest.approx(neural["val_bpb"], rel=1e-9)
    assert (job["tilt_gated"], job["tilt_hits"]) == (fused["tilt_gated"], fused["tilt_hits"])
    for res in (fused, job):
        checks = res["compliance"]["checks"]
        assert res["compliance"]["compliant"], checks
        assert checks["normalized_sum"]["value"]["max_abs_dev"] < 1e-9
        assert checks["causal"]["passed"] and checks["single_pass"]["passed"]
        assert checks["score_before_update"]["passed"]
    # the neural pass's q is p_model(hint): where the hint is the target it is p_model itself
    h, q, t = stats["tilt_hint_o3_b0"], stats["tilt_q_o3_b0"], stats["target"]
    same = h == t
    assert same.sum() > 10
    np.testing.assert_allclose(q[same], stats["p_model"][same], rtol=1e-6)


def test_tilted_row_sums_to_one_and_matches_the_closed_form():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(1024))
    for h, beta in ((3, 2.625), (700, 0.5), (0, 10.0)):
        row = tilt_row(p, h, beta)
        assert abs(row.sum() - 1) < 1e-12
        for y in (h, 5):
            want = tilt_nll([-math.log(p[y])], [p[h]], [h], [np.float32(0.9)], [y], 0.8, beta)[0]
            assert -math.log(row[y]) == pytest.approx(want, abs=1e-12)


def test_hint_reads_only_the_strict_prefix():
    rng = np.random.default_rng(1)
    s = rng.integers(0, 8, size=5000)
    a = hint_pass(s, 4)
    for t in (10, 2500, 4999):
        b = s.copy()
        b[t:] = rng.integers(0, 8, size=s.size - t)
        h = hint_pass(b, 4)
        assert np.array_equal(a.hint[: t + 1], h.hint[: t + 1]) and np.array_equal(a.p_top[: t + 1], h.p_top[: t + 1])
    assert (a.hint[:3] == -1).all() and (a.hint[3:] >= -1).all()  # no hint before order - 1 real tokens


def test_hint_pass_matches_a_plain_dictionary():
    """Small stream, order 3: the top token / p_top from dicts keyed by token tuples (no hash
    collision at this size), with the reference's strict-exceeds rule."""
    rng = np.random.default_rng(2)
    s = rng.integers(0, 5, size=3000)
    h = hint_pass(s, 3)
    tot, pair, top = {}, {}, {}
    for i in range(2, s.size):
        c = (int(s[i - 2]), int(s[i - 1]))
        if c in tot:
            tc, tt = top[c]
            assert h.hint[i] == tt and h.p_top[i] == np.float32(tc) / np.float32(tot[c])
        else:
            assert h.hint[i] == -1
        y = int(s[i])
        pair[c + (y,)] = pair.get(c + (y,), 0) + 1
        tot[c] = tot.get(c, 0) + 1
        if c not in top or pair[c + (y,)] > top[c][0]:
            top[c] = (pair[c + (y,)], y)


def _emulate_reference(s, order, pair_mix):
    """#2135's token channel as plain Python over 64-bit keys (maps instead of probing)."""
    from golf_core.eval.tilt import HASH_K

    M, L = 2**64, order - 1
    K = [int(k) for k in HASH_K]
    pair, ctx = {}, {}
    hint = np.full(len(s), -1)
    ptop = np.zeros(len(s), dtype=np.float32)
    for i in range(L, len(s)):
        ck = 0
        for j in range(L):
            ck ^= (int(s[i - L + j]) * K[j]) % M
        y = int(s[i])
        if ck in ctx:
            tot, tc, tt = ctx[ck]
            hint[i], ptop[i] = tt, np.float32(tc) / np.float32(tot)
        pk = ((ck * pair_mix) % M) ^ ((y * K[L % 32]) % M)
        pair[pk] = pair.get(pk, 0) + 1
        c = pair[pk]
        if ck not in ctx:
            ctx[ck] = [1, c, y]
        else:
            e = ctx[ck]
            e[0] += 1
            if c > e[1]:
                e[1], e[2] = c, y
    return hint, ptop


@pytest.mark.parametrize("pair_mix", [1000003, 0], ids=["reference-keys", "all-pair-keys-collide"])
def test_hint_pass_reproduces_shared_pair_keys(monkeypatch, pair_mix):
    """With PAIR_MIX = 0 every context's pair key is tok * K: pair counters are shared across
    contexts, the reference's collision semantics at their most extreme (the merge path)."""
    from golf_core.eval import tilt

    monkeypatch.setattr(tilt, "PAIR_MIX", np.uint64(pair_mix))
    rng = np.random.default_rng(3)
    s = np.concatenate([rng.integers(0, 6, size=1500), rng.integers(0, 6, size=300)])
    s = np.concatenate([s, s[:700]])
    for order in (3, 5):
        want_h, want_p = _emulate_reference(s, order, pair_mix)
        got = tilt.hint_pass(s, order)
        np.testing.assert_array_equal(got.hint, want_h)
        np.testing.assert_array_equal(got.p_top, want_p)
