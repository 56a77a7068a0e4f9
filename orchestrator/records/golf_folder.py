"""A golf_core record's folder: its README (`render_readme`), the train logs golf rebuilds for
runs that predate train.log (`format_train_log`) and its parts for the one writer
(`golf_folder_parts`, orchestrator.records.write.write_folder): a self-contained train_gpt.py
(golf_core.export) with requirements.txt, each seed's train.log.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from golf_core import ARTIFACT_LIMIT_BYTES
from orchestrator.records.stats import RecordError, submittable
from orchestrator.records.write import (
    FolderParts, _f, _hardware, _max, _mean, _p, _seed_artifact, _seed_row, write_folder,
)

__all__ = ["format_train_log", "golf_folder_parts", "readme_run_command", "render_readme", "tilt_env",
           "write_record_folder"]


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
    """The claim's mixer, as every seed's evaluation recorded it (golf_record.scored_eval)."""
    return next((r["mixer"] for r in eval_results.values() if isinstance(r.get("mixer"), Mapping)), None)


def readme_run_command(seed: int, ranks: int, mixer: Mapping[str, Any] | Any | None = None) -> str:
    """The README's command that runs the folder's train_gpt.py without golf, as any
    parameter-golf script runs (its env, then torchrun); a tilt record states its tilt env."""
    return " ".join([f"SEED={seed}", *(f"{k}={v}" for k, v in tilt_env(mixer).items()),
                     f"torchrun --standalone --nproc_per_node={ranks} train_gpt.py"])


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
              readme_run_command(seeds[0], _ranks(per_seed_results), _claimed_mixer(eval_results)),
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


def golf_folder_parts(name: str, date: str, per_seed_results: Mapping[int, Mapping[str, Any]],
                      eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                      compliance: Mapping[str, Any], spec_dump: Mapping[str, Any] | None,
                      train_logs: Mapping[int, str], code_text: str, *, blurb: str = "",
                      extra: Mapping[str, Any] | None = None, technique_summary: str = "",
                      requirements: str | None = None) -> FolderParts:
    """A golf_core record's part of the folder: README.md (first line "# NOT SUBMITTABLE:
    non-compliant ..." when any check failed), train_gpt.py (`code_text`), requirements.txt,
    train_seed{S}.log per seed (`train_logs`, written as given). RecordError when a seed lacks
    a training result, an evaluation or a log."""
    from golf_core.export import requirements_text

    seeds = list(stats["seeds"])
    missing = [s for s in seeds if s not in per_seed_results or s not in eval_results or s not in train_logs]
    if missing:
        raise RecordError(f"seeds {missing} lack a training result, an evaluation or a log")
    code = code_text.encode("utf-8")
    readme = render_readme(name, date, per_seed_results, eval_results, stats, compliance, spec_dump,
                           "spec.yaml", len(code))
    reqs = requirements if requirements is not None else requirements_text()
    return FolderParts(
        readme=readme, code={"train_gpt.py": code, "requirements.txt": reqs.encode("utf-8")},
        code_bytes=len(code), logs={s: train_logs[s] for s in seeds}, per_seed=per_seed_results,
        evals=eval_results, extra=dict(extra or {}), blurb=blurb,
        technique_summary=technique_summary or str((spec_dump or {}).get("description") or ""))


def write_record_folder(root, date: str, name: str, per_seed_results: Mapping[int, Mapping[str, Any]],
                        eval_results: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                        compliance: Mapping[str, Any], spec_dump: Mapping[str, Any] | None,
                        train_logs: Mapping[int, str], code_text: str, *, author: str = "",
                        github_id: str = "", blurb: str = "", extra: Mapping[str, Any] | None = None,
                        technique_summary: str = "", requirements: str | None = None):
    """Write a golf_core record's `root/YYYY-MM-DD_Name/` (root: usually
    ./records/track_10min_16mb) and return it: golf_folder_parts through the one writer."""
    parts = golf_folder_parts(name, date, per_seed_results, eval_results, stats, compliance, spec_dump, train_logs,
                              code_text, blurb=blurb, extra=extra, technique_summary=technique_summary,
                              requirements=requirements)
    return write_folder(root, date, name, stats, compliance, spec_dump, parts, author=author, github_id=github_id)
