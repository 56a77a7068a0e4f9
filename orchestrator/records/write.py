"""A record claim's submission folder: `records/track_10min_16mb/YYYY-MM-DD_Name/`.

Pure functions (no Ray, no MLflow): `format_train_log`, `render_readme`, `render_statistics`,
`submission_json` and `write_record_folder` produce the folder in upstream's shape (README.md,
submission.json, statistics.md, one train log per seed, a self-contained train_gpt.py, the
resolved spec) from the outputs of orchestrator.records.stats.

The statistics themselves (mean/std, the one-sided t-test against the current best at 0.005
nats, the verdict, the compliance merge) live in orchestrator.records.stats.
"""
from __future__ import annotations

import json
import math
import re
from datetime import date as _date
from pathlib import Path
from typing import Any, Mapping

from golf_core import ARTIFACT_LIMIT_BYTES
from orchestrator.records.stats import (
    RecordError, submittable,
)

__all__ = ["TRACK", "TRACK_DIR", "folder_name", "format_train_log", "render_readme", "render_statistics",
           "submission_json", "tilt_env", "write_record_folder"]

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


def _train_eval_words(per_seed_results: Mapping[int, Mapping[str, Any]]) -> str:
    """How the training job scored its roundtrip, in words true of its config."""
    ev = next((((r.get("config") or {}).get("eval")) for r in per_seed_results.values()
               if (r.get("config") or {}).get("eval")), None)
    if not ev:
        return "roundtrip"
    seq, stride = ev.get("seq_len"), ev.get("stride")
    tail = "the partial last block dropped" if ev.get("tail") == "drop" else "every target scored"
    if seq == stride:
        return f"non-overlapping (windows of {seq} tokens, {tail})"
    return f"sliding-window (windows of {seq} tokens, stride {stride}, {tail})"


def _ranks(per_seed_results: Mapping[int, Mapping[str, Any]]) -> int:
    """The world size the seeds trained with (the script's --nproc_per_node); 8 when unrecorded."""
    sizes = {r.get("world_size") for r in per_seed_results.values() if isinstance(r.get("world_size"), int)}
    return sizes.pop() if len(sizes) == 1 else 8


def tilt_env(mixer: Mapping[str, Any] | Any | None) -> dict[str, str]:
    """The environment that runs a record's tilt mixer, under #2135's names (NGRAM_TILT_ENABLED,
    TOKEN_ORDER, TOKEN_THRESHOLD, TOKEN_BOOST; golf_core.envvars), {} for any other mixer. The
    script bakes the same values in; the README's command states them as #2135's README does,
    so a reader sees (and can change) the tilt without opening the script."""
    from golf_core.envvars import EVAL_ALIASES, TILT_SWITCH

    m = mixer.model_dump(mode="json") if hasattr(mixer, "model_dump") else dict(mixer or {})
    if m.get("mode") != "tilt":
        return {}
    env = {TILT_SWITCH: "1"}
    for name, path in EVAL_ALIASES.items():
        section, field = path.split(".")
        if section == "mixer" and field.startswith("tilt_") and m.get(field) is not None:
            env[name] = repr(m[field])  # repr: the float reads back exactly
    return env


