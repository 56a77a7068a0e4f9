"""The one record-folder writer: `records/track_10min_16mb/YYYY-MM-DD_Name/`.

Every record kind (orchestrator.records.golf_record, orchestrator.records.script_record) writes
the same layout through `write_folder`: README.md, submission.json (`submission_json`: upstream's
newest keys, golf's extras under `golf`), statistics.md (`render_statistics`, plus what the kind
adds), one `train_seed<S>.log` per seed, the script(s) that ran, spec.yaml (the resolved spec).
What differs between kinds is data (`FolderParts`): the README text, the code files, the
per-seed rows, the `golf` extras. Pure functions, no Ray, no MLflow.

The statistics themselves (mean/std, the one-sided t-test against the current best at 0.005
nats, the verdict, the compliance merge) live in orchestrator.records.stats.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date as _date
from pathlib import Path
from typing import Any, Mapping

from golf_core import ARTIFACT_LIMIT_BYTES
from orchestrator.records.stats import (
    RecordError, submittable,
)

__all__ = ["TRACK", "TRACK_DIR", "FolderParts", "folder_name", "render_statistics", "submission_json",
           "write_folder"]

TRACK = "10min_16mb"
TRACK_DIR = "records/track_10min_16mb"


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



# ---------------------------------------------------------------------------------------------
# the files


UPSTREAM_SEED_KEYS = ("val_loss", "val_bpb", "artifact_bytes", "steps", "step_avg_ms", "eval_time_s")


def _seed_artifact(row: Mapping[str, Any], code_bytes: int | None) -> Any:
    """What this folder would ship for the seed: its model plus the folder's train_gpt.py."""
    if code_bytes is not None and isinstance(row.get("model_bytes"), int):
        return row["model_bytes"] + code_bytes
    return row.get("artifact_bytes")


def submission_json(name: str, date: str, per_seed_results: Mapping[int, Mapping[str, Any]],
                    eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                    compliance: Mapping[str, Any], *, author: str = "", github_id: str = "",
                    blurb: str = "", extra: Mapping[str, Any] | None = None, code_bytes: int | None = None,
                    technique_summary: str = "") -> dict[str, Any]:
    """The keys of upstream's newest records' submission.json, in their order (author, github_id,
    name, blurb, date, track, val_loss, val_bpb, *_std, seeds, seed_results{val_loss, val_bpb,
    artifact_bytes, steps, step_avg_ms, eval_time_s}, comparison_baseline_bpb, delta_vs_leaderboard_*,
    artifact_bytes_mean/max, bytes_total, bytes_code, train_steps_mean, step_avg_ms_mean, hardware,
    pytorch_version, cuda_version, technique_summary); everything golf adds under one `golf` key.

    `code_bytes`: the byte size of the folder's train_gpt.py; a seed's artifact_bytes is then its
    model plus that script, and bytes_total the largest of them."""
    seeds = list(stats["seeds"])
    rows = {s: _seed_row(s, per_seed_results[s], eval_results[s]) for s in seeds}
    artifact = [_seed_artifact(rows[s], code_bytes) for s in seeds]
    first = lambda key: next((r.get(key) for r in per_seed_results.values() if r.get(key)), None)  # noqa: E731
    out = {
        "author": author, "github_id": github_id, "name": name,
        "blurb": blurb or (f"golf reproduction, {len(seeds)}-seed mean val_bpb {stats['val_bpb_mean']:.8f}"),
        "date": date, "track": TRACK,
        "val_loss": stats["val_loss_mean"], "val_bpb": stats["val_bpb_mean"],
        "val_loss_std": stats["val_loss_std"], "val_bpb_std": stats["val_bpb_std"],
        "seeds": seeds,
        "seed_results": {str(s): {k: v for k, v in {**rows[s], "artifact_bytes": a}.items()
                                  if k in UPSTREAM_SEED_KEYS and v is not None}
                         for s, a in zip(seeds, artifact)},
        "comparison_baseline_bpb": stats["best_bpb"],
        "delta_vs_leaderboard_bpb": stats["delta_bpb"], "delta_vs_leaderboard_nats": stats["delta_loss"],
        "artifact_bytes_mean": _mean(artifact), "artifact_bytes_max": _max(artifact),
        "bytes_total": _max(artifact),
        "bytes_code": code_bytes if code_bytes is not None else _max([rows[s]["code_bytes"] for s in seeds]),
        "train_steps_mean": _mean([rows[s]["steps"] for s in seeds]),
        "step_avg_ms_mean": _mean([rows[s]["step_avg_ms"] for s in seeds]),
        "hardware": _hardware(per_seed_results),
        "pytorch_version": first("torch_version"),
        "cuda_version": first("cuda_version"),
        "technique_summary": technique_summary or name,
        "golf": {
            "seed_results": {str(s): {k: v for k, v in rows[s].items() if k not in UPSTREAM_SEED_KEYS and v is not None}
                             for s in seeds},
            "statistics": {k: stats[k] for k in (
                "n_seeds", "test", "best_bpb", "best_loss", "best_loss_source", "best_source", "tokens_per_byte",
                "min_improvement_nats", "min_improvement_bpb", "threshold_loss", "threshold_bpb",
                "t_stat", "df", "p_value", "alpha", "verdict", "verdict_at", "notes")},
            "compliance": {"compliant": compliance["compliant"], "failed": list(compliance["failed"]),
                           "artifact_bytes_max": _max(artifact), "artifact_limit_bytes": ARTIFACT_LIMIT_BYTES,
                           "train_time_max_s": _max([rows[s]["train_time_s"] for s in seeds]),
                           "eval_time_max_s": _max([rows[s]["eval_time_s"] for s in seeds])},
            "submittable": submittable(stats, compliance),
            **dict(extra or {}),
        },
    }
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


