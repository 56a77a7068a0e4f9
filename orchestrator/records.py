"""A record claim: per-seed statistics against the current best, and the submission folder.

Pure functions (no Ray, no MLflow): `record_statistics` decides whether the seeds show the
challenge's required improvement; `merge_compliance` folds every seed's checks into one
verdict; `format_train_log`, `render_readme`, `render_statistics`, `submission_json` and
`write_record_folder` produce `records/track_10min_16mb/YYYY-MM-DD_Name/` in upstream's shape
(README.md, submission.json, one train log per seed, a self-contained train_gpt.py).

The rule (openai/parameter-golf README, "New SOTA records"): beat the current best by at least
0.005 nats at p < 0.01, "as in modded-nanogpt"; usually shown with 3 seeds. Statistics are part
of a record (KellerJordan/modded-nanogpt's records/*: mean, std, p-value per claim).
"""
from __future__ import annotations

import json
import math
import re
from datetime import date as _date
from pathlib import Path
from typing import Any, Mapping

from golf_core import ARTIFACT_LIMIT_BYTES

__all__ = [
    "ALPHA", "DEFAULT_BEST_BPB", "DEFAULT_BEST_SOURCE", "MIN_IMPROVEMENT_NATS", "RecordError",
    "folder_name", "format_train_log", "merge_compliance", "record_statistics", "render_readme",
    "render_statistics", "submission_json", "tokens_per_byte", "write_record_folder",
]

LN2 = math.log(2.0)
TRACK = "10min_16mb"
TRACK_DIR = "records/track_10min_16mb"
# The best legal score at the last look (shared/CONTEXT.md): the 2026-04-27 record's 3-seed mean.
DEFAULT_BEST_BPB = 1.0611
DEFAULT_BEST_SOURCE = ("openai/parameter-golf records/track_10min_16mb/"
                       "2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611 (3-seed mean)")
MIN_IMPROVEMENT_NATS = 0.005
ALPHA = 0.01
VERDICTS = ("record", "not significant", "not better")
# Every seed scores the same validation tokens, so loss / bpb is the same constant for all of
# them; a larger spread means the seeds were not scored on the same tokens.
_RATIO_RTOL = 1e-6


class RecordError(ValueError):
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


def _t_test_less(values: list[float], threshold: float) -> tuple[float | None, float | None, int]:
    """One-sided one-sample t-test of H0: mean >= threshold vs H1: mean < threshold.

    Returns (t, p, df); (None, None, 0) for a single value (no variance estimate). With zero
    spread the test degenerates: p = 0 below the threshold, 1 otherwise."""
    from scipy import stats as st

    n = len(values)
    if n < 2:
        return None, None, 0
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    df = n - 1
    if sd == 0.0:
        if mean < threshold:
            return -math.inf, 0.0, df
        return (math.inf if mean > threshold else 0.0), 1.0, df
    t = (mean - threshold) / (sd / math.sqrt(n))
    return t, float(st.t.cdf(t, df)), df


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def record_statistics(per_seed_bpb: Mapping[int, float], per_seed_loss: Mapping[int, float],
                      best_bpb: float | None = DEFAULT_BEST_BPB, best_loss: float | None = None,
                      min_improvement_nats: float = MIN_IMPROVEMENT_NATS, alpha: float = ALPHA,
                      best_source: str | None = None) -> dict[str, Any]:
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
    notes = []
    if loss_mean >= best_loss:
        verdict = "not better"
        notes.append(f"mean val_loss {loss_mean:.6f} is not below the best {best_loss:.6f}")
    elif p is None:
        verdict = "not significant"
        notes.append("1 seed: no variance estimate, so no t-test and no p-value; "
                     "a record needs at least 2 seeds (3 are customary)")
    elif p < alpha:
        verdict = "record"
    else:
        verdict = "not significant"
        notes.append(f"p = {p:.4g} is not below {alpha} (H0: mean val_loss >= {threshold:.6f})")
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
        "verdict": verdict, "notes": notes,
    }


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


# ---------------------------------------------------------------------------------------------
# formatting helpers


