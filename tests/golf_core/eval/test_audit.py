"""The compliance audit catches #779's estimator and schedule leaks, and passes the legal mode."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.audit import (audit, check_model_causal, check_score_before_update, entropy_floor_check,
                                  standalone_audit)
from golf_core.eval.config import MixerConfig
from golf_core.eval.entropy_source import make_source, sample
from golf_core.eval.ngram import ngram_pass
from tests.golf_core.eval.ngram_ref import markov_stream


@pytest.fixture(scope="module")
def hashed16():
    return standalone_audit(MixerConfig(mode="hashed_target", buckets=16), tokens=8000, entropy_floor=True,
                            entropy_floor_kwargs={"tokens": 8000})


@pytest.fixture(scope="module")
def normalized():
    return standalone_audit(MixerConfig(mode="normalized", buckets=4096), tokens=8000, entropy_floor=True,
                            entropy_floor_kwargs={"tokens": 8000})


def test_audit_catches_hashed_target(hashed16):
    c = hashed16["checks"]
    assert hashed16["compliant"] is False
    assert not c["mode"]["passed"] and "#1017" in c["mode"]["detail"]
    assert not c["normalized_sum"]["passed"] and c["normalized_sum"]["value"]["max_sum"] > 5
    f = c["entropy_floor"]["value"]
    assert not c["entropy_floor"]["passed"] and f["bits_per_token"] < f["entropy_bits_per_token"] - 0.2
    # the schedule itself is fine: the estimator is what breaks the rules
    assert c["causal"]["passed"] and c["score_before_update"]["passed"] and c["single_pass"]["passed"]


def test_audit_passes_normalized(normalized):
    c = normalized["checks"]
    assert normalized["compliant"] is True, {k: v["detail"] for k, v in c.items()}
    assert c["normalized_sum"]["value"]["max_abs_dev"] < 1e-9
    assert c["entropy_floor"]["value"]["margin_nats"] > 0
    assert c["ratio_scored"]["value"] == 1.0


def test_entropy_source_rate_matches_the_path():
    src = make_source(256, seed=3)
    val = sample(src, 50_000, seed=4)
    path_mean = src.row_entropy()[val[:-1]].mean()
    assert abs(path_mean - src.entropy_rate()) < 0.05
    # the source's own distribution scores at its entropy (the floor the audit uses)
    nll = -np.log(src.probs(val[:-1])[np.arange(val.size - 1), val[1:]])
    assert abs(nll.mean() - path_mean) < 4 * nll.std() / np.sqrt(nll.size)


def test_hashed_target_beats_the_entropy_even_with_many_buckets():
    r = entropy_floor_check(MixerConfig(mode="hashed_target", buckets=1 << 12), tokens=8000)
    assert not r["passed"]


def _pass_events(C=300):
    val = markov_stream(1201, 32, seed=1)
    pos = np.arange(1, 1201)
    return ngram_pass(val, pos, (pos - 1) // C, MixerConfig(mode="normalized", buckets=256), C, vocab_size=32).events


def test_score_before_update_catches_the_plus_one_leak():
    ok = check_score_before_update(_pass_events())
    assert ok["passed"] and ok["value"] == 0
    # chunks scored by target index [cC, (c+1)C) and absorbed with #798's `chunk_end + 1`:
    C, ev = 300, []
    for c in range(4):
        ev.append(("score", max(c * C, 1), (c + 1) * C))
        ev.append(("absorb", c * C, (c + 1) * C + 1))
    bad = check_score_before_update(ev)
    assert not bad["passed"] and bad["value"] == 4 and "unscored token 300" in bad["detail"]
    # training on a chunk before it is scored is the same leak; the fused path's dict events too
    dict_ev = [{"kind": "score", "lo": 1, "hi": 300, "rank": 0, "chunk": 0},
               {"kind": "train", "lo": 0, "hi": 600, "rank": 0, "chunk": 0},
               {"kind": "score", "lo": 1, "hi": 600, "rank": 1, "chunk": 0}]
    r = check_score_before_update(dict_ev)
    assert not r["passed"] and "rank 0: train" in r["detail"] and r["value"] == 300


def test_audit_uses_spec_and_carries_run_checks():
    from golf_core.eval.config import EvalSpec
    val = markov_stream(2001, 32, seed=2)
    pos = np.arange(1, 2001)
    spec = EvalSpec(eval={"chunk_tokens": 500}, mixer={"mode": "normalized", "buckets": 256})
    stats = {"pos": pos, "chunk": (pos - 1) // 500, "entropy": np.full(2000, 3.0),
             "audit_idx": np.array([10, 900, 1900]), "audit_p_model": np.full((3, 32), 1 / 32)}
    rep = audit(spec=spec, stats=stats, val_tokens=torch.from_numpy(val), artifact_bytes=16_000_001,
                eval_time_s=12.0, carried={"causal_model": {"passed": True, "value": 0.0, "detail": "ok"}})
    c = rep["checks"]
    assert not rep["compliant"] and not c["artifact_bytes"]["passed"] and c["eval_time"]["passed"]
    assert c["normalized_sum"]["passed"] and c["causal"]["passed"] and c["score_before_update"]["passed"]
    assert c["causal_model"]["detail"].endswith("(measured by the run)")
    rep2 = audit(spec=spec, stats=dict(stats, pos=np.r_[pos[:-1], 5]), val_tokens=val, causal_ngram=False)
    assert not rep2["checks"]["single_pass"]["passed"] and rep2["checks"]["single_pass"]["value"] == 1
    assert audit(spec=spec)["skipped"] == ["normalized_sum", "single_pass", "score_before_update"]


class _Causal(torch.nn.Module):
    """A tiny causal LM stand-in: cumulative mean of embeddings (looks only backwards)."""

    def __init__(self, V=16, leak=False):
        super().__init__()
        self.emb, self.leak = torch.nn.Embedding(V, V), leak

    def forward_logits(self, x):
        e = self.emb(x)
        c = e.cumsum(1) / torch.arange(1, x.shape[1] + 1)[None, :, None]
        return c + (e.mean(1, keepdim=True) if self.leak else 0)


def test_model_causal_probe():
    x = torch.randint(0, 16, (64,), generator=torch.Generator().manual_seed(0))
    assert check_model_causal(_Causal(), x)["passed"]
    assert not check_model_causal(_Causal(leak=True), x)["passed"]


def test_ngram_causal_check_catches_a_lookahead_schedule(monkeypatch):
    import golf_core.eval.ngram as ngram_mod
    from golf_core.eval.audit import check_ngram_causal

    val = markov_stream(2001, 32, seed=7)
    pos = np.arange(1, 2001)
    stats = {"pos": pos, "chunk": (pos - 1) // 400}
    cfg = MixerConfig(mode="normalized", buckets=256)
    assert check_ngram_causal(val, stats, cfg, 400, 32)["passed"]
    real = ngram_mod.chunk_token_range
    # absorb a chunk together with the next one: the tables then hold tokens not yet scored
    monkeypatch.setattr(ngram_mod, "chunk_token_range", lambda c, total, C: (real(c, total, C)[0], min((c + 2) * C, total)))
    r = check_ngram_causal(val, stats, cfg, 400, 32)
    assert not r["passed"] and r["value"] > 0
