"""`golf import RECORD_DIR...`: published record folders into MLflow, one run per seed log, so a
user's runs and the records compare side by side (same metric names as golf's train jobs).

Each folder is read on its own: one without a usable log is one line naming it and is skipped,
the others import (a summary lists what was skipped). The score recorded is the line whose
val_bpb matches submission.json's per-seed claim (orchestrator.records.judge; tag
golf.score_tag), or the one `--score-tag` names; none matching is tagged golf.score_mismatch.
Each seed is judged by golf_core.rules (bytes, train time, eval time): golf.valid,
golf.compliant, golf.reason; a score that does not count is logged as `val_bpb_noncompliant`,
never `val_bpb`. A run starts at the record's date (submission.json `date`, else the folder's
YYYY-MM-DD prefix), so the runs table orders records in time.

Each run: params `env.<KEY>` (the README's torchrun command, SEED set to the run's seed),
`torchrun.<flag>`, `submission.<dotted.key>` (scalars; lists as JSON); metrics val_bpb, val_loss,
artifact_bytes, steps, train_time_s, step_avg_ms, eval_time_s, peak_mem_mib and
`val_bpb.<tag>` for every score line; curves `train_loss` and `val_bpb_step` by step; tags
golf.kind=record, golf.source=<folder>, golf.seed, golf.log, golf.final_tag and golf.identity
= sha256 of the log's bytes; artifacts: the log, submission.json, README.md.

Idempotent: a FINISHED run with the same golf.identity in the experiment means the log is in
already and nothing is sent. A run is marked FINISHED only after everything else reached the
server, so an import interrupted halfway leaves a RUNNING run, which the next import ends KILLED
(`golf.killed_reason=incomplete_import`) and replaces. Synchronous, without the driver's
journal: nothing here is lost if it fails, the folder is still on disk.
"""
from __future__ import annotations

from golf_core.errors import UserError
import time
import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from orchestrator.records.folder import RecordFolder, RecordFolderError, SeedLog, claim_of, read_record_folder
from orchestrator.records.judge import RULINGS, ScoreChoice, SeedVerdict, choose_score, judge_seed
from orchestrator.tracking.client import (
    TrackingUnavailable, _query, is_transient, make_client, resolve_tracking_uri, search_all,
    tag_filter,
)
from orchestrator.tracking.names import score_metric
from orchestrator.tracking.params import clean_key, clean_params, clean_tags
from orchestrator.tracking.writer import _chunks

__all__ = ["DEFAULT_EXPERIMENT", "ImportResult", "import_records", "run_params", "run_metrics"]

DEFAULT_EXPERIMENT = "records"
SUMMARY_METRICS = ("val_bpb", "val_loss", "artifact_bytes", "steps", "train_time_s", "step_avg_ms",
                   "eval_time_s", "peak_mem_mib")


@dataclass
class ImportResult:
    experiment_id: str
    created: list[tuple[str, str]]  # (folder/log, run id)
    existing: list[tuple[str, str]]  # already imported: (folder/log, run id)
    replaced: list[str]  # run ids of incomplete earlier imports, ended KILLED
    skipped: list[tuple[Path, str]]  # files in the folders that are not seed logs, and why
    bad_folders: list[tuple[Path, str]] = field(default_factory=list)  # folders skipped whole, and why
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (folder/log, the log it repeats)
    mismatches: list[tuple[str, str]] = field(default_factory=list)  # (folder/log, what disagrees)


def run_params(folder: RecordFolder, log: SeedLog) -> dict[str, str]:
    env = dict(folder.env)
    if log.seed is not None and "SEED" in env:
        env["SEED"] = str(log.seed)  # the README shows one seed's command; this run used its own
    params = {"env": env, "torchrun": folder.launcher, "submission": folder.submission}
    return clean_params(params)


