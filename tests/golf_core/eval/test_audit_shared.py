"""Config-independent audit checks measured once per (eval, table key) and reused (issue 21):
the reused verdicts equal the measured ones, and the per-config checks stay per config, so a
broken config audited with a good config's shared checks still fails."""
from __future__ import annotations

import numpy as np

from golf_core.eval import audit as audit_mod
from golf_core.eval.audit import STREAM_CHECKS, audit, stream_checks
from golf_core.eval.config import MixerConfig
from golf_core.eval.ngram import ngram_pass


def _inputs(tokens: int = 6000, vocab: int = 64, chunk: int = 1024, seed: int = 0):
    rng = np.random.default_rng(seed)
    val = rng.integers(0, vocab, tokens + 1)
    pos = np.arange(1, tokens + 1)
    aidx = np.sort(rng.choice(tokens, size=16, replace=False))
    pm = rng.dirichlet(np.ones(vocab), size=aidx.size)
    stats = {"pos": pos, "chunk": (pos - 1) // chunk, "entropy": rng.uniform(0, 4, tokens), "audit_idx": aidx,
             "audit_p_model": pm}
    return val, stats, chunk, vocab


def _run(cfg, val, stats, chunk, vocab, shared=None):
    ng = ngram_pass(val, stats["pos"], stats["chunk"], cfg, chunk, vocab_size=vocab, audit_idx=stats["audit_idx"])
    return audit(mixer_cfg=cfg, vocab_size=vocab, stats=stats, ngram=ng, total_tokens=len(val) - 1,
                 causal_ngram=False, shared=shared)


def test_shared_checks_equal_measured_and_are_not_remeasured(monkeypatch):
    val, stats, chunk, vocab = _inputs()
    a = MixerConfig(mode="normalized", orders=(2, 3), buckets=4096, alpha_base=0.1, alpha_range=0.3)
    b = a.model_copy(update={"alpha_base": 0.3, "alpha_range": 0.5})
    first = _run(a, val, stats, chunk, vocab)
    shared = stream_checks(first)
    assert set(shared) == set(STREAM_CHECKS) and first["compliant"]
    calls = []
    for name in ("check_single_pass", "check_ratio_scored", "check_score_before_update"):
        monkeypatch.setattr(audit_mod, name, lambda *a, _n=name, **k: calls.append(_n))
    second = _run(b, val, stats, chunk, vocab, shared=shared)
    assert calls == []  # reused, not measured again
    monkeypatch.undo()
    measured = _run(b, val, stats, chunk, vocab)
    assert second == measured  # the same verdict, every check equal


def test_a_broken_config_still_fails_with_a_good_configs_shared_checks():
    val, stats, chunk, vocab = _inputs()
    good = MixerConfig(mode="normalized", orders=(2, 3), buckets=4096)
    shared = stream_checks(_run(good, val, stats, chunk, vocab))
    bad = MixerConfig(mode="hashed_target", orders=(2, 3), buckets=16)
    res = _run(bad, val, stats, chunk, vocab, shared=shared)
    assert not res["compliant"]
    assert not res["checks"]["normalized_sum"]["passed"]  # sum_v p(v) measured for this config
    assert not res["checks"]["mode"]["passed"]


def test_shared_takes_only_stream_checks():
    val, stats, chunk, vocab = _inputs()
    cfg = MixerConfig(mode="normalized", orders=(2, 3), buckets=4096)
    fake = {"normalized_sum": {"passed": True, "value": 0, "detail": "forged"},
            "single_pass": {"passed": False, "value": 3, "detail": "3 positions scored more than once"}}
    res = _run(cfg, val, stats, chunk, vocab, shared=fake)
    assert res["checks"]["normalized_sum"]["detail"] != "forged"
    assert not res["checks"]["single_pass"]["passed"] and not res["compliant"]  # a shared failure still fails
