"""The fused end-to-end path (what a record runs) == the factorized one (neural stats, then
ngram_pass, then mix): same per-token orders and probabilities, val_bpb within 1e-6."""
from __future__ import annotations

import numpy as np
import pytest

from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig, TTTConfig
from tests.golf_core.eval.test_run import artifact_dir  # noqa: F401  (module fixture)

EVAL = EvalConfig(seq_len=32, stride=16, batch_seqs=8, chunk_tokens=512, max_tokens=3072, audit_positions=8)
CENTERS = {2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5, 6: 3.2, 7: 3.0}  # PR #798


def _factorized(stats, val, cfg, n_ctx=True):
    from golf_core.eval.mix import mix_bpb, mix_nll
    from golf_core.eval.ngram import ngram_pass
    from golf_core.eval.stats import bpb_from_stats

    ng = ngram_pass(val, stats["pos"], stats["chunk"], cfg, EVAL.chunk_tokens, vocab_size=1024,
                    n_ctx=stats["n_ctx"] if n_ctx else None)
    nll = mix_nll(stats, ng, cfg)
    assert mix_bpb(stats, ng, [cfg])[0] == pytest.approx(bpb_from_stats(stats, nll), rel=1e-9)
    return ng, bpb_from_stats(stats, nll)


@pytest.fixture(scope="module")
def runs(artifact_dir, synthetic_data_dir, tmp_path_factory):  # noqa: F811
    from golf_core.eval.run import run_eval

    def go(mixer: MixerConfig, ttt: bool = False):
        out = tmp_path_factory.mktemp("fused")
        spec = EvalSpec(eval=EVAL, mixer=mixer, ttt=TTTConfig(enabled=ttt, lr=1e-3, batch_seqs=4))
        return run_eval(artifact_dir, spec, synthetic_data_dir, out), out
    return go


@pytest.fixture(scope="module")
def val(synthetic_data_dir):
    from golf_core.data.shards import load_split

    return load_split(synthetic_data_dir, "val")[: EVAL.max_tokens + 1].numpy()


@pytest.mark.parametrize("mixer", [
    MixerConfig(mode="normalized", buckets=4096, warmup_tokens=100),
    MixerConfig(mode="hashed_target", buckets=4096, entropy_centers=CENTERS),
], ids=["normalized", "hashed_target+centers"])
def test_fused_equals_factorized(runs, val, mixer):
    from golf_core.eval.stats import load_stats

    neural, neural_dir = runs(MixerConfig())  # the eval job of a factorized sweep
    fused, fused_dir = runs(mixer)
    ns, fs = load_stats(neural_dir), load_stats(fused_dir)
    ng, bpb = _factorized(ns, val, mixer)
    assert abs(fused["val_bpb"] - bpb) < 1e-6
    assert fused["val_bpb_model"] == pytest.approx(neural["val_bpb"], rel=1e-12)
    assert np.array_equal(fs["order"], ng.order) and np.array_equal(fs["p_ngram"], ng.p_ngram)
    assert (fs["order"] >= 2).mean() > 0.3, "the tables were used"
    assert fused["val_bpb"] != pytest.approx(neural["val_bpb"], abs=1e-3), "the mixer changed the score"
    # the saved n_ctx only matters in a window's first max_order positions; here it is the default
    assert abs(_factorized(ns, val, mixer, n_ctx=False)[1] - bpb) < 1e-12
    checks = fused["compliance"]["checks"]
    assert checks["score_before_update"]["passed"] and checks["causal"]["passed"]
    if mixer.mode == "normalized":
        assert fused["compliance"]["compliant"], checks
        assert checks["normalized_sum"]["value"]["max_abs_dev"] < 1e-9
    else:
        assert not fused["compliance"]["compliant"] and not checks["mode"]["passed"]
        assert checks["normalized_sum"]["value"]["max_sum"] > 1.01


def test_fused_with_ttt_equals_factorized_on_its_own_stats(runs, val):
    from golf_core.eval.stats import load_stats

    mixer = MixerConfig(mode="normalized", buckets=4096)
    fused, out = runs(mixer, ttt=True)
    stats = load_stats(out)
    ng, bpb = _factorized(stats, val, mixer)
    assert fused["ttt_steps"] > 0
    assert abs(fused["val_bpb"] - bpb) < 1e-6
    assert np.allclose(stats["p_mix"][stats["order"] == 0], stats["p_model"][stats["order"] == 0])
