"""The statistics of a record claim: is the seeds' mean better than the current best by enough?

Pure functions (no Ray, no MLflow, no files): `record_statistics` runs the test and gives the
verdict, `merge_compliance` folds every seed's checks into one verdict, `submittable` joins the
two. orchestrator.records.write writes the submission folder from their outputs.

The rule (openai/parameter-golf README, "New SOTA records"): beat the current best by at least
0.005 nats at p < 0.01, "as in modded-nanogpt"; usually shown with 3 seeds. Statistics are part
of a record (KellerJordan/modded-nanogpt's records/*: mean, std, p-value per claim).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from golf_core.rules import LN2
from golf_core.errors import UserError

__all__ = [
    "ALPHA", "CLAIM_VERDICTS", "DEFAULT_BEST_BPB", "DEFAULT_BEST_SOURCE", "LN2", "MIN_IMPROVEMENT_NATS",
    "PRACTICE_ALPHA", "REPORT_ALPHAS", "RecordError", "VERDICTS", "claim_statistics", "merge_compliance",
    "record_statistics", "submittable", "tokens_per_byte", "welch_less",
]

# The best legal score at the last look (shared/CONTEXT.md): the 2026-04-27 record's 3-seed mean.
DEFAULT_BEST_BPB = 1.0611
DEFAULT_BEST_SOURCE = ("openai/parameter-golf records/track_10min_16mb/"
                       "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611 (3-seed mean)")
MIN_IMPROVEMENT_NATS = 0.005
ALPHA = 0.01
# What the leaderboard admitted in practice (PR #1902; #1855 went in at p = 0.188): reported beside
# the README's p < 0.01, never instead of it.
PRACTICE_ALPHA = 0.25
REPORT_ALPHAS = (ALPHA, PRACTICE_ALPHA)
VERDICTS = ("record", "not significant", "not better")
# Every seed scores the same validation tokens, so loss / bpb is the same constant for all of
# them; a larger spread means the seeds were not scored on the same tokens.
_RATIO_RTOL = 1e-6


class RecordError(UserError):
    """Inputs that cannot make a record claim (one line naming what is wrong)."""


# ---------------------------------------------------------------------------------------------
# statistics


def tokens_per_byte(per_seed_bpb: Mapping[int, float], per_seed_loss: Mapping[int, float]) -> float:
    """tokens / bytes of the scored validation set, from bpb = loss / ln 2 × tokens / bytes.

    Every seed must give the same ratio (same tokens scored); raises RecordError otherwise."""
    ratios = {}
    for s in per_seed_bpb:
        bpb, loss = float(per_seed_bpb[s]), float(per_seed_loss[s])
        if not (math.isfinite(bpb) and math.isfinite(loss)) or bpb <= 0 or loss <= 0:
            raise RecordError(f"seed {s}: val_bpb {bpb} / val_loss {loss} must be finite and positive")
        ratios[s] = bpb * LN2 / loss
    lo, hi = min(ratios.values()), max(ratios.values())
    if hi - lo > _RATIO_RTOL * hi:
        raise RecordError(f"seeds disagree on tokens per byte ({lo:.8f} .. {hi:.8f}): they did not "
                          "score the same validation tokens")
    return sum(ratios.values()) / len(ratios)


def welch_less(a_mean: float, a_sd: float, a_n: int, b_mean: float, b_sd: float = 0.0,
               b_n: int = 1) -> tuple[float, float, float]:
    """One-sided Welch t-test of H0: mean_a >= mean_b vs H1: mean_a < mean_b, from summaries.

    A side with sd 0 is a known value (a published mean without its spread, a threshold): the
    test is then the one-sample t-test of the other side, df = its n − 1, which is what the
    Welch–Satterthwaite df gives when one variance is 0. Both spreads 0: the test degenerates,
    p = 0 when a is below b and 1 otherwise. Returns (t, p, df)."""
    from scipy import stats as st

    va = a_sd ** 2 / a_n if a_sd else 0.0
    vb = b_sd ** 2 / b_n if b_sd else 0.0
    if va + vb == 0.0:
        if a_mean < b_mean:
            return -math.inf, 0.0, float(max(a_n, b_n) - 1)
        return (math.inf if a_mean > b_mean else 0.0), 1.0, float(max(a_n, b_n) - 1)
    df = (va + vb) ** 2 / ((va ** 2 / (a_n - 1) if va else 0.0) + (vb ** 2 / (b_n - 1) if vb else 0.0))
    t = (a_mean - b_mean) / math.sqrt(va + vb)
    return t, float(st.t.cdf(t, df)), df


def _t_test_less(values: list[float], threshold: float) -> tuple[float | None, float | None, int]:
    """One-sided one-sample t-test of H0: mean >= threshold vs H1: mean < threshold (welch_less
    against a known value). Returns (t, p, df); (None, None, 0) for a single value (no variance
    estimate)."""
    n = len(values)
    if n < 2:
        return None, None, 0
    mean, sd = _mean_std(values)
    t, p, df = welch_less(mean, sd, n, threshold)
    return t, p, int(round(df))


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def record_statistics(per_seed_bpb: Mapping[int, float], per_seed_loss: Mapping[int, float],
                      best_bpb: float | None = DEFAULT_BEST_BPB, best_loss: float | None = None,
                      min_improvement_nats: float = MIN_IMPROVEMENT_NATS, alpha: float = ALPHA,
                      best_source: str | None = None,
                      report_alphas: tuple[float, ...] = REPORT_ALPHAS) -> dict[str, Any]:
    """Mean, std (ddof=1) and the one-sided one-sample t-test of a record claim.

    H0: mean val_loss >= best_loss − min_improvement_nats; a record rejects H0 at p < alpha.
    Verdict: "record" (p < alpha), "not better" (mean loss >= the best's, ties included),
    otherwise "not significant" (better, but not by the margin at p < alpha; with one seed
    there is no variance estimate, hence no p-value, and the note says so).

    Why nats and not bpb: the rule is stated in nats (0.005 nats per token, as modded-nanogpt
    states its margins in loss), while the leaderboard reports bits per byte. Both describe the
    same numbers on one validation set: bpb = loss / ln 2 × tokens / bytes, where tokens / bytes
    is a property of the tokenizer on that set (sp1024 on FineWeb val: ≈ 0.41). We take the
    ratio from the seeds' own (val_bpb, val_loss) pairs, which must all agree (they score the
    same tokens). When only `best_bpb` is known (the usual case: the leaderboard lists bpb, and
    the best record may use another tokenizer, whose per-token nats are not comparable), it is
    converted into OUR tokens' nats: best_loss = best_bpb × ln 2 × bytes / tokens. The margin
    then reads 0.005 nats per token of our tokenizer = 0.005 / ln 2 × tokens / bytes bpb.
    Because the conversion is one positive constant, the t statistic and p-value are the same
    whether the test runs on losses or on bpb; only the margin needs the ratio.

    `verdict_at` gives the verdict at `alpha` and at each of `report_alphas` (the README's 0.01
    and the leaderboard's practice, 0.25): one p-value, several thresholds.
    """
    seeds = sorted(per_seed_bpb)
    if not seeds:
        raise RecordError("no seeds: a record needs at least one scored seed")
    if sorted(per_seed_loss) != seeds:
        raise RecordError(f"val_bpb seeds {seeds} and val_loss seeds {sorted(per_seed_loss)} differ")
    if best_bpb is None and best_loss is None:
        raise RecordError("need the current best: best_bpb or best_loss")
    if not 0 < alpha < 1:
        raise RecordError(f"alpha must lie in (0, 1) (got {alpha})")
    if min_improvement_nats < 0:
        raise RecordError(f"min_improvement_nats must be >= 0 (got {min_improvement_nats})")
    ratio = tokens_per_byte(per_seed_bpb, per_seed_loss)
    to_bpb = ratio / LN2  # bpb per nat of our tokens
    if best_loss is None:
        best_loss, loss_source = float(best_bpb) / to_bpb, "converted from best_bpb with our tokens/bytes"
    else:
        best_loss, loss_source = float(best_loss), "given"
    if best_bpb is None:
        best_bpb = best_loss * to_bpb
    bpbs = [float(per_seed_bpb[s]) for s in seeds]
    losses = [float(per_seed_loss[s]) for s in seeds]
    bpb_mean, bpb_std = _mean_std(bpbs)
    loss_mean, loss_std = _mean_std(losses)
    threshold = best_loss - min_improvement_nats
    t, p, df = _t_test_less(losses, threshold)
    verdict, notes = _verdict(loss_mean, best_loss, p, alpha, threshold)
    verdict_at = {_alpha_key(a): _verdict(loss_mean, best_loss, p, a, threshold)[0]
                  for a in sorted({alpha, *report_alphas})}
    if len(seeds) < 3 and p is not None:
        notes.append(f"{len(seeds)} seeds; 3 are customary")
    return {
        "seeds": seeds, "n_seeds": len(seeds),
        "val_bpb": dict(zip(seeds, bpbs)), "val_loss": dict(zip(seeds, losses)),
        "val_bpb_mean": bpb_mean, "val_bpb_std": bpb_std, "val_loss_mean": loss_mean, "val_loss_std": loss_std,
        "tokens_per_byte": ratio,
        "best_bpb": float(best_bpb), "best_loss": best_loss, "best_loss_source": loss_source,
        "best_source": best_source or (DEFAULT_BEST_SOURCE if best_bpb == DEFAULT_BEST_BPB else "given"),
        "min_improvement_nats": min_improvement_nats, "min_improvement_bpb": min_improvement_nats * to_bpb,
        "threshold_loss": threshold, "threshold_bpb": threshold * to_bpb,
        "delta_loss": loss_mean - best_loss, "delta_bpb": bpb_mean - float(best_bpb),
        "test": "one-sided one-sample t-test, H0: mean val_loss >= best_loss - min_improvement_nats",
        "t_stat": t, "df": df, "p_value": p, "alpha": alpha,
        "verdict": verdict, "verdict_at": verdict_at, "notes": notes,
    }


def _alpha_key(a: float) -> str:
    return f"p<{a:g}"


def _verdict(loss_mean: float, best_loss: float, p: float | None, alpha: float,
             threshold: float) -> tuple[str, list[str]]:
    if not 0 < alpha < 1:
        raise RecordError(f"alpha must lie in (0, 1) (got {alpha})")
    if loss_mean >= best_loss:
        return "not better", [f"mean val_loss {loss_mean:.6f} is not below the best {best_loss:.6f}"]
    if p is None:
        return "not significant", ["1 seed: no variance estimate, so no t-test and no p-value; "
                                   "a record needs at least 2 seeds (3 are customary)"]
    if p < alpha:
        return "record", []
    return "not significant", [f"p = {p:.4g} is not below {alpha} (H0: mean val_loss >= {threshold:.6f})"]


# ---------------------------------------------------------------------------------------------
# a reproduction against its claim

CLAIM_VERDICTS = ("consistent with the claim", "worse than claimed", "no test")


def claim_statistics(per_seed_bpb: Mapping[int, float], claim: Mapping[str, Any], alpha: float = ALPHA,
                     report_alphas: tuple[float, ...] = REPORT_ALPHAS) -> dict[str, Any]:
    """Does the reproduction fall short of what the record claimed? One-sided Welch t-test on
    val_bpb, H0: reproduced mean <= claimed mean, H1: reproduced mean > claimed mean (worse).

    `claim`: {"source": str, "val_bpb": {seed: bpb} (per-seed values, when published), "mean",
    "std", "n"}. Per-seed values give the claim's mean and spread; else its mean and std (with
    its n); a mean alone is a known value (the one-sample test). In bpb, not nats: every claim
    states bpb, and the same script on the same data gives both with one constant ratio, so the
    t statistic and p-value would be the same. "worse than claimed" at p < alpha; a small p says
    the claim did not reproduce, a large one only that this run cannot tell it apart."""
    seeds = sorted(per_seed_bpb)
    vals = [float(per_seed_bpb[s]) for s in seeds]
    mean, sd = _mean_std(vals)
    per_seed = {int(k): float(v) for k, v in (claim.get("val_bpb") or {}).items()}
    if len(per_seed) >= 2:
        c_mean, c_sd = _mean_std(list(per_seed.values()))
        c_n, how = len(per_seed), f"the claim's {len(per_seed)} per-seed values"
    else:
        c_mean = float(claim["mean"] if claim.get("mean") is not None else next(iter(per_seed.values())))
        c_sd = float(claim.get("std") or 0.0)
        c_n = int(claim.get("n") or 0) if c_sd else 1
        how = (f"the claim's mean and std over {c_n} seeds" if c_sd and c_n >= 2 else
               "the claimed mean as a known value (no spread published)")
        if c_sd and c_n < 2:
            c_sd, c_n, how = 0.0, 1, "the claimed mean as a known value (a std without a seed count)"
    out: dict[str, Any] = {
        "source": claim.get("source"), "claim_val_bpb_mean": c_mean, "claim_val_bpb_std": c_sd if c_n >= 2 else None,
        "claim_n": c_n, "claim_val_bpb": {s: per_seed[s] for s in sorted(per_seed)} or None, "claim_basis": how,
        "val_bpb_mean": mean, "val_bpb_std": sd, "n_seeds": len(seeds), "delta_bpb": mean - c_mean,
        "test": "one-sided Welch t-test on val_bpb, H0: reproduced mean <= claimed mean "
                "(H1: the reproduction is worse)",
        "alpha": alpha, "t_stat": None, "df": None, "p_value": None, "notes": [],
    }
    if len(seeds) < 2 and not (c_sd and c_n >= 2):
        out["notes"].append("1 reproduced seed and no spread in the claim: no variance estimate, no test")
        out.update(verdict="no test", verdict_at={_alpha_key(a): "no test" for a in sorted({alpha, *report_alphas})})
        return out
    # H1: claim < reproduction, i.e. welch_less(claim, reproduction)
    t, p, df = welch_less(c_mean, c_sd if c_n >= 2 else 0.0, max(c_n, 1), mean, sd or 0.0, len(seeds))
    out.update(t_stat=-t, df=df, p_value=p)  # t as (reproduced − claimed) / se: positive = worse
    verdict_at = {_alpha_key(a): ("worse than claimed" if p < a else "consistent with the claim")
                  for a in sorted({alpha, *report_alphas})}
    out.update(verdict=verdict_at[_alpha_key(alpha)], verdict_at=verdict_at)
    if len(seeds) < 3:
        out["notes"].append(f"{len(seeds)} reproduced seeds; 3 are customary")
    return out


# ---------------------------------------------------------------------------------------------
# compliance


def merge_compliance(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """{seed: {check name: {"passed", "value", "detail"}}} -> one verdict.

    Compliant only when every check of every seed passed (a check with passed None is
    informational). Returns {"compliant", "failed": ["seed 42: mode (...)"], "seeds": {seed:
    {"compliant", "checks"}}}."""
    seeds, failed = {}, []
    for s in sorted(per_seed):
        checks = {k: dict(v) for k, v in per_seed[s].items()}
        bad = [k for k, c in checks.items() if c.get("passed") is False]
        for k in bad:
            value, detail = checks[k].get("value"), checks[k].get("detail")
            failed.append(f"seed {s}: {k}" + (f" = {value}" if value not in (None, "", False) else "")
                          + (f" ({detail})" if detail not in (None, "") else ""))
        seeds[s] = {"compliant": not bad, "checks": checks}
    return {"compliant": bool(seeds) and not failed, "failed": failed, "seeds": seeds}


def submittable(stats: Mapping[str, Any], compliance: Mapping[str, Any]) -> bool:
    """A folder may go upstream only when it is both a record and compliant: a significant
    score from a run that broke a rule is no record, and a clean run that is not significantly
    better is no record either."""
    return bool(compliance.get("compliant")) and stats.get("verdict") == "record"
