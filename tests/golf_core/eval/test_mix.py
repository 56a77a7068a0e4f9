"""mix_nll / mix_bpb over saved stats, and mix grid files."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.mix import MixError, MixInputs, grid_from_dict, load_grid, mix_bpb, mix_nll, stream_from_stats
from golf_core.eval.mixer import mixed_nll
from golf_core.eval.ngram import ngram_pass
from tests.golf_core.eval.ngram_ref import markov_stream


def _stats(n=3000, V=32, seed=0):
    val = markov_stream(n + 1, V, seed=seed)
    rng = np.random.default_rng(seed)
    pos = np.arange(1, n + 1)
    return val, {"pos": pos, "chunk": (pos - 1) // 500, "target": val[pos], "prev": val[pos - 1],
                 "bytes": rng.integers(1, 5, size=n), "p_model": rng.uniform(1e-3, 0.9, size=n),
                 "entropy": rng.uniform(0, 7, size=n).astype(np.float32)}


def test_mix_bpb_grid_equals_per_config_mix_nll():
    val, st = _stats()
    cfgs = grid_from_dict({"mixer": {"mode": "normalized", "buckets": 256, "alpha_base": [0.0, 0.05, 0.2],
                                     "alpha_range": [0.3, 0.55], "entropy_center": [3.0, 4.0],
                                     "alpha_max": [1.0, 0.4]}})
    cfgs.append(MixerConfig(mode="normalized", buckets=256, entropy_centers={2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5, 6: 3.2, 7: 3.0}))
    cfgs.append(MixerConfig(mode="none"))
    assert len(cfgs) == 26
    ng = ngram_pass(val, st["pos"], st["chunk"], cfgs[0], 500, vocab_size=32)
    got = mix_bpb(st, ng, cfgs, max_elems=1000)  # tiny tiles: exercises the blocking
    for cfg, b in zip(cfgs, got):
        want = mix_nll(st, ng, cfg).sum() / math.log(2) / st["bytes"].sum()
        assert math.isclose(b, want, rel_tol=1e-12), cfg
    assert len(set(round(b, 12) for b in got)) > 20  # the configs really differ
    f32 = mix_bpb(st, ng, cfgs[:4], dtype=torch.float32)
    assert np.allclose(f32, got[:4], rtol=1e-5)


def test_mix_inputs_bit_identical_to_mixed_nll():
    """The worker's fast path (conversions once per pass, in-place ops) must not move a single
    val_bpb (issue 21: the smoke sweep's results bit for bit): every element equal to the
    reference formula of golf_core.eval.mixer, over clamps, per-order centers and mode none."""
    val, st = _stats(4000, seed=3)
    st["p_model"][:50] = 1e-300  # the model-alone floor (tiny) and the mix's P_FLOOR both bite
    cfgs = grid_from_dict({"mixer": {"mode": "normalized", "buckets": 256, "alpha_base": [0.0, 0.05, 0.31],
                                     "alpha_range": [0.1, 0.55, 0.69], "entropy_slope": [0.5, 2.0, 7.3],
                                     "entropy_center": [1.0, 4.0], "alpha_max": [1.0, 0.25]}})
    cfgs.append(MixerConfig(mode="normalized", buckets=256, entropy_centers={2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5, 6: 3.2, 7: 3.0}))
    cfgs.append(MixerConfig(mode="none"))
    ng = ngram_pass(val, st["pos"], st["chunk"], cfgs[0], 500, vocab_size=32)
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
    inputs = MixInputs(st, ng)
    differ = 0
    for cfg in cfgs:
        want = mixed_nll(t(st["p_model"]), t(ng.p_ngram), t(st["entropy"]),
                         torch.from_numpy(np.asarray(ng.order, dtype=np.int64)), cfg).numpy()
        got = inputs.nll(cfg)
        assert got.dtype == np.float64 and np.array_equal(got, want), cfg
        assert np.array_equal(mix_nll(st, ng, cfg), want)  # without inputs: the same path
        differ += not np.array_equal(got, inputs.nll(MixerConfig(mode="none")))
    assert differ == len(cfgs) - 1  # every mixed config really mixes
    assert np.array_equal(inputs.nll(cfgs[0]), inputs.nll(cfgs[0]))  # no state left behind


def test_mix_bpb_refuses_mixed_table_configs():
    val, st = _stats(400)
    a, b = MixerConfig(mode="normalized", buckets=256), MixerConfig(mode="normalized", buckets=512)
    ng = ngram_pass(val, st["pos"], st["chunk"], a, 500, vocab_size=32)
    with pytest.raises(MixError, match="table_key"):
        mix_bpb(st, ng, [a, b])
    with pytest.raises(MixError, match="different table config"):
        mix_bpb(st, ng, [b])


def test_grid_axes_and_tuple_fields():
    cfgs = grid_from_dict({"mixer": {"mode": "normalized", "orders": [[2, 3], [2, 3, 4]], "alpha_base": [0.0, 0.1]}})
    assert [(c.orders, c.alpha_base) for c in cfgs] == [((2, 3), 0.0), ((2, 3), 0.1), ((2, 3, 4), 0.0), ((2, 3, 4), 0.1)]
    one = grid_from_dict({"mixer": {"orders": [2, 5], "entropy_centers": {2: 4.0, 5: 3.0}}})
    assert len(one) == 1 and one[0].orders == (2, 5) and one[0].entropy_centers == {2: 4.0, 5: 3.0}


@pytest.mark.parametrize("text,match", [
    ("mixer: {alpha_bse: [0.1]}", "mixer.alpha_bse: unknown key"),
    ("mixer: {alpha_base: [0.1, 0.9], alpha_range: 0.55}", "grid point 1 .*alpha_base \\+ alpha_range"),
    ("mixer: {buckets: [1000]}", "mixer.buckets: .*power of two"),
    ("mixer: {alpha_base: []}", "mixer.alpha_base: empty list"),
    ("eval: {stride: 64}", "exactly one key 'mixer'"),
    ("mixer: [1, 2", "not valid YAML"),
])
def test_load_grid_errors_name_the_field(tmp_path, text, match):
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    with pytest.raises(MixError, match=match) as e:
        load_grid(p)
    assert "\n" not in str(e.value)


def test_stream_rebuilt_from_stats():
    val, st = _stats(200)
    assert np.array_equal(stream_from_stats(st), val)
    bad = dict(st, pos=st["pos"][st["pos"] != 100], target=st["target"][st["pos"] != 100],
               prev=st["prev"][st["pos"] != 100])
    bad["pos"] = np.where(bad["pos"] == 101, 102, bad["pos"])  # a hole the stats cannot fill
    with pytest.raises(MixError):
        stream_from_stats(bad)
