"""Compliance audit: measured checks of the rules as applied (issue #1017, C1-C4).

Every check returns {"passed": bool, "value": ..., "detail": str}; `audit` runs those whose
inputs it is given and lists the others under "skipped". compliant = every check that ran
passed AND the core checks (mode, normalized_sum, single_pass, score_before_update) ran.

- mode: hashed_target always fails (target-keyed hash, PR #886; ruling in issue #1017).
- normalized_sum: sum_v p_mix(v) at sampled positions, from the model's full row and the
  n-gram row with the target-independent alpha; |sum - 1| <= 1e-4. For hashed_target the row
  is #779's per-candidate min(full(v), ctx)/ctx, whose sum is far above 1.
- causal (C1): the n-gram rows at positions <= t are unchanged when tokens >= t are perturbed
  (the pass is re-run); for the model, logits before t unchanged under a perturbed suffix.
- score_before_update (C3): an event log of ("score"|"absorb"|"train", lo, hi) stream ranges
  in execution order; nothing absorbed or trained before it was scored (#779's late `+1` fix
  is exactly such a leak). Tokens before the first scored target (token 0) are given context.
- single_pass / ratio_scored (C4): each position scored once, every target scored.
- artifact_bytes <= 16,000,000; eval_time <= the cap.
- entropy_floor: on a source with a known entropy rate, the scorer's bits/token must not fall
  below the entropy by more than k standard errors (entropy_source.py).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch

from golf_core import rules
from golf_core.eval import entropy_source
from golf_core.eval.config import MixerConfig
from golf_core.eval.mix import mix_nll
from golf_core.eval.mixer import alpha
from golf_core.eval.ngram import NgramResult, ngram_pass

SUM_TOL = 1e-4
CORE_CHECKS = ("mode", "normalized_sum", "single_pass", "score_before_update")
# checks that depend only on the eval's stats and the n-gram pass's schedule (one table key),
# not on the alpha settings: measured once per (eval, table key), reused by every mix of it
STREAM_CHECKS = ("single_pass", "ratio_scored", "score_before_update")


def stream_checks(result: Mapping[str, Any]) -> dict[str, dict]:
    """The config-independent checks of an audit result, to pass as `audit(shared=...)` for
    another config over the same stats and table key (the per-config ones are re-measured)."""
    return {k: v for k, v in (result.get("checks") or {}).items() if k in STREAM_CHECKS}


def _check(passed: bool, value: Any, detail: str) -> dict:
    return {"passed": bool(passed), "value": value, "detail": detail}


def check_mode(cfg: MixerConfig) -> dict:
    if cfg.mode == "tilt":
        return _check(True, "tilt", "token-only tilt (#2135, #1145): one prefix hint boosted, "
                                    "renormalized in closed form over the full vocabulary")
    return rules.mixer_mode(cfg.mode).as_dict()


def check_normalized_sum(cfg: MixerConfig, audit_p_model, audit_p_ngram, entropy, order, tol: float = SUM_TOL) -> dict:
    """Sum over the vocabulary of the mixed distribution at S audited positions."""
    pm = torch.as_tensor(np.asarray(audit_p_model, dtype=np.float64))  # (S, V)
    if pm.ndim != 2 or pm.shape[0] == 0:
        return _check(False, None, "no audited positions (audit_p_model is empty)")
    png = torch.as_tensor(np.asarray(audit_p_ngram, dtype=np.float64))
    a = alpha(torch.as_tensor(np.asarray(entropy, dtype=np.float64)), torch.as_tensor(np.asarray(order)), cfg)
    sums = ((1 - a)[:, None] * pm + a[:, None] * png).sum(1)
    dev = float((sums - 1).abs().max())
    return _check(dev <= tol, {"max_abs_dev": dev, "max_sum": float(sums.max()), "mean_sum": float(sums.mean()),
                               "positions": int(pm.shape[0])},
                  f"sum_v p(v) in [{float(sums.min()):.6g}, {float(sums.max()):.6g}] over {pm.shape[0]} positions"
                  f" (tolerance {tol:g})")


def _event_tuple(e) -> tuple[int, str, int, int]:
    """(rank, kind, lo, hi) from a tuple ("score", lo, hi) or the fused path's dict."""
    if isinstance(e, Mapping):
        return int(e.get("rank", 0)), str(e["kind"]), int(e["lo"]), int(e["hi"])
    return 0, str(e[0]), int(e[1]), int(e[2])