def run_metrics(log: SeedLog, choice: ScoreChoice | None = None, legal: bool = True,
                ) -> tuple[dict[str, float], list[tuple[str, float, int]]]:
    """(summary metrics at step 0, curve points (key, value, step)). The score is `choice`'s
    line (default: the log's last), under `val_bpb` only when `legal`."""
    s = choice.summary if choice is not None else log.summary
    summary = {k: float(getattr(s, k)) for k in SUMMARY_METRICS if getattr(s, k) is not None}
    if "val_bpb" in summary:
        summary[score_metric(legal)] = summary.pop("val_bpb")
    for tag, (_loss, bpb) in s.scores.items():
        summary[clean_key(f"val_bpb.{tag}")] = bpb
    curve = [("train_loss", v, step) for step, v in s.curve_points]
    curve += [("val_bpb_step", bpb, step) for step, _loss, bpb in s.val_points]
    return summary, curve


def _experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    from orchestrator.tracking.links import experiment_tags

    if exp is None:
        return client.create_experiment(name, tags=experiment_tags())
    if exp.lifecycle_stage != "active":
        client.restore_experiment(exp.experiment_id)
    for k, v in experiment_tags(exp.tags).items():
        if exp.tags.get(k) != v:
            client.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


def _send(uri: str, what: str, fn):
    """A write call; an unreachable server is TrackingUnavailable (one line, naming the URI)."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - classified below
        if is_transient(e):
            raise TrackingUnavailable(f"MLflow tracking at {uri} unreachable while {what}: {e}"
                                      .splitlines()[0]) from e
        raise


_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")


def record_time_ms(folder: RecordFolder) -> int | None:
    """The record's date as epoch ms (UTC): submission.json `date`, else the folder name's
    YYYY-MM-DD prefix; None when neither parses."""
    for text in (folder.submission.get("date"), folder.name):
        if not isinstance(text, str):
            continue
        try:
            when = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            m = _DATE.match(text.strip())
            if not m:
                continue
            try:
                when = _dt.datetime.fromisoformat(m.group(1))
            except ValueError:
                continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=_dt.timezone.utc)
        return int(when.timestamp() * 1000)
    return None


def _run_name(folder: RecordFolder, log: SeedLog, taken: set[str]) -> str:
    name = f"{folder.name}/seed{log.seed}" if log.seed is not None else f"{folder.name}/{log.path.stem}"
    if name in taken:  # two logs of one seed: the file tells them apart
        name = f"{folder.name}/{log.path.stem}"
    taken.add(name)
    return name


def _import_log(client, uri: str, exp_id: str, folder: RecordFolder, log: SeedLog, name: str,
                choice: ScoreChoice, verdict: SeedVerdict) -> str:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    start = record_time_ms(folder) or now
    s = choice.summary
    tags = {
        "golf.kind": "record", "golf.source": folder.name, "golf.identity": log.sha256,
        "golf.seed": "unknown" if log.seed is None else log.seed, "golf.log": log.path.name,
        "golf.final_tag": s.final_tag or "", "golf.score_tag": choice.tag or "", "golf.score_from": choice.how,
        "golf.valid": str(verdict.valid).lower(), "golf.compliant": str(verdict.compliant).lower(),
    }
    if verdict.reason:
        tags["golf.reason"] = verdict.reason
    if choice.mismatch:
        tags["golf.score_mismatch"] = choice.mismatch
    tags = clean_tags(tags)
    what = f"importing {folder.name}/{log.path.name}"
    run = _send(uri, what, lambda: client.create_run(exp_id, start_time=start, tags=tags, run_name=name))
    run_id = run.info.run_id
    summary, curve = run_metrics(log, choice, legal=verdict.compliant)
    metrics = [Metric(k, v, now, 0) for k, v in summary.items()]
    metrics += [Metric(k, v, now, step) for k, v, step in curve]
    params = [Param(k, v) for k, v in run_params(folder, log).items()]
    for cm, cp, ct in _chunks(metrics, params, []):
        _send(uri, what, lambda: client.log_batch(run_id, metrics=cm, params=cp, tags=ct))
    for f in (log.path, folder.path / "submission.json", folder.path / "README.md"):
        if f.is_file():
            _send(uri, what, lambda: client.log_artifact(run_id, str(f)))
    # the run's duration in the UI is the record's train + eval time, not the upload's
    spent = sum(t for t in (s.train_time_s, s.eval_time_s) if t is not None)
    end = start + int(spent * 1000) if start != now else int(time.time() * 1000)
    _send(uri, what, lambda: client.set_terminated(run_id, status="FINISHED", end_time=end))
    return run_id


def import_records(dirs: list[str | Path], experiment: str = DEFAULT_EXPERIMENT,
                   tracking_uri: str | None = None, score_tag: str | None = None,
                   say: Callable[[str], None] = lambda _msg: None) -> ImportResult:
    """Import every seed log of `dirs`. All folders are read before anything is sent; a folder
    that cannot be read (no usable log, bad submission.json) is said in one line and skipped
    (ImportResult.bad_folders), the rest import. When no folder can be read, RecordFolderError
    (one line naming them) and nothing is sent."""
    if not experiment or not experiment.strip():
        raise UserError("--experiment must be a non-empty name")
    folders, bad = [], []
    for d in dirs:
        try:
            folders.append(read_record_folder(d))
        except RecordFolderError as e:
            bad.append((Path(d), str(e)))
    if not folders:
        raise RecordFolderError("; ".join(why for _, why in bad) if bad else "no record folder given")
    for _, why in bad:
        say(f"skipped folder {why}")
    uri = resolve_tracking_uri(tracking_uri)
    client = make_client(uri)
    exp_id = _query(uri, f"opening experiment {experiment!r}", lambda: _experiment(client, experiment))
    known = _query(uri, f"listing imported records of {experiment!r}",
                   lambda: search_all(client, exp_id, tag_filter("golf.kind", "record")))
    finished = {r.data.tags.get("golf.identity"): r.info.run_id for r in known if r.info.status == "FINISHED"}
    stale = {}
    for r in known:
        ident = r.data.tags.get("golf.identity")
        if r.info.status != "FINISHED" and ident not in finished and r.data.tags.get("golf.killed_reason") is None:
            stale.setdefault(ident, []).append(r.info.run_id)
    res = ImportResult(exp_id, [], [], [], [s for f in folders for s in f.skipped], bad_folders=bad)
    seen: dict[str, str] = {}
    for folder in folders:
        claimed = (claim_of(folder.submission) or {}).get("val_bpb") or {}
        names: set[str] = set()
        for log in folder.logs:
            label = f"{folder.name}/{log.path.name}"
            if log.sha256 in seen:  # a byte-identical log: the same file twice, or a copy
                if seen[log.sha256] != label:
                    res.duplicates.append((label, seen[log.sha256]))
                    say(f"duplicate {label}: byte-identical to {seen[log.sha256]}, imported once")
                continue
            seen[log.sha256] = label
            name = _run_name(folder, log, names)
            if log.sha256 in finished:
                res.existing.append((label, finished[log.sha256]))
                continue
            for run_id in stale.pop(log.sha256, []):
                _send(uri, f"ending incomplete import {run_id}", lambda: (
                    client.set_tag(run_id, "golf.killed_reason", "incomplete_import"),
                    client.set_terminated(run_id, status="KILLED")))
                res.replaced.append(run_id)
            choice = choose_score(log.path, log.summary, claimed.get(log.seed), score_tag)
            verdict = judge_seed(choice.summary, RULINGS.get(folder.name))
            run_id = _import_log(client, uri, exp_id, folder, log, name, choice, verdict)
            res.created.append((label, run_id))
            legal = "" if verdict.compliant else f", NOT COMPLIANT: {verdict.reason}"
            say(f"imported {label} (seed {log.seed}, val_bpb {choice.summary.val_bpb:.8f} from "
                f"{choice.tag or 'the last line'}{legal}) as run {run_id}")
            if choice.mismatch:
                res.mismatches.append((label, choice.mismatch))
                say(f"score mismatch {label}: {choice.mismatch}")
    return res
