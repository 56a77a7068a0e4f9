"""The one reproduce pipeline, for every record kind: `golf reproduce SPEC | RECORD_DIR` and a
staged sweep's `reproduce: true` stage.

Flow: the source's sweep (checked when the source was made: one claim, before anything runs) →
the plan → the run, through the driver as `golf run` drives it (FINISHED runs in MLflow are
reused, never rerun) → `record_from_report`: per seed the source's runs (a reused run's
result.json and train.log fetched back from the MLflow artifact store) → every check of every
seed and the seed's score → statistics against the best known score and, when the source has a
claim, against it (orchestrator.records.stats) → the compliance verdict → the record folder
(orchestrator.records.write.write_folder, from the source's FolderParts) → the statistics on the
sweep's parent MLflow run (metrics val_bpb_mean, val_bpb_std, p_value, claim_*; tags
golf.record_verdict[.p_A], golf.record_compliant, golf.claim_verdict[.p_A]; the folder as
artifacts under `record/`).

What differs between a golf_core record (orchestrator.records.golf_record: train, eval and mix
jobs, golf's own audit, an exported train_gpt.py) and a user's script record
(orchestrator.records.script_record: one script job per seed, its log's score, its own files) is
a `RecordSource`.
"""
from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Protocol

from golf_core.errors import UserError
from orchestrator.records import stats as S
from orchestrator.records.write import TRACK_DIR, FolderParts, folder_name, write_folder

__all__ = ["JudgedRun", "RecordSource", "RecordSpecError", "ReproduceError", "ReproduceResult", "data_check",
           "record_from_report", "reproduce_record"]


class RecordSpecError(UserError):
    """The spec does not describe one record claim (one line per problem, joined by '; ')."""


class ReproduceError(RuntimeError):
    """Jobs the claim needs did not finish (one line naming them)."""


@dataclass
class JudgedRun:
    """A run's seeds, checked and tested: what a source writes its folder from."""

    name: str
    date: str
    plan: Any
    seeds: dict[int, Any]  # the source's per-seed runs (RecordSource.collect)
    checks: dict[int, dict[str, dict]]  # seed -> check name -> {"passed", "value", "detail"}
    evals: dict[int, dict[str, Any]]  # seed -> its score (RecordSource.seed_eval)
    stats: dict[str, Any]  # stats.record_statistics
    claim_stats: dict[str, Any] | None  # stats.claim_statistics (None: the source claims nothing)
    compliance: dict[str, Any]  # stats.merge_compliance


class RecordSource(Protocol):
    """What one kind of record reproduction decides; the rest is the pipeline's."""

    sweep: Any  # the spec whose plan runs (orchestrator.spec.sweep.Sweep)
    claim: dict | None  # what the seeds are tested against besides the best (folder.claim_of's shape)
    source_dir: Path | None  # a record folder being reproduced: the output may not replace it

    def default_name(self) -> str:
        """The folder's name after the date when --name is not given."""

    def intro(self) -> list[str]:
        """What is printed before the plan is built (what will run)."""

    def started(self, plan: Any, tracking: str) -> str:
        """The line printed once the run is prepared (`tracking`: the store, redacted)."""

    def collect(self, report: Any, fetch: Callable[[str], dict | None],
                fetch_log: Callable[[str], bytes | None]) -> dict[int, Any]:
        """Per seed its runs from the driver's report (`fetch`: a reused run's result.json,
        `fetch_log`: its train.log). ReproduceError naming every needed job that did not finish."""

    def seed_checks(self, run: Any, tokenizer_name: str | None) -> dict[str, dict]:
        """Every check of one seed: {name: {"passed", "value", "detail"}}."""

    def seed_eval(self, run: Any, checks: dict[str, dict]) -> dict[str, Any]:
        """One seed's score: val_bpb, val_loss, eval_time_s and what the kind adds."""

    def folder_parts(self, judged: JudgedRun) -> FolderParts:
        """The kind's part of the record folder: README, code files, logs, submission rows."""


@dataclass
class ReproduceResult:
    folder: Path
    stats: dict
    compliance: dict
    seeds: dict[int, Any]
    code_bytes: int
    submittable: bool
    evals: dict[int, dict] = field(default_factory=dict)  # the source's seed_eval per seed
    sweep_run_id: str | None = None
    claim_stats: dict | None = None
    source: Any = None  # the RecordSource


