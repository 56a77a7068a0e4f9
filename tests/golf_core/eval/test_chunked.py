"""Score-first chunked evaluation: same score as sliding, stats in scoring order, the event log,
no token absorbed or trained on before it is scored, 2 ranks == 1 rank."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.chunked import audit_positions, check_score_before_update, evaluate_chunked
from golf_core.eval.config import MixerConfig, TTTConfig
from golf_core.eval.sliding import evaluate_sliding
from golf_core.eval.stats import bpb_from_stats, load_stats, save_stats
from tests.golf_core.eval import neural_kit
from tests.golf_core.eval.neural_kit import EC, tiny_model, val_stream



def test_chunked_equals_sliding_and_stats_are_complete(synthetic_data_dir, byte_luts, tmp_path):
    model = tiny_model(1)
    val = val_stream(synthetic_data_dir, 1001)
    ref = evaluate_sliding(model, val, byte_luts, EC, "cpu")
    res = evaluate_chunked(model, val, byte_luts, EC, TTTConfig(), "cpu")
    assert res.n_chunks == 5 and res.sums.tokens == 1000
    assert res.sums.val_bpb == pytest.approx(ref["val_bpb"], rel=1e-6)
    st = res.stats
    assert st["pos"].tolist() == list(range(1, 1001))  # scoring order, each target once
    v = val.numpy()
    assert (st["target"] == v[st["pos"]]).all() and (st["prev"] == v[st["pos"] - 1]).all()
    assert (st["bytes"] == byte_luts.target_bytes_np(st["prev"], st["target"])).all()
    assert bpb_from_stats(st) == pytest.approx(res.sums.val_bpb, rel=1e-12)
    assert ((st["entropy"] > 0) & (st["entropy"] <= np.log(1024) + 1e-4)).all()
    assert (np.diff(st["chunk"]) >= 0).all() and st["chunk"].max() == 4
    # audit rows: full distributions at fixed sampled positions, each summing to 1
    assert st["audit_p_model"].shape == (6, 1024)
    assert (st["pos"][st["audit_idx"]] == audit_positions(1000, 6)).all()
    np.testing.assert_allclose(st["audit_p_model"].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(st["audit_p_model"][np.arange(6), st["target"][st["audit_idx"]]],
                               st["p_model"][st["audit_idx"]], rtol=1e-5)
    back = load_stats(save_stats(tmp_path, st))
    assert set(back) == set(st) and np.array_equal(back["p_model"], st["p_model"])


def test_temperature_is_a_plain_division(synthetic_data_dir, byte_luts):
    model = tiny_model(1)
    val = val_stream(synthetic_data_dir, 300)
    hot = evaluate_chunked(model, val, byte_luts, EC.model_copy(update={"temperature": 2.0}), TTTConfig(), "cpu")

    class Halved(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward_logits(self, x):
            return self.m.forward_logits(x) / 2.0

    ref = evaluate_chunked(Halved(model), val, byte_luts, EC, TTTConfig(), "cpu")
    assert hot.sums.val_bpb == pytest.approx(ref.sums.val_bpb, rel=1e-6)
    adaptive = evaluate_chunked(model, val, byte_luts, EC.model_copy(update={"temperature": 0.98, "adaptive_temperature": True}),
                                TTTConfig(), "cpu")
    assert adaptive.sums.val_bpb != hot.sums.val_bpb


def test_nothing_absorbed_or_trained_before_scored(byte_luts):
    """Instrumented: token id == stream position here, so the model's training inputs reveal
    exactly which positions TTT sees; absorbs are checked against the positions scored so far."""
    val = torch.arange(1000) % 1024  # position == token id
    model = tiny_model(2)
    scored: set[int] = set()
    seen: list[tuple[str, int, int]] = []
    orig = model.forward_logits

    def spy(x):
        if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
            hi = int(x.max()) + 1  # + the shifted target
            seen.append(("train", int(x.min()), hi))
            assert all(p in scored for p in range(max(int(x.min()), 1), hi + 1)), "TTT saw an unscored token"
        return orig(x)

    model.forward_logits = spy

    def on_scored(c, st):
        scored.update(st["pos"].tolist())

    def absorb(c, rng):
        lo, hi = rng
        seen.append(("absorb", lo, hi))
        assert all(p in scored for p in range(max(lo, 1), hi)), "absorbed an unscored token"

    ttt = TTTConfig(enabled=True, lr=1e-3, batch_seqs=2)
    res = evaluate_chunked(model, val, byte_luts, EC, ttt, "cpu", on_scored=on_scored, after_score=absorb)
    assert [k for k, *_ in seen].count("absorb") == res.n_chunks == 5
    assert any(k == "train" for k, *_ in seen)
    ok, detail = check_score_before_update(res.events)
    assert ok, detail
    # the last chunk is absorbed but never trained on
    trained = {e["chunk"] for e in res.events if e["kind"] == "train"}
    assert trained == set(range(res.n_chunks - 1))
    # event order per chunk: score, absorb, then train
    kinds = [(e["chunk"], e["kind"]) for e in res.events]
    for c in range(res.n_chunks):
        ks = [k for cc, k in kinds if cc == c]
        assert ks[0] == "score" and ks[1] == "absorb"


def test_check_catches_a_premature_update():
    good = [{"kind": "score", "chunk": 0, "lo": 1, "hi": 101}, {"kind": "absorb", "chunk": 0, "lo": 0, "hi": 100},
            {"kind": "train", "chunk": 0, "lo": 0, "hi": 101}]
    assert check_score_before_update(good)[0]
    leak = good[:1] + [{"kind": "absorb", "chunk": 0, "lo": 0, "hi": 102}]  # #779's old +1
    ok, detail = check_score_before_update(leak)
    assert not ok and "absorb" in detail
    early = [{"kind": "train", "chunk": 0, "lo": 0, "hi": 10}] + good
    assert not check_score_before_update(early)[0]


# ---- 2 ranks (gloo, separate processes) == 1 rank ---------------------------------------
@pytest.mark.slow
def test_two_ranks_equal_one_rank_and_ttt_stays_in_sync(synthetic_data_dir, byte_luts, tmp_path):
    from golf_core.train.distributed import launch_local

    out = tmp_path / "r2.npz"
    assert launch_local([neural_kit.__file__, "two-ranks", str(synthetic_data_dir), str(out)], 2) == 0
    two = dict(np.load(out))
    one = neural_kit.fused_eval(synthetic_data_dir, byte_luts)
    assert float(two["sum_tokens"]) == one.sums.tokens == 1200
    assert abs(float(two["sum_nll"]) - one.sums.nll) / one.sums.nll < 1e-12
    assert float(two["sum_bytes"]) == one.sums.bytes
    bpb2 = float(two["sum_nll"]) / np.log(2) / float(two["sum_bytes"])
    assert abs(bpb2 - one.sums.val_bpb) < 1e-9
    assert abs(float(two["sum_mix"]) - one.mix_sums.nll) / one.mix_sums.nll < 1e-12
    assert (one.stats["order"] >= 2).any(), "the mixer found n-gram hits"
    assert set(one.stats) >= {"order", "p_ngram", "p_mix", "audit_p_ngram", "audit_p_mix"}
    for k, v in one.stats.items():
        assert np.array_equal(two[k], v), k
    # TTT: averaged gradients keep both ranks' adapted weights identical; every rank took
    # 3 trained chunks x ceil(4 / 2) steps although one rank had only 3 sequences per chunk
    w0, w1 = np.load(f"{out}.cq0.npy"), np.load(f"{out}.cq1.npy")
    assert np.array_equal(w0, w1)
    assert not np.array_equal(w0, tiny_model(6).blocks[-1].attn.c_q.weight.detach().numpy())
    assert int(np.load(f"{out}.steps.npy")[0]) == 3 * 2


def test_ranks_with_no_window_in_a_chunk(synthetic_data_dir, byte_luts):
    """Chunks of 20 targets hold 2-3 windows: with 4 ranks some ranks score nothing in a chunk.
    Each simulated rank's share (no process group: sums stay local) must still line up, and
    together the shares are exactly the 1-rank evaluation, mixer included."""
    from golf_core.eval.run import FusedMixer

    val = val_stream(synthetic_data_dir, 301)
    ec = EC.model_copy(update={"chunk_tokens": 20, "batch_seqs": 1, "audit_positions": 0})
    mixer = MixerConfig(mode="normalized", buckets=1024, warmup_tokens=20)

    def run(rank, world):
        fused = FusedMixer(mixer, val, 1024, "cpu")
        return evaluate_chunked(tiny_model(4), val, byte_luts, ec, TTTConfig(), "cpu", rank, world,
                                on_scored=fused.on_scored, after_score=fused.absorb)

    one = run(0, 1)
    shares = [run(r, 4) for r in range(4)]
    from golf_core.eval.windows import sliding_windows, window_chunks

    per_chunk = np.bincount(window_chunks(sliding_windows(300, 32, 8), 20))
    assert (per_chunk < 4).any(), "some chunk leaves a rank without a window"
    assert any(np.unique(s.stats.get("chunk", [])).size < one.n_chunks for s in shares)
    merged = {k: np.concatenate([s.stats[k] for s in shares if s.stats]) for k in one.stats}
    order = np.argsort(merged["pos"])
    for k, v in one.stats.items():
        assert np.array_equal(merged[k][order], v), k
    assert sum(s.sums.nll for s in shares) == pytest.approx(one.sums.nll, rel=1e-12)