def _f(v: Any, spec: str = ".6f", none: str = "-") -> str:
    if v is None:
        return none
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def _p(p: float | None) -> str:
    if p is None:
        return "n/a (1 seed)"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def folder_name(date: str, name: str) -> str:
    """`YYYY-MM-DD_Name` with Name reduced to letters, digits, `.`, `_`, `-`."""
    try:
        _date.fromisoformat(date)
    except ValueError:
        raise RecordError(f"date must be YYYY-MM-DD (got {date!r})") from None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise RecordError(f"date must be YYYY-MM-DD (got {date!r})")
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._-")
    if not clean:
        raise RecordError(f"name {name!r} has no usable characters (letters, digits, . _ -)")
    return f"{date}_{clean[:80]}"


def _mean(xs: list) -> float | None:
    xs = [float(x) for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return sum(xs) / len(xs) if xs else None


def _max(xs: list) -> Any:
    xs = [x for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
    return max(xs) if xs else None


def _seed_row(seed: int, train: Mapping[str, Any], ev: Mapping[str, Any]) -> dict[str, Any]:
    """One seed's numbers: the training run (roundtrip) and the scored evaluation."""
    return {
        "val_bpb": ev.get("val_bpb"), "val_loss": ev.get("val_loss"),
        "val_bpb_neural": ev.get("neural_val_bpb"), "val_bpb_roundtrip": train.get("val_bpb"),
        "val_bpb_prequant": train.get("val_bpb_prequant"),
        "artifact_bytes": train.get("artifact_bytes"), "model_bytes": train.get("model_bytes"),
        "code_bytes": train.get("code_bytes"), "steps": train.get("steps"),
        "step_avg_ms": train.get("step_avg_ms"), "train_time_s": train.get("train_time_s"),
        "eval_time_s": ev.get("eval_time_s"),
    }


def _hardware(per_seed_results: Mapping[int, Mapping[str, Any]]) -> str:
    seen = []
    for r in per_seed_results.values():
        name = r.get("device_name") or r.get("device") or "?"
        h = f"{r.get('world_size', '?')}x {name}"
        if h not in seen:
            seen.append(h)
    return ", ".join(seen) or "unknown"


def submittable(stats: Mapping[str, Any], compliance: Mapping[str, Any]) -> bool:
    return bool(compliance.get("compliant")) and stats.get("verdict") == "record"


# ---------------------------------------------------------------------------------------------
# the files


def format_train_log(seed: int, train: Mapping[str, Any], ev: Mapping[str, Any],
                     run_ids: Mapping[str, str] | None = None, header: str = "") -> str:
    """One seed's log, rebuilt from its job results (golf keeps results, not worker stdout):
    the resolved config, every logged train_loss point in upstream's `step:` format, the
    pre-quant and roundtrip scores, the artifact bytes, the evaluation and its audit."""
    cfg = train.get("config") or {}
    iters = ((cfg.get("train") or {}).get("iterations")) or "?"
    lines = [f"# golf record log, seed {seed}. Rebuilt from the job results stored in MLflow "
             "(per-step lines are the logged train_loss points, not every step)."]
    if header:
        lines += [f"# {h}" for h in header.splitlines()]
    for kind, rid in (run_ids or {}).items():
        lines.append(f"# mlflow run ({kind}): {rid}")
    lines.append(f"code_version:{train.get('code_version', '?')} device:{train.get('device', '?')} "
                 f"device_name:{train.get('device_name', '?')} world_size:{train.get('world_size', '?')} "
                 f"torch:{train.get('torch_version', '?')}")
    lines.append("config: " + json.dumps(cfg, sort_keys=True))
    if train.get("n_params") is not None:
        lines.append(f"model_params:{train['n_params']}")
    steps, t_s = train.get("steps"), train.get("train_time_s")
    for step, loss in train.get("train_loss_curve") or ():
        lines.append(f"step:{step}/{iters} train_loss:{_f(loss, '.4f')}")
    lines.append(f"stopped_by:{train.get('stopped_by')} steps:{steps} train_time:{_f(t_s, '.1f')}s "
                 f"step_avg:{_f(train.get('step_avg_ms'), '.2f')}ms tokens_per_s:{_f(train.get('tokens_per_s'), '.0f')}")
    lines.append(f"prequant val_loss:{_f(train.get('val_loss_prequant'), '.8f')} "
                 f"val_bpb:{_f(train.get('val_bpb_prequant'), '.8f')}")
    lines.append(f"roundtrip_exact val_loss:{_f(train.get('val_loss'), '.8f')} val_bpb:{_f(train.get('val_bpb'), '.8f')}")
    lines.append(f"artifact_bytes:{train.get('artifact_bytes')} model_bytes:{train.get('model_bytes')} "
                 f"code_bytes:{train.get('code_bytes')} over_limit:{train.get('over_limit')}")
    if ev.get("neural_val_bpb") is not None:
        lines.append(f"eval_neural val_loss:{_f(ev.get('neural_val_loss'), '.8f')} "
                     f"val_bpb:{_f(ev.get('neural_val_bpb'), '.8f')} eval_time:{_f(ev.get('neural_eval_time_s'), '.1f')}s "
                     f"ratio_scored:{_f(ev.get('ratio_scored'), '.6f')} tokens_scored:{ev.get('tokens_scored')}")
    lines.append(f"final_exact mixer:{ev.get('mixer_mode', 'none')} val_loss:{_f(ev.get('val_loss'), '.8f')} "
                 f"val_bpb:{_f(ev.get('val_bpb'), '.8f')} eval_time:{_f(ev.get('eval_time_s'), '.1f')}s")
    for name, c in ((ev.get("compliance") or {}).get("checks") or {}).items():
        state = {True: "pass", False: "FAIL"}.get(c.get("passed"), "info")
        lines.append(f"audit {name}: {state} value:{c.get('value')}" + (f" ({c['detail']})" if c.get("detail") else ""))
    return "\n".join(lines) + "\n"


def submission_json(name: str, date: str, per_seed_results: Mapping[int, Mapping[str, Any]],
                    eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                    compliance: Mapping[str, Any], *, author: str = "", github_id: str = "",
                    blurb: str = "", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """upstream's submission.json fields (author, github_id, name, blurb, date, track, val_loss,
    val_bpb, *_std, seeds, seed_results, bytes_total, bytes_code, ...) plus the statistics and
    the compliance verdict."""
    seeds = list(stats["seeds"])
    rows = {s: _seed_row(s, per_seed_results[s], eval_results[s]) for s in seeds}
    artifact = [rows[s]["artifact_bytes"] for s in seeds]
    code = [rows[s]["code_bytes"] for s in seeds]
    out = {
        "author": author, "github_id": github_id, "name": name,
        "blurb": blurb or (f"golf reproduction, {len(seeds)}-seed mean val_bpb {stats['val_bpb_mean']:.8f}"),
        "date": date, "track": TRACK,
        "val_loss": stats["val_loss_mean"], "val_bpb": stats["val_bpb_mean"],
        "val_loss_std": stats["val_loss_std"], "val_bpb_std": stats["val_bpb_std"],
        "seeds": seeds,
        "seed_results": {str(s): {k: v for k, v in rows[s].items() if v is not None} for s in seeds},
        "comparison_baseline_bpb": stats["best_bpb"],
        "delta_vs_leaderboard_bpb": stats["delta_bpb"], "delta_vs_leaderboard_nats": stats["delta_loss"],
        "artifact_bytes_mean": _mean(artifact), "artifact_bytes_max": _max(artifact),
        "bytes_total": _max(artifact), "bytes_code": _max(code),
        "train_steps_mean": _mean([rows[s]["steps"] for s in seeds]),
        "step_avg_ms_mean": _mean([rows[s]["step_avg_ms"] for s in seeds]),
        "hardware": _hardware(per_seed_results),
        "pytorch_version": next((r.get("torch_version") for r in per_seed_results.values()
                                 if r.get("torch_version")), None),
        "statistics": {k: stats[k] for k in (
            "n_seeds", "test", "best_bpb", "best_loss", "best_loss_source", "best_source", "tokens_per_byte",
            "min_improvement_nats", "min_improvement_bpb", "threshold_loss", "threshold_bpb",
            "t_stat", "df", "p_value", "alpha", "verdict", "notes")},
        "compliance": {"compliant": compliance["compliant"], "failed": list(compliance["failed"]),
                       "artifact_bytes_max": _max(artifact), "artifact_limit_bytes": ARTIFACT_LIMIT_BYTES,
                       "train_time_max_s": _max([rows[s]["train_time_s"] for s in seeds]),
                       "eval_time_max_s": _max([rows[s]["eval_time_s"] for s in seeds])},
        "submittable": submittable(stats, compliance),
    }
    if extra:
        out.update(extra)
    return _json_safe(out)


def _json_safe(o: Any) -> Any:
    """Strict JSON: non-finite floats become strings ("inf", "-inf", "nan")."""
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def render_statistics(stats: Mapping[str, Any]) -> str:
    """statistics.md: the numbers of the test, and the three lines that recompute them."""
    seeds = stats["seeds"]
    lines = [
        "# Statistics", "",
        f"Claim: {stats['n_seeds']}-seed mean val_bpb **{stats['val_bpb_mean']:.8f}** "
        f"(val_loss {stats['val_loss_mean']:.8f} nats) — verdict: **{stats['verdict']}**.", "",
        "| seed | val_loss (nats) | val_bpb |", "|---:|---:|---:|",
    ]
    for s in seeds:
        lines.append(f"| {s} | {stats['val_loss'][s]:.8f} | {stats['val_bpb'][s]:.8f} |")
    lines += [
        f"| mean | {stats['val_loss_mean']:.8f} | {stats['val_bpb_mean']:.8f} |",
        f"| std (ddof=1) | {_f(stats['val_loss_std'], '.8f')} | {_f(stats['val_bpb_std'], '.8f')} |", "",
        f"- Current best: val_bpb {stats['best_bpb']:.6f} ({stats['best_source']}); in this tokenizer's nats "
        f"{stats['best_loss']:.6f} ({stats['best_loss_source']}).",
        f"- tokens / bytes of the scored validation set: {stats['tokens_per_byte']:.8f} "
        "(bpb = val_loss / ln 2 × tokens / bytes; equal for every seed).",
        f"- Required improvement: {stats['min_improvement_nats']} nats = {stats['min_improvement_bpb']:.6f} bpb, "
        f"so the threshold is val_loss {stats['threshold_loss']:.6f} (val_bpb {stats['threshold_bpb']:.6f}).",
        f"- Test: {stats['test']}; t = {_f(stats['t_stat'], '.4f')}, df = {stats['df']}, "
        f"p = {_p(stats['p_value'])} (need p < {stats['alpha']}).",
        f"- Mean improvement over the best: {-stats['delta_loss']:.6f} nats / {-stats['delta_bpb']:.6f} bpb.",
    ]
    lines += [f"- Note: {n}" for n in stats["notes"]]
    losses = ", ".join(f"{stats['val_loss'][s]!r}" for s in seeds)
    lines += ["", "Recompute:", "", "```python", "import scipy.stats",
              f"losses = [{losses}]",
              f"print(scipy.stats.ttest_1samp(losses, {stats['threshold_loss']!r}, alternative='less'))",
              "```", ""]
    return "\n".join(lines)


def render_readme(name: str, date: str, per_seed_results: Mapping[int, Mapping[str, Any]],
                  eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                  compliance: Mapping[str, Any], spec_dump: Mapping[str, Any] | None = None,
                  spec_file: str = "spec.yaml", code_bytes_script: int | None = None) -> str:
    seeds = stats["seeds"]
    rows = {s: _seed_row(s, per_seed_results[s], eval_results[s]) for s in seeds}
    ok = submittable(stats, compliance)
    if not compliance["compliant"]:
        first = f"# NOT SUBMITTABLE: non-compliant — {name}"
    elif stats["verdict"] != "record":
        first = f"# NOT A RECORD ({stats['verdict']}) — {name}"
    else:
        first = f"# Record: {name} (val_bpb {stats['val_bpb_mean']:.4f})"
    std = stats["val_bpb_std"]
    artifact_max = _max([rows[s]["artifact_bytes"] for s in seeds])
    spec_name = (spec_dump or {}).get("name", "SPEC")
    lines = [
        first, "",
        f"**val_bpb: {stats['val_bpb_mean']:.8f}** ({stats['n_seeds']}-seed mean"
        + (f", std {std:.8f}" if std is not None else "") + f") | artifact ≤ {_f(artifact_max, ',')} bytes | "
        f"{_hardware(per_seed_results)} | statistics: **{stats['verdict']}** (p = {_p(stats['p_value'])}) | "
        f"compliance: **{'compliant' if compliance['compliant'] else 'NON-COMPLIANT'}** | "
        f"submittable: **{'yes' if ok else 'no'}**", "",
    ]
    if not compliance["compliant"]:
        lines += ["Failed checks:", ""] + [f"- {f}" for f in compliance["failed"]] + [""]
    desc = (spec_dump or {}).get("description")
    lines += ["## What", "", desc or f"Sweep spec `{spec_name}` reproduced with golf.", "",
              "The score per seed is the full-fidelity evaluation of the shipped (quantized, compressed, "
              "read back) artifact over the whole validation split, with the spec's one mixer setting; "
              "`roundtrip` is the training job's own non-overlapping score of the same artifact.", "",
              "## How to reproduce", "",
              "```bash",
              f"golf reproduce {spec_file} --name {name!r} --date {date}",
              "```", "",
              f"`{spec_file}` in this folder is the resolved spec. `golf reproduce` trains every seed, evaluates "
              "it, reuses runs MLflow already finished, and writes this folder. Without golf: "
              "`torchrun --standalone --nproc_per_node=8 train_gpt.py --data DATA_DIR --seed SEED` "
              "trains and evaluates one seed with the same configuration.", "",
              "## Results", "",
              "| seed | steps | ms/step | pre-quant bpb | roundtrip bpb | neural eval bpb | **val_bpb** | val_loss | "
              "artifact bytes | train s | eval s |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in seeds:
        r = rows[s]
        lines.append(f"| {s} | {_f(r['steps'], 'd')} | {_f(r['step_avg_ms'], '.1f')} | {_f(r['val_bpb_prequant'], '.5f')} "
                     f"| {_f(r['val_bpb_roundtrip'], '.5f')} | {_f(r['val_bpb_neural'], '.5f')} | **{_f(r['val_bpb'], '.8f')}** "
                     f"| {_f(r['val_loss'], '.8f')} | {_f(r['artifact_bytes'], ',')} | {_f(r['train_time_s'], '.1f')} "
                     f"| {_f(r['eval_time_s'], '.1f')} |")
    lines += [f"| **mean** | | | | | | **{stats['val_bpb_mean']:.8f}** | {stats['val_loss_mean']:.8f} | "
              f"{_f(_mean([rows[s]['artifact_bytes'] for s in seeds]), ',.0f')} | | |", "",
              "## Statistics", "",
              f"- mean val_bpb {stats['val_bpb_mean']:.8f}, std {_f(stats['val_bpb_std'], '.8f')} "
              f"(val_loss {stats['val_loss_mean']:.8f} nats, std {_f(stats['val_loss_std'], '.8f')})",
              f"- current best {stats['best_bpb']:.6f} bpb ({stats['best_source']}) = {stats['best_loss']:.6f} nats "
              f"in this tokenizer; threshold {stats['threshold_loss']:.6f} nats (best − {stats['min_improvement_nats']})",
              f"- {stats['test']}: t = {_f(stats['t_stat'], '.4f')}, df = {stats['df']}, p = {_p(stats['p_value'])} "
              f"(alpha {stats['alpha']}) → **{stats['verdict']}**",
              f"- improvement over the best: {-stats['delta_loss']:.6f} nats / {-stats['delta_bpb']:.6f} bpb"]
    lines += [f"- note: {n}" for n in stats["notes"]]
    lines += ["", "Details and the lines that recompute the test: `statistics.md`.", "",
              "## Compliance", "",
              f"Verdict: **{'compliant' if compliance['compliant'] else 'NON-COMPLIANT'}** (every check of every seed "
              "must pass; C1–C4 as applied by the organizers, artifact ≤ 16,000,000 bytes, train and eval time caps).", "",
              "| seed | check | result | value | detail |", "|---:|---|---|---|---|"]
    for s, sc in compliance["seeds"].items():
        for cname, c in sc["checks"].items():
            state = {True: "pass", False: "**FAIL**"}.get(c.get("passed"), "info")
            detail = str(c.get("detail") or "").replace("|", "\\|").replace("\n", " ")
            value = str(c.get("value")).replace("|", "\\|")
            lines.append(f"| {s} | {cname} | {state} | {value} | {detail} |")
    lines += ["", "## Artifact sizes", "",
              "| seed | model bytes | code bytes | total | limit |", "|---:|---:|---:|---:|---:|"]
    for s in seeds:
        r = rows[s]
        lines.append(f"| {s} | {_f(r['model_bytes'], ',')} | {_f(r['code_bytes'], ',')} | "
                     f"{_f(r['artifact_bytes'], ',')} | {ARTIFACT_LIMIT_BYTES:,} |")
    if code_bytes_script is not None:
        lines += ["", f"`train_gpt.py` in this folder is {code_bytes_script:,} bytes. The runs' `code bytes` above are "
                  "what the training job counted (golf_core's sources as an upper bound) and can be larger."]
    lines += ["", "## Files", "",
              "- `README.md` — this file", "- `submission.json` — the numbers, machine-readable",
              "- `statistics.md` — the significance test",
              *[f"- `train_seed{s}.log` — seed {s}" for s in seeds],
              "- `train_gpt.py` — self-contained script (golf_core embedded) with this record's config baked in",
              f"- `{spec_file}` — the resolved spec", ""]
    return "\n".join(lines)


def write_record_folder(root: str | Path, date: str, name: str,
                        per_seed_results: Mapping[int, Mapping[str, Any]],
                        eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                        compliance: Mapping[str, Any], spec_dump: Mapping[str, Any] | None,
                        train_logs: Mapping[int, str], code_text: str, *, author: str = "",
                        github_id: str = "", blurb: str = "", extra: Mapping[str, Any] | None = None) -> Path:
    """Write `root/YYYY-MM-DD_Name/` (root: usually ./records/track_10min_16mb) and return it.

    Files: README.md (first line "# NOT SUBMITTABLE: non-compliant ..." when any check failed),
    submission.json, statistics.md, train_seed{S}.log per seed, train_gpt.py (`code_text`) and
    spec.yaml (the resolved spec). Existing files of the same names are replaced, others kept."""
    import yaml

    seeds = list(stats["seeds"])
    missing = [s for s in seeds if s not in per_seed_results or s not in eval_results or s not in train_logs]
    if missing:
        raise RecordError(f"seeds {missing} lack a training result, an evaluation or a log")
    folder = Path(root) / folder_name(date, name)
    folder.mkdir(parents=True, exist_ok=True)
    spec_file = "spec.yaml"
    code_bytes = len(code_text.encode("utf-8"))
    sub = submission_json(name, date, per_seed_results, eval_results, stats, compliance, author=author,
                          github_id=github_id, blurb=blurb,
                          extra={"bytes_code_script": code_bytes, **(extra or {})})
    files = {
        "README.md": render_readme(name, date, per_seed_results, eval_results, stats, compliance, spec_dump,
                                   spec_file, code_bytes),
        "submission.json": json.dumps(sub, indent=2, allow_nan=False) + "\n",
        "statistics.md": render_statistics(stats),
        "train_gpt.py": code_text,
        spec_file: yaml.safe_dump(_json_safe(dict(spec_dump or {})), sort_keys=False),
        **{f"train_seed{s}.log": train_logs[s] for s in seeds},
    }
    for fname, text in files.items():
        tmp = folder / f".{fname}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(folder / fname)
    return folder
