"""A script record's part of its folder (`script_folder_parts`, written by
orchestrator.records.write.write_folder): what `golf reproduce RECORD_DIR` and a `reproduce: true`
stage write.

`records/track_10min_16mb/YYYY-MM-DD_Name/`:
- README.md: what ran, the per-seed results, the tests against the claim and against the best
  known score (each verdict at the README's p < 0.01 and the leaderboard's p < 0.25), the checks
  golf could judge from the logs; written from the run's own numbers only.
- submission.json: orchestrator.records.write.submission_json's keys (the preset reproduce's), golf's
  extras (the claim test, the env, the jobs) under `golf`.
- statistics.md: orchestrator.records.write.render_statistics plus the claim test and its recompute.
- train_seed<S>.log: each seed's job's own train.log, the bytes the worker wrote (or the MLflow
  artifact of a reused run), unchanged.
- the files that ran: the script as train_gpt.py, or the record folder's files; the folder's own
  README.md, submission.json and logs go under `claimed/` (they would collide with ours).
- spec.yaml: the resolved script spec.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from orchestrator.records.write import FolderParts, _f, _p

__all__ = ["CLAIMED_DIR", "readme_run_command", "render_claim_statistics", "render_script_readme",
           "script_folder_parts"]

CLAIMED_DIR = "claimed"
_OURS = {"README.md", "submission.json", "statistics.md", "spec.yaml"}


def _claimed(rel: str) -> bool:
    """A record folder's file that goes under claimed/: our names, and its own logs."""
    p = PurePosixPath(rel)
    return len(p.parts) == 1 and (p.name in _OURS or p.suffix == ".log" or
                                  (p.suffix == ".txt" and p.name != "requirements.txt"))


def _alpha_words(key: str) -> str:
    a = key.removeprefix("p<")
    return {"0.01": f"p < {a} (the README's bar)", "0.25": f"p < {a} (the leaderboard's practice, PR #1902)"}.get(
        a, f"p < {a}")


def render_claim_statistics(claim_stats: Mapping[str, Any] | None, seeds: list[int],
                            per_seed_bpb: Mapping[int, float]) -> str:
    """statistics.md's section on the claim, with the lines that recompute its test."""
    if claim_stats is None:
        return "\n## Against the claim\n\nNo claim was given, so there is no test against one.\n"
    c = claim_stats
    lines = ["", "## Against the claim", "",
             f"- Claim ({c['source']}): mean val_bpb {c['claim_val_bpb_mean']:.8f}"
             + (f", std {c['claim_val_bpb_std']:.8f} over {c['claim_n']} seeds" if c["claim_val_bpb_std"] else "")
             + f"; the test uses {c['claim_basis']}.",
             f"- Reproduced: mean val_bpb {c['val_bpb_mean']:.8f} over {c['n_seeds']} seeds; "
             f"difference {c['delta_bpb']:+.8f} bpb.",
             f"- Test: {c['test']}; t = {_f(c['t_stat'], '.4f')}, df = {_f(c['df'], '.3f')}, p = {_p(c['p_value'])}."]
    lines += [f"- At {_alpha_words(k)}: **{v}**." for k, v in c["verdict_at"].items()]
    lines += [f"- Note: {n}" for n in c["notes"]]
    if c["p_value"] is not None:
        repro = ", ".join(repr(float(per_seed_bpb[s])) for s in seeds)
        lines += ["", "Recompute:", "", "```python", "import scipy.stats", f"reproduced = [{repro}]"]
        if c.get("claim_val_bpb") and len(c["claim_val_bpb"]) >= 2:
            claimed = ", ".join(repr(v) for v in c["claim_val_bpb"].values())
            lines += [f"claimed = [{claimed}]",
                      "print(scipy.stats.ttest_ind(reproduced, claimed, equal_var=False, alternative='greater'))"]
        elif c["claim_val_bpb_std"]:
            lines += ["import statistics",
                      "print(scipy.stats.ttest_ind_from_stats(statistics.mean(reproduced), statistics.stdev(reproduced), "
                      f"len(reproduced), {c['claim_val_bpb_mean']!r}, {c['claim_val_bpb_std']!r}, {c['claim_n']}, "
                      "equal_var=False, alternative='greater'))"]
        else:
            lines += [f"print(scipy.stats.ttest_1samp(reproduced, {c['claim_val_bpb_mean']!r}, alternative='greater'))"]
        lines += ["```"]
    return "\n".join(lines) + "\n"