def data_check(tokenizer_name: str) -> dict:
    """A record is scored on FineWeb: synthetic tokens (golf's tokenizer name says so) never are."""
    synthetic = tokenizer_name.startswith("synthetic_")
    return {"passed": not synthetic, "value": tokenizer_name,
            "detail": "synthetic tokens, not FineWeb" if synthetic else "FineWeb validation split"}


def _check_numbers(best_bpb: float | None, best_loss: float | None, alpha: float) -> None:
    for flag, v in (("--best-bpb", best_bpb), ("--best-loss", best_loss)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"{flag} must be a positive number (got {v})")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UserError(f"--alpha must lie in (0, 1) (got {alpha})")


def reproduce_record(source: RecordSource, *, name: str | None = None, out: str | Path = TRACK_DIR,
                     date: str | None = None, best_bpb: float | None = None, best_loss: float | None = None,
                     alpha: float = S.ALPHA, author: str = "", github_id: str = "", tracking_uri: str | None = None,
                     work_dir: str | Path = ".golf", workspace: str | Path = ".", run_fn: Callable | None = None,
                     ray: dict | None = None, say: Callable[[str], None] = print) -> ReproduceResult:
    """Run `source`'s seeds, test them, write the folder under `out`.

    run_fn(plan, tracker, data_dir, work_dir) -> SweepReport (orchestrator.run.driver's shape:
    `.outcomes` {identity: JobOutcome(job, state, result, verdict, run_id, reason)}); default:
    orchestrator.run.start.ray_runner(**ray): the driver on a local Ray (or $RAY_ADDRESS), as
    `golf run` drives it. Input errors (name, date, numbers, data, tracking store) raise
    ValueError before anything runs; jobs that fail raise ReproduceError after the run."""
    from orchestrator.plan.build import build_plan
    from orchestrator.run.start import prepare_sweep, ray_runner
    from orchestrator.tracking import redact

    workspace = Path(workspace).resolve()
    name = name or source.default_name()
    date = date or datetime.now(timezone.utc).date().isoformat()
    dest = (Path(out) if Path(out).is_absolute() else workspace / out) / folder_name(date, name)
    if source.source_dir is not None and dest.resolve() == Path(source.source_dir).resolve():
        # the output's README.md, submission.json and logs would replace the record's own
        raise UserError(f"{dest}: is the record folder being reproduced; give another --name, --date or --out")
    if best_bpb is None and best_loss is None:
        best_bpb = S.DEFAULT_BEST_BPB  # shared/CONTEXT.md: the best legal 3-seed mean at the last look
    _check_numbers(best_bpb, best_loss, alpha)
    for line in source.intro():  # what will run, before anything does
        say(line)
    plan = build_plan(source.sweep, workspace)
    # the record folder is uploaded from the workspace, beside the work dir: both are ours to replay
    run = prepare_sweep(plan, workspace, tracking_uri=tracking_uri, work_dir=work_dir, say=say,
                        artifact_roots=[workspace], warn_synthetic=True)
    say(source.started(plan, redact(run.uri)))
    t0 = time.time()
    try:
        runner = run_fn or ray_runner(**({"say": say} | (ray or {})), tokenizer=run.tokenizer)
        report = runner(plan, run.tracker, run.data_dir, run.work)
        res = record_from_report(source, plan, report, run, name=name, out=out, date=date, best_bpb=best_bpb,
                                 best_loss=best_loss, alpha=alpha, author=author, github_id=github_id,
                                 workspace=workspace)
    finally:
        run.close(say)
    say(f"wrote {res.folder} in {time.time() - t0:.1f} s")
    return res