def _claimed_mixer(eval_results: Mapping[int, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The claim's mixer, as every seed's evaluation recorded it (records.reproduce.scored_eval)."""
    return next((r["mixer"] for r in eval_results.values() if isinstance(r.get("mixer"), Mapping)), None)


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
              f"`roundtrip` is the training job's own {_train_eval_words(per_seed_results)} score of the same "
              "artifact.", "",
              "## How to reproduce", "",
              "```bash",
              f"golf reproduce {spec_file} --name {name!r} --date {date}",
              "```", "",
              f"`{spec_file}` in this folder is the resolved spec. `golf reproduce` trains every seed, evaluates "
              "it, reuses runs MLflow already finished, and writes this folder. Without golf, as any "
              "parameter-golf script (DATA_PATH and TOKENIZER_PATH default to upstream's data layout; every "
              "hyperparameter can be set by its upstream name, e.g. ITERATIONS):", "",
              "```bash",
              " ".join([f"SEED={seeds[0]}", *(f"{k}={v}" for k, v in tilt_env(_claimed_mixer(eval_results)).items()),
                        f"torchrun --standalone --nproc_per_node={_ranks(per_seed_results)} train_gpt.py"]),
              "```", "",
              "trains one seed and evaluates it with the same configuration; its last line is the seed's "
              "score.", "",
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
              "| seed | model bytes | train_gpt.py bytes | total | limit |", "|---:|---:|---:|---:|---:|"]
    for s in seeds:
        r = rows[s]
        code = code_bytes_script if code_bytes_script is not None else r["code_bytes"]
        lines.append(f"| {s} | {_f(r['model_bytes'], ',')} | {_f(code, ',')} | "
                     f"{_f(_seed_artifact(r, code_bytes_script), ',')} | {ARTIFACT_LIMIT_BYTES:,} |")
    if code_bytes_script is not None:
        lines += ["", f"`train_gpt.py` in this folder is {code_bytes_script:,} bytes (`bytes_code` in submission.json); "
                  "total = the seed's model + this script (`bytes_total` is the largest)."]
    lines += ["", "## Files", "",
              "- `README.md` — this file", "- `submission.json` — the numbers, machine-readable",
              "- `statistics.md` — the significance test",
              *[f"- `train_seed{s}.log` — seed {s}'s training log" for s in seeds],
              "- `requirements.txt` — what `train_gpt.py` imports besides the standard library",
              "- `train_gpt.py` — self-contained script with this record's config baked in (the golf_core "
              "modules it runs bundled as source)",
              f"- `{spec_file}` — the resolved spec", ""]
    return "\n".join(lines)


def write_record_folder(root: str | Path, date: str, name: str,
                        per_seed_results: Mapping[int, Mapping[str, Any]],
                        eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                        compliance: Mapping[str, Any], spec_dump: Mapping[str, Any] | None,
                        train_logs: Mapping[int, str], code_text: str, *, author: str = "",
                        github_id: str = "", blurb: str = "", extra: Mapping[str, Any] | None = None,
                        technique_summary: str = "", requirements: str | None = None) -> Path:
    """Write `root/YYYY-MM-DD_Name/` (root: usually ./records/track_10min_16mb) and return it.

    Files: README.md (first line "# NOT SUBMITTABLE: non-compliant ..." when any check failed),
    submission.json, statistics.md, train_seed{S}.log per seed (`train_logs`, written as given),
    train_gpt.py (`code_text`), requirements.txt and spec.yaml (the resolved spec). Existing files
    of the same names are replaced, others kept. `extra` goes under submission.json's `golf` key."""
    from golf_core.export import requirements_text

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
                          github_id=github_id, blurb=blurb, extra=extra, code_bytes=code_bytes,
                          technique_summary=technique_summary or str((spec_dump or {}).get("description") or ""))
    files = {
        "README.md": render_readme(name, date, per_seed_results, eval_results, stats, compliance, spec_dump,
                                   spec_file, code_bytes),
        "submission.json": json.dumps(sub, indent=2, allow_nan=False) + "\n",
        "statistics.md": render_statistics(stats),
        "train_gpt.py": code_text,
        "requirements.txt": requirements if requirements is not None else requirements_text(),
        spec_file: yaml.safe_dump(_json_safe(dict(spec_dump or {})), sort_keys=False),
        **{f"train_seed{s}.log": train_logs[s] for s in seeds},
    }
    for fname, text in files.items():
        tmp = folder / f".{fname}.tmp"
        tmp.write_bytes(text.encode("utf-8"))  # bytes as counted: no newline translation
        tmp.replace(folder / fname)
    return folder