def check_score_before_update(events: Iterable) -> dict:
    """Every absorbed/trained stream index was scored before (or precedes all scoring).

    Events are in execution order per rank ((kind, lo, hi) tuples or dicts with kind/lo/hi
    and optional rank); each rank is checked on its own.
    """
    ev = [_event_tuple(e) for e in events]
    bad_kind = [e for e in ev if e[1] not in ("score", "absorb", "train")]
    if bad_kind:
        return _check(False, None, f"unknown event kind {bad_kind[0][1]!r}")
    if not any(e[1] == "score" for e in ev):
        return _check(False, None, "event log holds no score events")
    leaked, first_leak = 0, None
    for rank in sorted({e[0] for e in ev}):
        mine = [e for e in ev if e[0] == rank]
        scores = [e for e in mine if e[1] == "score"]
        n = max(e[3] for e in mine)
        revealed = np.zeros(n + 1, dtype=bool)
        revealed[:min((e[2] for e in scores), default=1)] = True  # token 0: context, never a target
        for _, kind, lo, hi in mine:
            if kind == "score":
                revealed[lo:hi] = True
                continue
            miss = int((~revealed[lo:hi]).sum())
            if miss:
                leaked += miss
                if first_leak is None:
                    idx = lo + int(np.argmin(revealed[lo:hi]))
                    first_leak = f"rank {rank}: {kind} [{lo}, {hi}) uses unscored token {idx}"
    if leaked:
        return _check(False, leaked, f"{leaked} tokens absorbed/trained before scored; first: {first_leak}")
    n_up = sum(1 for e in ev if e[1] != "score")
    return _check(True, 0, f"{len(ev) - n_up} score and {n_up} absorb/train events, nothing used before scored")


def check_single_pass(pos) -> dict:
    pos = np.asarray(pos)
    dup = pos.size - np.unique(pos).size
    return _check(dup == 0, int(dup), f"{dup} positions scored more than once" if dup else f"{pos.size} positions, each scored once")


def check_ratio_scored(pos, total_tokens: int) -> dict:
    ratio = np.unique(np.asarray(pos)).size / max(int(total_tokens), 1)
    return _check(abs(ratio - 1.0) < 1e-12, ratio, f"ratio_scored = {ratio:.6f} of {total_tokens} targets")


def check_artifact_bytes(nbytes: int, limit: int = rules.ARTIFACT_LIMIT_BYTES) -> dict:
    return rules.artifact_size(nbytes, limit=limit).as_dict()


def check_eval_time(seconds: float, cap: float) -> dict:
    return rules.eval_time(seconds, cap).as_dict()