def record_from_report(source: RecordSource, plan: Any, report: Any, run: Any, *, name: str, out: str | Path,
                       date: str, best_bpb: float | None, best_loss: float | None, alpha: float = S.ALPHA,
                       author: str = "", github_id: str = "", workspace: str | Path = ".",
                       log_sweep: bool = True) -> ReproduceResult:
    """The statistics and the record folder of `source` from the jobs a run finished: what
    `golf reproduce` does after its seeds ran, and what a staged sweep's `reproduce: true` stage
    does with its jobs (`report` holding only the reproduced configuration's jobs). `run` is
    orchestrator.run.start.prepare_sweep's (its tracking URI, data dir, tokenizer and tracker).
    ReproduceError when a seed did not finish."""
    from golf_core.data.shards import find_tokenizer

    workspace = Path(workspace).resolve()
    if best_bpb is None and best_loss is None:
        best_bpb = S.DEFAULT_BEST_BPB
    seeds = source.collect(report, _fetcher(run.uri, "result.json"), _fetcher(run.uri, "train.log"))
    tok_name = find_tokenizer(run.data_dir, run.tokenizer).name
    checks = {s: source.seed_checks(r, tok_name) for s, r in seeds.items()}
    compliance = S.merge_compliance(checks)
    evals = {s: source.seed_eval(r, checks[s]) for s, r in seeds.items()}
    bpb = {s: float(e["val_bpb"]) for s, e in evals.items()}
    loss = {s: float(e["val_loss"]) for s, e in evals.items()}
    stats = S.record_statistics(bpb, loss, best_bpb=best_bpb, best_loss=best_loss, alpha=alpha)
    claim_stats = S.claim_statistics(bpb, source.claim, alpha=alpha) if source.claim is not None else None
    judged = JudgedRun(name, date, plan, seeds, checks, evals, stats, claim_stats, compliance)
    parts = source.folder_parts(judged)
    folder = write_folder(out if Path(out).is_absolute() else workspace / out, date, name, stats, compliance,
                          plan.spec_dump, parts, author=author, github_id=github_id)
    ok = S.submittable(stats, compliance)
    sweep_run_id = None
    if log_sweep:
        _log_to_sweep(run.tracker, stats, claim_stats, compliance, ok, folder)
        sweep_run_id = run.tracker.sweep.wait_run_id(30) if getattr(run.tracker, "sweep", None) is not None else None
    return ReproduceResult(folder, stats, compliance, seeds, parts.code_bytes, ok, evals, sweep_run_id,
                           claim_stats=claim_stats, source=source)


def _fetcher(uri: str, path: str) -> Callable[[str], Any]:
    """fetch(run_id): the run's artifact `path` from the MLflow artifact store (result.json
    parsed, anything else as bytes), None when it cannot be had (a run from before the file was
    uploaded: the caller falls back to the run's metrics, or says the log is missing)."""
    import json

    from orchestrator.tracking import download_artifacts

    def fetch(run_id: str) -> Any:
        dst = Path(tempfile.mkdtemp(prefix="golf-reproduce-"))
        try:
            got = download_artifacts(uri, run_id, path, dst)
            return json.loads(got.read_text()) if path.endswith(".json") else got.read_bytes()
        except Exception:  # noqa: BLE001 - see the docstring
            return None
        finally:
            shutil.rmtree(dst, ignore_errors=True)
    return fetch


def _log_to_sweep(tracker: Any, stats: dict, claim_stats: dict | None, compliance: dict, ok: bool,
                  folder: Path) -> None:
    """The claim's statistics on the sweep's parent run (MLflow accepts logs on ended runs)."""
    sweep = getattr(tracker, "sweep", None)
    if sweep is None:
        return
    metrics = {"val_bpb_mean": stats["val_bpb_mean"], "val_bpb_std": stats["val_bpb_std"],
               "val_loss_mean": stats["val_loss_mean"], "val_loss_std": stats["val_loss_std"],
               "p_value": stats["p_value"], "t_stat": stats["t_stat"], "n_seeds": stats["n_seeds"]}
    tags = {"golf.record_verdict": stats["verdict"],
            "golf.record_compliant": "true" if compliance["compliant"] else "false",
            "golf.record_submittable": "true" if ok else "false",
            "golf.record_folder": folder.name,
            # the same p-value judged at the README's 0.01 and the leaderboard's 0.25
            **{f"golf.record_verdict.{k.replace('<', '_')}": v for k, v in stats.get("verdict_at", {}).items()}}
    if claim_stats is not None:
        metrics.update({"claim_val_bpb_mean": claim_stats["claim_val_bpb_mean"],
                        "claim_delta_bpb": claim_stats["delta_bpb"], "claim_p_value": claim_stats["p_value"],
                        "claim_t_stat": claim_stats["t_stat"]})
        tags["golf.claim_verdict"] = claim_stats["verdict"]
        tags.update({f"golf.claim_verdict.{k.replace('<', '_')}": v for k, v in claim_stats["verdict_at"].items()})
    sweep.log_metrics({k: v for k, v in metrics.items() if v is not None and math.isfinite(float(v))})
    sweep.set_tags(tags)
    sweep.log_artifact(folder, "record")
