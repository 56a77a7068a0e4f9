"""`golf import RECORD_DIR...`: published record folders into MLflow, one run per seed log, so a
user's runs and the records compare side by side (same metric names as golf's train jobs).

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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.records.folder import RecordFolder, SeedLog, read_record_folder
from orchestrator.tracking.client import (
    TrackingUnavailable, _query, is_transient, make_client, resolve_tracking_uri, search_all,
    tag_filter,
)
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


def run_params(folder: RecordFolder, log: SeedLog) -> dict[str, str]:
    env = dict(folder.env)
    if log.seed is not None and "SEED" in env:
        env["SEED"] = str(log.seed)  # the README shows one seed's command; this run used its own
    params = {"env": env, "torchrun": folder.launcher, "submission": folder.submission}
    return clean_params(params)


def run_metrics(log: SeedLog) -> tuple[dict[str, float], list[tuple[str, float, int]]]:
    """(summary metrics at step 0, curve points (key, value, step))."""
    s = log.summary
    summary = {k: float(getattr(s, k)) for k in SUMMARY_METRICS if getattr(s, k) is not None}
    for tag, (_loss, bpb) in s.scores.items():
        summary[clean_key(f"val_bpb.{tag}")] = bpb
    curve = [("train_loss", v, step) for step, v in s.curve_points]
    curve += [("val_bpb_step", bpb, step) for step, _loss, bpb in s.val_points]
    return summary, curve


def _experiment(client, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name)
    if exp.lifecycle_stage != "active":
        client.restore_experiment(exp.experiment_id)
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


def _import_log(client, uri: str, exp_id: str, folder: RecordFolder, log: SeedLog) -> str:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    tags = clean_tags({
        "golf.kind": "record", "golf.source": folder.name, "golf.identity": log.sha256,
        "golf.seed": "unknown" if log.seed is None else log.seed, "golf.log": log.path.name,
        "golf.final_tag": log.summary.final_tag or "",
    })
    name = f"{folder.name}/seed{log.seed}" if log.seed is not None else f"{folder.name}/{log.path.stem}"
    what = f"importing {folder.name}/{log.path.name}"
    run = _send(uri, what, lambda: client.create_run(exp_id, start_time=now, tags=tags, run_name=name))
    run_id = run.info.run_id
    summary, curve = run_metrics(log)
    metrics = [Metric(k, v, now, 0) for k, v in summary.items()]
    metrics += [Metric(k, v, now, step) for k, v, step in curve]
    params = [Param(k, v) for k, v in run_params(folder, log).items()]
    for cm, cp, ct in _chunks(metrics, params, []):
        _send(uri, what, lambda: client.log_batch(run_id, metrics=cm, params=cp, tags=ct))
    for f in (log.path, folder.path / "submission.json", folder.path / "README.md"):
        if f.is_file():
            _send(uri, what, lambda: client.log_artifact(run_id, str(f)))
    _send(uri, what, lambda: client.set_terminated(run_id, status="FINISHED", end_time=int(time.time() * 1000)))
    return run_id


def import_records(dirs: list[str | Path], experiment: str = DEFAULT_EXPERIMENT,
                   tracking_uri: str | None = None,
                   say: Callable[[str], None] = lambda _msg: None) -> ImportResult:
    """Import every seed log of `dirs`. All folders are read and checked before anything is
    sent (a bad folder is a RecordFolderError naming it)."""
    if not experiment or not experiment.strip():
        raise ValueError("--experiment must be a non-empty name")
    folders = [read_record_folder(d) for d in dirs]
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
    res = ImportResult(exp_id, [], [], [], [s for f in folders for s in f.skipped])
    seen: set[str] = set()
    for folder in folders:
        for log in folder.logs:
            label = f"{folder.name}/{log.path.name}"
            if log.sha256 in finished:
                res.existing.append((label, finished[log.sha256]))
                continue
            if log.sha256 in seen:  # the same file given twice (two paths to one folder)
                continue
            seen.add(log.sha256)
            for run_id in stale.pop(log.sha256, []):
                _send(uri, f"ending incomplete import {run_id}", lambda: (
                    client.set_tag(run_id, "golf.killed_reason", "incomplete_import"),
                    client.set_terminated(run_id, status="KILLED")))
                res.replaced.append(run_id)
            run_id = _import_log(client, uri, exp_id, folder, log)
            res.created.append((label, run_id))
            say(f"imported {label} (seed {log.seed}, val_bpb {log.summary.val_bpb}) as run {run_id}")
    return res