def check_ngram_causal(val_tokens, stats: Mapping[str, Any], cfg: MixerConfig, chunk_tokens: int, vocab_size: int,
                       probes: int = 16, seed: int = 0, device="cpu") -> dict:
    """C1 for the n-gram pass: rows at positions <= t identical after perturbing val[t:].

    t is taken inside the second scored chunk (the first with tables to read), so the re-run
    covers at most two chunks.
    """
    val = np.asarray(val_tokens, dtype=np.int64)
    pos, chunk = np.asarray(stats["pos"], dtype=np.int64), np.asarray(stats["chunk"], dtype=np.int64)
    chunks = np.unique(chunk)
    c_t = chunks[min(1, chunks.size - 1)]
    rows = np.nonzero(chunk <= c_t)[0]
    in_ct = np.nonzero(chunk == c_t)[0]
    t = int(pos[in_ct[in_ct.size // 2]])
    rng = np.random.default_rng(seed)
    before = rows[pos[rows] <= t]
    probe = np.unique(np.concatenate([before[-probes // 2:], rng.choice(before, size=min(probes // 2, before.size),
                                                                        replace=False)]))
    local = np.searchsorted(rows, probe)
    sub = {"pos": pos[rows], "chunk": chunk[rows]}
    hi = int(pos[rows].max()) + 1
    a = ngram_pass(val[:hi], sub["pos"], sub["chunk"], cfg, chunk_tokens, vocab_size=vocab_size,
                   audit_idx=local, device=device, targets=False)
    pert = val[:hi].copy()
    pert[t:] = rng.integers(0, vocab_size, size=hi - t)
    b = ngram_pass(pert, sub["pos"], sub["chunk"], cfg, chunk_tokens, vocab_size=vocab_size,
                   audit_idx=local, device=device, targets=False)
    diff = float(np.abs(a.audit_p_ngram - b.audit_p_ngram).max())
    same_order = bool(np.array_equal(a.order[local], b.order[local]))
    ok = diff == 0.0 and same_order
    return _check(ok, diff, f"{probe.size} positions <= {t}: max |dp| = {diff:.3g} after perturbing tokens >= {t}"
                  + ("" if same_order else "; selected orders changed"))


@torch.no_grad()
def check_model_causal(model, tokens, cut: int | None = None, tol: float = 1e-5, seed: int = 0) -> dict:
    """C1 for the model: forward_logits before `cut` unchanged when inputs >= cut change."""
    x = torch.as_tensor(tokens).reshape(1, -1).to(torch.int64)
    dev = next(model.parameters()).device
    x = x.to(dev)
    T = x.shape[1]
    cut = T // 2 if cut is None else cut
    g = torch.Generator().manual_seed(seed)
    vocab = int(model.forward_logits(x[:, :1]).shape[-1])
    y = x.clone()
    y[:, cut:] = torch.randint(0, vocab, (1, T - cut), generator=g).to(dev)
    la, lb = model.forward_logits(x).float(), model.forward_logits(y).float()
    diff = float((la[:, :cut] - lb[:, :cut]).abs().max())
    changed = float((la[:, cut:] - lb[:, cut:]).abs().max())
    return _check(diff <= tol, diff, f"max |dlogit| before {cut} = {diff:.3g} (after: {changed:.3g}), tol {tol:g}")


def entropy_floor_check(cfg: MixerConfig, *, vocab_size: int = 1024, tokens: int = 20_000, chunk_tokens: int = 2048,
                        model: str = "true", k: float = 4.0, seed: int = 0, device="cpu") -> dict:
    """Score a Markov source with known entropy through the n-gram pass + mix under test.

    model: "true" = the source's own conditional distribution (the best causal model),
    "uniform" = 1/V. Passes if mean(nll - H_step) >= -k * standard error.
    """
    if model not in ("true", "uniform"):
        raise ValueError(f"entropy floor model must be 'true' or 'uniform' (got {model!r})")
    src = entropy_source.make_source(vocab_size, seed=seed)
    val = entropy_source.sample(src, tokens + 1, seed=seed + 1)
    pos = np.arange(1, tokens + 1)
    H_step = src.row_entropy()[val[pos - 1]]
    if model == "true":
        p_model = src.probs(val[pos - 1])[np.arange(tokens), val[pos]]
        ent = H_step
    else:
        p_model = np.full(tokens, 1.0 / vocab_size)
        ent = np.full(tokens, math.log(vocab_size))
    stats = {"pos": pos, "chunk": (pos - 1) // chunk_tokens, "p_model": p_model, "entropy": ent,
             "bytes": np.ones(tokens)}
    ng = ngram_pass(val, pos, stats["chunk"], cfg, chunk_tokens, vocab_size=vocab_size, device=device)
    d = mix_nll(stats, ng, cfg) - H_step
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    margin = float(d.mean())
    bits = float(mix_nll(stats, ng, cfg).mean() / math.log(2))
    rate = float(H_step.mean() / math.log(2))
    ok = margin >= -k * se
    return _check(ok, {"bits_per_token": bits, "entropy_bits_per_token": rate,
                       "stationary_entropy_bits": src.entropy_rate() / math.log(2),
                       "margin_nats": margin, "stderr_nats": se, "k": k},
                  f"{bits:.4f} bits/token vs entropy {rate:.4f} ({margin / max(se, 1e-300):+.1f} SE; "
                  f"fails below -{k:g} SE) on {tokens} tokens, V={vocab_size}, model={model}, "
                  f"buckets={cfg.buckets}")


def audit(*, spec=None, mixer_cfg: MixerConfig | None = None, vocab_size: int | None = None,
          stats: Mapping[str, Any] | None = None, ngram: NgramResult | None = None, val_tokens=None,
          chunk_tokens: int | None = None, events: Iterable | None = None, total_tokens: int | None = None,
          artifact_bytes: int | None = None, eval_time_s: float | None = None,
          max_eval_seconds: float | None = None, model=None, model_probe: Callable[[], dict] | None = None,
          entropy_floor: bool = False, entropy_floor_kwargs: dict | None = None, causal_ngram: bool = True,
          carried: Mapping[str, dict] | None = None, shared: Mapping[str, dict] | None = None,
          device="cpu") -> dict:
    """Run every check whose inputs are given; see the module docstring for each rule.

    spec (EvalSpec) supplies mixer_cfg, chunk_tokens and max_eval_seconds unless given.
    stats: token stats (pos, chunk, entropy; audit_idx + audit_p_model for normalized_sum; the
    run's own order / audit_p_ngram when present). ngram: a pass over those stats with audit
    rows; if neither it nor the stats' rows exist and val_tokens + chunk_tokens are given, the
    pass is run here. events: the run's event log (the fused path's score/absorb/train);
    without one the n-gram pass's replayed schedule is checked. model: checked for causality
    on the start of val_tokens (or model_probe() returns a check dict). carried: checks
    measured by the run (result.json) that cannot be re-measured; measured names win (the
    run's score_before_update is kept beside a replayed one as "score_before_update_run").
    shared: STREAM_CHECKS measured by an earlier audit over the same stats and n-gram table key
    (`stream_checks(earlier)`): used as they are, not re-measured (issue 21: np.unique over
    every position was 9x the mix itself). Only those names are taken from it.
    """
    shared = {k: v for k, v in (shared or {}).items() if k in STREAM_CHECKS}
    cfg = mixer_cfg if mixer_cfg is not None else (spec.mixer if spec is not None else MixerConfig())
    if chunk_tokens is None and spec is not None:
        chunk_tokens = spec.eval.chunk_tokens
    if max_eval_seconds is None:
        max_eval_seconds = spec.eval.max_eval_seconds if spec is not None else rules.EVAL_CAP_S
    if val_tokens is not None:
        val_tokens = np.asarray(val_tokens.cpu() if isinstance(val_tokens, torch.Tensor) else val_tokens,
                                dtype=np.int64).reshape(-1)
    if vocab_size is None and stats is not None and "audit_p_model" in stats and np.ndim(stats["audit_p_model"]) == 2:
        vocab_size = int(np.shape(stats["audit_p_model"])[1])
    if vocab_size is None and model is not None and hasattr(model, "cfg"):
        vocab_size = getattr(model.cfg, "vocab_size", None)
    vocab_size = int(vocab_size or 1024)

    checks: dict[str, dict] = {"mode": check_mode(cfg)}
    have_stream = val_tokens is not None and chunk_tokens is not None
    if stats is not None and len(stats.get("pos", ())) > 0:
        pos = np.asarray(stats["pos"])
        checks["single_pass"] = shared.get("single_pass") or check_single_pass(pos)
        if total_tokens is None and val_tokens is not None:
            total_tokens = len(val_tokens) - 1
        if "ratio_scored" in shared:
            checks["ratio_scored"] = shared["ratio_scored"]
        elif total_tokens is not None:
            checks["ratio_scored"] = check_ratio_scored(pos, total_tokens)
        aidx = stats.get("audit_idx")
        if cfg.mode == "tilt":
            _tilt_checks(checks, stats, cfg, val_tokens if causal_ngram else None)
            aidx = None  # the n-gram rows below are not tilt's
        run_rows = stats.get("audit_p_ngram") is not None and stats.get("order") is not None
        if ngram is None and not run_rows and have_stream and cfg.mode not in ("none", "tilt"):
            ngram = ngram_pass(val_tokens, pos, stats["chunk"], cfg, chunk_tokens, vocab_size=vocab_size,
                               audit_idx=aidx, device=device, n_ctx=stats.get("n_ctx"))
        if cfg.mode != "tilt" and aidx is not None and stats.get("audit_p_model") is not None and len(aidx):
            aidx = np.asarray(aidx, dtype=np.int64)
            rows = None
            if cfg.mode == "none":
                rows, order = np.zeros_like(np.asarray(stats["audit_p_model"])), np.zeros(aidx.size, dtype=np.int64)
            elif ngram is not None and ngram.audit_p_ngram is not None:
                rows, order = ngram.audit_p_ngram, ngram.order[aidx]
            elif run_rows:
                rows, order = stats["audit_p_ngram"], np.asarray(stats["order"])[aidx]
            if rows is not None:
                checks["normalized_sum"] = check_normalized_sum(cfg, stats["audit_p_model"], rows,
                                                                np.asarray(stats["entropy"])[aidx], order)
        if causal_ngram and have_stream and cfg.mode not in ("none", "tilt") and pos.size > 1:
            checks["causal"] = check_ngram_causal(val_tokens, stats, cfg, chunk_tokens, vocab_size, device=device)
    if events is None and getattr(ngram, "events", None):  # tilt's arrays carry no schedule
        events = ngram.events
    if "score_before_update" in shared:
        checks["score_before_update"] = shared["score_before_update"]
    elif events is not None:
        checks["score_before_update"] = check_score_before_update(events)
    if model_probe is not None:
        checks["causal_model"] = model_probe()
    elif model is not None and val_tokens is not None and len(val_tokens) >= 4:
        T = min(len(val_tokens) - 1, 256)
        checks["causal_model"] = check_model_causal(model, torch.from_numpy(val_tokens[:T]))
    if artifact_bytes is not None:
        checks["artifact_bytes"] = check_artifact_bytes(artifact_bytes)
    if eval_time_s is not None:
        checks["eval_time"] = check_eval_time(eval_time_s, max_eval_seconds)
    if entropy_floor:
        checks["entropy_floor"] = entropy_floor_check(cfg, device=device, **(entropy_floor_kwargs or {}))
    for name, chk in (carried or {}).items():
        if not (isinstance(chk, dict) and "passed" in chk):
            continue
        # measured here wins; the run's own event log (TTT included) is kept beside a replay
        key = name if name not in checks else (f"{name}_run" if name == "score_before_update" else None)
        if key is not None and key not in checks:
            checks[key] = dict(chk, detail=f"{chk.get('detail', '')} (measured by the run)".strip())
    skipped = [c for c in CORE_CHECKS if c not in checks]
    compliant = all(c["passed"] for c in checks.values()) and not skipped
    return {"compliant": bool(compliant), "checks": checks, "skipped": skipped}


def _tilt_checks(checks: dict, stats: Mapping[str, Any], cfg: MixerConfig, val_tokens) -> None:
    """Tilt's C1-C3: sum of the full tilted rows at the audit positions, and the hint pass's
    invariance to tokens >= t (x_t included) re-run on the stream (golf_core.eval.tilt_eval)."""
    from golf_core.eval.tilt import TiltError
    from golf_core.eval.tilt_eval import check_tilt_causal, check_tilt_sum, tilt_arrays

    try:
        arrays = tilt_arrays(stats, cfg)
    except TiltError as e:
        checks["normalized_sum"] = _check(False, None, str(e))
        return
    if stats.get("audit_idx") is not None and stats.get("audit_p_model") is not None and len(stats["audit_idx"]):
        checks["normalized_sum"] = check_tilt_sum(stats, arrays, cfg)
    if val_tokens is not None:
        checks["causal"] = check_tilt_causal(val_tokens, cfg)


def standalone_audit(cfg: MixerConfig, *, vocab_size: int = 1024, tokens: int = 20_000, chunk_tokens: int = 2048,
                     audit_positions: int = 32, entropy_floor: bool = False, entropy_floor_kwargs: dict | None = None,
                     seed: int = 0, device="cpu") -> dict:
    """Audit a mixer config without a model: the source's true distribution stands in for it.

    The stream is the entropy source; the stats, audit rows and events come from the n-gram
    pass, so mode, normalized_sum, causal, single_pass, ratio_scored and score_before_update
    are all measured (plus entropy_floor when asked).
    """
    src = entropy_source.make_source(vocab_size, seed=seed)
    val = entropy_source.sample(src, tokens + 1, seed=seed + 1)
    pos = np.arange(1, tokens + 1)
    probs_prev = src.probs
    rng = np.random.default_rng(seed)
    aidx = np.sort(rng.choice(tokens, size=min(audit_positions, tokens), replace=False))
    stats = {"pos": pos, "chunk": (pos - 1) // chunk_tokens, "entropy": src.row_entropy()[val[pos - 1]],
             "audit_idx": aidx, "audit_p_model": probs_prev(val[pos[aidx] - 1])}
    return audit(mixer_cfg=cfg, vocab_size=vocab_size, stats=stats, val_tokens=val, chunk_tokens=chunk_tokens,
                 total_tokens=tokens, entropy_floor=entropy_floor, entropy_floor_kwargs=entropy_floor_kwargs,
                 device=device)