def readme_run_command(env: Mapping[str, str], vocab_size: int, nproc: int, entry: str) -> list[str]:
    """The README's command each seed's job ran (its env; golf's per-seed SEED and VOCAB_SIZE),
    as lines of a bash block."""
    shown = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    return [f"{shown + ' ' if shown else ''}SEED=<seed> VOCAB_SIZE={vocab_size} \\",
            f"  python -m torch.distributed.run --standalone --nproc_per_node={nproc} {entry}"]


def render_script_readme(name: str, date: str, rep: Any, seeds: Mapping[int, Any], stats: Mapping[str, Any],
                         claim_stats: Mapping[str, Any] | None, compliance: Mapping[str, Any], *,
                         code_bytes: int, script: Mapping[str, Any], data_name: str, copied: list[str],
                         claimed: list[str]) -> str:
    order = list(stats["seeds"])
    src = rep.source.name if rep.source is not None else None
    what = f"`{src}`" if src else f"spec `{rep.sweep.name}`"
    head = f"# Reproduction of {src or rep.sweep.name}"
    if claim_stats is not None:
        head += f": {claim_stats['verdict']}"
    std = stats["val_bpb_std"]
    line = (f"**val_bpb {stats['val_bpb_mean']:.8f}** ({stats['n_seeds']}-seed mean"
            + (f", std {std:.8f}" if std is not None else "") + ")")
    if claim_stats is not None:
        line += (f" | claimed {claim_stats['claim_val_bpb_mean']:.8f} | against the claim: "
                 f"**{claim_stats['verdict']}** (p = {_p(claim_stats['p_value'])})")
    line += (f" | against the best known {stats['best_bpb']:.4f}: **{stats['verdict']}** "
             f"(p = {_p(stats['p_value'])}, alpha {stats['alpha']})")
    t = rep.sweep.train
    env = rep.env()
    folder_words = (f"The record folder's {script['files']} files (their hashes are part of each job's identity; "
                    f"together sha256 {script['sha256'][:16]})" if script.get("folder") else
                    f"`{script['entry']}` (sha256 {script['sha256'][:16]})")
    lines = [head, "", line, "",
             "## What ran", "",
             f"{folder_words}, {code_bytes:,} bytes of train_gpt.py, ran as one golf script job per seed, each in "
             "a fresh directory holding a copy of those files:", "",
             "```bash",
             *readme_run_command(env, rep.sweep.data.vocab_size, t.gpus_per_job, script["entry"]),
             "```", "",
             f"golf set DATA_PATH (the data directory `{data_name}`), TOKENIZER_PATH and RUN_ID (the job's name) "
             "unless the env above sets them."]
    if rep.source is not None:
        lines.append(f"The env is the torchrun command of {what}'s README.md"
                     + (f" without {', '.join(rep.dropped)}, which golf sets" if rep.dropped else "")
                     + (f", with `--set-env` for {', '.join(sorted(rep.set_env))}" if rep.set_env else "") + ".")
    lines += [f"Seeds from {rep.seeds_from}; GPUs per job from {rep.nproc_from}; data from {rep.data_from}.", "",
              "## Results", "",
              "| seed | val_bpb | val_loss | score line | claimed val_bpb | steps | ms/step | train s | "
              "artifact bytes | job |", "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    claimed_per_seed = (claim_stats or {}).get("claim_val_bpb") or {}
    for s in order:
        r = seeds[s]
        res = r.result
        job = "ran" if r.state == "finished" else f"reused (MLflow run {r.run_id})"
        lines.append(f"| {s} | {res['val_bpb']:.8f} | {res['val_loss']:.8f} | `{res.get('final_tag', '?')}` | "
                     f"{_f(claimed_per_seed.get(s), '.8f')} | {_f(res.get('steps'), 'd')} | "
                     f"{_f(res.get('step_avg_ms'), '.1f')} | {_f(res.get('train_time_s'), '.1f')} | "
                     f"{_f(res.get('artifact_bytes'), ',')} | {job} |")
    lines += [f"| **mean** | **{stats['val_bpb_mean']:.8f}** | {stats['val_loss_mean']:.8f} | | "
              f"{_f((claim_stats or {}).get('claim_val_bpb_mean'), '.8f')} | | | | | |", "",
              "Each seed's score is the last score line of its own log (`train_seed<S>.log`)"
              + (f", the one tagged `{t.score_tag}`" if t.score_tag else "") + ".", "",
              "## Against the claim", ""]
    if claim_stats is None:
        lines.append("No claim was given, so there is no test against one.")
    else:
        c = claim_stats
        lines += [f"- claim ({c['source']}): mean val_bpb {c['claim_val_bpb_mean']:.8f}; the test uses "
                  f"{c['claim_basis']}",
                  f"- reproduced − claimed: {c['delta_bpb']:+.8f} bpb",
                  f"- {c['test']}: t = {_f(c['t_stat'], '.4f')}, df = {_f(c['df'], '.3f')}, p = {_p(c['p_value'])}"]
        lines += [f"- at {_alpha_words(k)}: **{v}**" for k, v in c["verdict_at"].items()]
        lines += [f"- note: {n}" for n in c["notes"]]
        lines += ["", "A small p says these seeds scored worse than claimed; a large one only that they cannot "
                      "tell this run apart from the claim."]
    lines += ["", "## Against the best known score", "",
              f"- best known: val_bpb {stats['best_bpb']:.6f} ({stats['best_source']}) = {stats['best_loss']:.6f} "
              f"nats in this run's tokens ({stats['best_loss_source']})",
              f"- the bar: {stats['min_improvement_nats']} nats below it = val_loss {stats['threshold_loss']:.6f} "
              f"(val_bpb {stats['threshold_bpb']:.6f})",
              f"- {stats['test']}: t = {_f(stats['t_stat'], '.4f')}, df = {stats['df']}, p = {_p(stats['p_value'])}"]
    lines += [f"- at {_alpha_words(k)}: **{v}**" for k, v in stats["verdict_at"].items()]
    lines += [f"- note: {n}" for n in stats["notes"]]
    lines += ["", "Details and the lines that recompute both tests: `statistics.md`.", "",
              "## Checks", "",
              "What golf can judge from each job's log and files. The script scores itself, so golf's "
              "C1–C4 audit (which measures golf's own evaluation) did not run on it.", "",
              ("Every check golf could judge passed." if compliance["compliant"] else
               "Failed: " + "; ".join(compliance["failed"]) + "."), "",
              "| seed | check | result | value | detail |", "|---:|---|---|---|---|"]
    for s, sc in compliance["seeds"].items():
        for cname, c in sc["checks"].items():
            state = {True: "pass", False: "**FAIL**"}.get(c.get("passed"), "not judged")
            detail = str(c.get("detail") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {s} | {cname} | {state} | {str(c.get('value')).replace('|', chr(92) + '|')} | {detail} |")
    again = ["golf reproduce", "RECORD_DIR" if rep.source is not None else "spec.yaml",
             "--seeds " + ",".join(str(s) for s in t.seeds)]
    again += [f"--set-env {k}={v}" for k, v in sorted(rep.set_env.items())]
    again += [f"--gpus-per-job {t.gpus_per_job}", "--data DATA_DIR"]
    lines += ["", "## Run it again", "", "```bash", " ".join(again), "```", "",
              (f"RECORD_DIR is {what}. " if rep.source is not None else "")
              + "Jobs with a FINISHED run in the same MLflow store are reused, not rerun.", "",
              "## Files", "",
              "- `README.md` — this file",
              "- `submission.json` — the numbers (the keys of upstream's newest records; golf's under `golf`)",
              "- `statistics.md` — both tests, and the lines that recompute them",
              *[f"- `train_seed{s}.log` — seed {s}'s job's own train.log (torchrun's stdout and stderr), unchanged"
                for s in order],
              *[f"- `{c}` — as it ran" for c in copied],
              *([f"- `{CLAIMED_DIR}/` — the record's own {', '.join(claimed)}, as published"] if claimed else []),
              "- `spec.yaml` — the resolved script spec", ""]
    return "\n".join(lines)


def script_folder_parts(name: str, date: str, rep: Any, seeds: Mapping[int, Any],
                        evals: Mapping[int, Mapping[str, Any]], stats: Mapping[str, Any],
                        claim_stats: Mapping[str, Any] | None, compliance: Mapping[str, Any],
                        plan: Any) -> FolderParts:
    """A script record's part of the folder (the module doc): the files that ran, read again and
    checked against the plan's hash (an edited file is an error), each seed's own train.log."""
    from orchestrator.plan.script import script_files

    order = list(stats["seeds"])
    first = seeds[order[0]].job
    ref = first.script
    entry = ref.entry
    script = {"path": ref.path, "entry": ref.entry, "sha256": ref.sha256, "files": ref.files, "folder": ref.folder}
    files = script_files(first)
    out_files: dict[str, bytes] = {}
    copied, claimed = [], []
    if ref.folder:
        for rel, blob in sorted(files.items()):
            if _claimed(rel):
                out_files[f"{CLAIMED_DIR}/{rel}"] = blob
                claimed.append(rel)
            else:
                out_files[rel] = blob
                copied.append(rel)
    else:
        out_files["train_gpt.py"] = files[entry]
        copied.append("train_gpt.py" + (f" (the spec's {entry})" if entry != "train_gpt.py" else ""))
    code_bytes = len(out_files.get("train_gpt.py", files[entry]))
    per_seed = {}
    for s in order:
        r = seeds[s].result
        from_log = r.get("artifact_bytes_source", "log") == "log"
        per_seed[s] = {"artifact_bytes": r.get("artifact_bytes"), "model_bytes": None if from_log else r.get("model_bytes"),
                       "code_bytes": r.get("code_bytes"), "steps": r.get("steps"), "step_avg_ms": r.get("step_avg_ms"),
                       "train_time_s": r.get("train_time_s"), "world_size": r.get("world_size")}
    src = rep.source.name if rep.source is not None else None
    extra = {
        "reproduction_of": src or rep.sweep.name, "spec": plan.sweep_name, "sweep_identity": plan.sweep_identity,
        "script": {"entry": entry, "sha256": script["sha256"], "files": script["files"], "folder": script.get("folder")},
        "env": rep.env(), "set_env": dict(rep.set_env), "not_from_readme": dict(rep.dropped),
        "seeds_from": rep.seeds_from, "gpus_per_job": rep.sweep.train.gpus_per_job, "nproc_from": rep.nproc_from,
        "claim": claim_stats, "claim_input": rep.claim,
        "final_tag": {str(s): seeds[s].result.get("final_tag") for s in order},
        "runs": {str(s): seeds[s].run_id for s in order}, "reused": {str(s): seeds[s].state for s in order},
    }
    readme = render_script_readme(name, date, rep, seeds, stats, claim_stats, compliance, code_bytes=code_bytes,
                                  script={**script, "entry": entry}, data_name=Path(plan.data.path).name,
                                  copied=copied, claimed=claimed)
    return FolderParts(
        readme=readme, code=out_files, code_bytes=code_bytes, logs={s: seeds[s].log for s in order},
        per_seed=per_seed, evals={s: evals[s] for s in order}, extra=extra,
        blurb=f"golf reproduction of {src or rep.sweep.name}, {len(order)}-seed mean val_bpb {stats['val_bpb_mean']:.8f}",
        technique_summary=f"reproduction of {src or rep.sweep.name}",
        statistics_tail=render_claim_statistics(claim_stats, order, stats["val_bpb"]))