# ---------------------------------------------------------------------------------------------
# the folder


@dataclass(frozen=True)
class FolderParts:
    """What one record kind puts into the folder; the layout, submission.json's keys,
    statistics.md, spec.yaml, the logs' names and how files are written are the writer's."""

    readme: str
    code: Mapping[str, bytes]  # relative path -> bytes: the script(s) that ran and what ships beside them
    code_bytes: int  # the folder's train_gpt.py size (submission.json's bytes_code)
    logs: Mapping[int, bytes | str]  # seed -> its train log, written as given
    per_seed: Mapping[int, Mapping[str, Any]]  # seed -> the training side of its row (submission_json)
    evals: Mapping[int, Mapping[str, Any]]  # seed -> its scored evaluation (val_bpb, val_loss, eval_time_s)
    extra: Mapping[str, Any]  # submission.json's `golf` extras
    blurb: str = ""
    technique_summary: str = ""
    statistics_tail: str = ""  # appended to statistics.md (a script record's test against its claim)


def write_folder(root: str | Path, date: str, name: str, stats: Mapping[str, Any], compliance: Mapping[str, Any],
                 spec_dump: Mapping[str, Any] | None, parts: FolderParts, *, author: str = "",
                 github_id: str = "") -> Path:
    """Write `root/YYYY-MM-DD_Name/` and return it: `parts.code`, then README.md,
    submission.json, statistics.md, spec.yaml and train_seed{S}.log per seed of `stats`.
    Existing files of the same names are replaced, others kept; each file is written to a
    temporary name first and renamed, so a reader never sees half a file."""
    import yaml

    seeds = list(stats["seeds"])
    sub = submission_json(name, date, parts.per_seed, parts.evals, stats, compliance, author=author,
                          github_id=github_id, blurb=parts.blurb, extra=parts.extra, code_bytes=parts.code_bytes,
                          technique_summary=parts.technique_summary)
    text = {
        "README.md": parts.readme,
        "submission.json": json.dumps(sub, indent=2, allow_nan=False) + "\n",
        "statistics.md": render_statistics(stats) + parts.statistics_tail,
        "spec.yaml": yaml.safe_dump(_json_safe(dict(spec_dump or {})), sort_keys=False),
        **{f"train_seed{s}.log": parts.logs[s] for s in seeds},
    }
    files: dict[str, bytes] = dict(parts.code)
    # bytes as counted: no newline translation
    files.update({k: v.encode("utf-8") if isinstance(v, str) else v for k, v in text.items()})
    folder = Path(root) / folder_name(date, name)
    for rel, blob in files.items():
        dst = folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.parent / f".{dst.name}.tmp"
        tmp.write_bytes(blob)
        tmp.replace(dst)
    return folder
