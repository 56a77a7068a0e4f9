"""A user's script record (`golf reproduce RECORD_DIR`, `golf reproduce SPEC` with a script
spec, a staged sweep's `reproduce: true` stage): the RecordSource of
orchestrator.records.pipeline for script jobs.

What runs was resolved before (orchestrator.records.script_resolve.ScriptReproduction). Per
seed: its script job's result, parsed from its own train.log (result.json fetched back for a
reused run) and that log's bytes; its checks: what golf can judge from the log and the files
(the script scores itself, so golf's C1-C4 audit did not run on it); its score: the log's score
line. Statistics against the best known score and against the claim (submission.json or
`--claim`). The folder: orchestrator.records.script_folder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from golf_core import rules
from orchestrator.records import stats as S
from orchestrator.records.pipeline import (
    JudgedRun, ReproduceError, ReproduceResult, data_check, reproduce_record,
)
from orchestrator.records.script_folder import script_folder_parts
from orchestrator.records.script_resolve import ScriptReproduction, passed_env_line
from orchestrator.records.write import TRACK_DIR, FolderParts
from workers.contract import ScriptTrainJob

__all__ = ["ScriptRecord", "ScriptSeed", "collect_script_seeds", "reproduce_script", "script_checks"]


@dataclass
class ScriptSeed:
    seed: int
    job: Any
    result: dict
    verdict: Any
    run_id: str | None
    state: str  # finished | reused
    log: bytes | None  # the job's own train.log, verbatim


def collect_script_seeds(report, fetch: Callable[[str], dict | None] | None = None,
                         fetch_log: Callable[[str], bytes | None] | None = None) -> dict[int, ScriptSeed]:
    """Per seed: its script job's result (a reused run's result.json fetched back) and its own
    train.log (the worker's bytes, or a reused run's MLflow artifact). ReproduceError naming
    every job that did not finish, or whose log cannot be had."""
    problems, seeds = [], {}
    for out in report.outcomes.values():
        if not isinstance(out.job, ScriptTrainJob):
            continue
        if out.state not in ("finished", "reused"):
            problems.append(f"{out.job.name} {out.state}" + (f" ({out.reason})" if out.reason else ""))
            continue
        result = dict(out.result or {})
        if out.state == "reused" and fetch is not None and out.run_id:
            result = {**result, **(fetch(out.run_id) or {})}
        log = out.train_log
        if log is None and out.state == "reused" and fetch_log is not None and out.run_id:
            log = fetch_log(out.run_id)
        if log is None:
            problems.append(f"{out.job.name}: its train.log is not available (MLflow run {out.run_id})")
            continue
        if rules.as_number(result.get("val_bpb")) is None or rules.as_number(result.get("val_loss")) is None:
            problems.append(f"{out.job.name}: no val_bpb/val_loss score line in its train.log")
            continue
        seeds[out.job.seed] = ScriptSeed(out.job.seed, out.job, result, out.verdict, out.run_id, out.state, log)
    if problems:
        raise ReproduceError("the reproduction needs jobs that did not finish: " + "; ".join(problems))
    return seeds


def script_checks(run: ScriptSeed, tokenizer_name: str | None) -> dict[str, dict]:
    """The rules golf can judge from a script job's log and files. The script scores itself, so
    the eval-time legality checks (C1-C4) are not measured: an informational row says so."""
    r = run.result
    checks: dict[str, dict] = {}
    size = rules.artifact_size(r.get("artifact_bytes"))
    checks["artifact_bytes"] = dict(size.as_dict(), passed=size.passed is True,
                                    detail=size.detail + f"; from the {r.get('artifact_bytes_source', 'log')}")
    cap = run.job.max_wallclock_seconds
    spent = rules.train_time(r.get("train_time_s"), cap, step_avg_ms=r.get("step_avg_ms"), track_cap_s=rules.TRAIN_CAP_S)
    checks["train_time"] = dict(spent.as_dict(), passed=spent.passed is True)
    ev = rules.eval_time(r.get("eval_time_s"))
    checks["eval_time"] = dict(ev.as_dict(), detail=ev.detail + ("" if ev.passed is not None else
                                                                 ": the log states no total eval time"))
    v = run.verdict
    bad = v is not None and not v.valid
    checks["valid"] = {"passed": not bad, "value": not bad,
                       "detail": v.reason if bad else "a finite score line, exit 0"}
    ws = r.get("world_size")
    ok_ws = ws == rules.TRACK_WORLD_SIZE
    checks["hardware"] = {"passed": None if ok_ws else False, "value": f"{ws} rank{'s' if ws != 1 else ''}",
                          "detail": f"the track trains on {rules.TRACK_WORLD_SIZE}x{rules.TRACK_GPU} SXM"
                                    + ("; the GPU model is not recorded by script jobs" if ok_ws else "")}
    checks["eval_audit"] = {"passed": None, "value": "not audited",
                            "detail": "the script scores itself; golf's C1-C4 audit covers golf's own evaluation"}
    if tokenizer_name is not None:
        checks["data"] = data_check(tokenizer_name)
    return checks


# ---------------------------------------------------------------------------------------------
# the source


@dataclass
class ScriptRecord:
    """A resolved script reproduction as a RecordSource (orchestrator.records.pipeline)."""

    rep: ScriptReproduction

    @property
    def sweep(self) -> Any:
        return self.rep.sweep

    @property
    def claim(self) -> dict | None:
        return self.rep.claim

    @property
    def source_dir(self) -> Path | None:
        return self.rep.source

    def default_name(self) -> str:
        source_name = self.rep.source.name if self.rep.source is not None else self.sweep.name
        return re.sub(r"^\d{4}-\d{2}-\d{2}_", "", source_name) + "_reproduced"

    def intro(self) -> list[str]:
        return [*self.rep.lines(), passed_env_line(self.sweep.train.pass_env)]

    def started(self, plan: Any, tracking: str) -> str:
        return f"{len(plan.jobs)} script jobs; tracking {tracking}"

    def collect(self, report: Any, fetch: Callable[[str], dict | None],
                fetch_log: Callable[[str], bytes | None]) -> dict[int, ScriptSeed]:
        return collect_script_seeds(report, fetch, fetch_log)

    def seed_checks(self, run: ScriptSeed, tokenizer_name: str | None) -> dict[str, dict]:
        return script_checks(run, tokenizer_name)

    def seed_eval(self, run: ScriptSeed, checks: dict[str, dict]) -> dict[str, Any]:
        r = run.result  # the score line of the job's own log
        return {"val_bpb": r["val_bpb"], "val_loss": r["val_loss"], "eval_time_s": r.get("eval_time_s")}

    def folder_parts(self, j: JudgedRun) -> FolderParts:
        return script_folder_parts(j.name, j.date, self.rep, j.seeds, j.evals, j.stats, j.claim_stats,
                                   j.compliance, j.plan)


def reproduce_script(rep: ScriptReproduction, *, name: str | None = None, out: str | Path = TRACK_DIR,
                     date: str | None = None, best_bpb: float | None = None, best_loss: float | None = None,
                     alpha: float = S.ALPHA, author: str = "", github_id: str = "", tracking_uri: str | None = None,
                     work_dir: str | Path = ".golf", workspace: str | Path = ".", run_fn: Callable | None = None,
                     ray: dict | None = None, say: Callable[[str], None] = print) -> ReproduceResult:
    """Run `rep`'s seeds as script jobs, test them, write the folder under `out`: the pipeline
    (orchestrator.records.pipeline.reproduce_record, which documents the arguments)."""
    return reproduce_record(ScriptRecord(rep), name=name, out=out, date=date, best_bpb=best_bpb,
                            best_loss=best_loss, alpha=alpha, author=author, github_id=github_id,
                            tracking_uri=tracking_uri, work_dir=work_dir, workspace=workspace, run_fn=run_fn,
                            ray=ray, say=say)
