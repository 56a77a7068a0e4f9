"""Tracker: the driver's one door to MLflow. Every call returns at once.

Layout (docs/ARCHITECTURE.md): one experiment per spec name; one parent run per sweep
(`golf.kind=sweep`, reused when the same sweep identity runs again, so the UI shows one parent
per sweep however often it is resumed); one child run per job ATTEMPT (`mlflow.parentRunId`):
a retried job's failed attempt ends FAILED with `golf.attempt=1` and the retry is a new run with
`golf.attempt=2`, so every attempt keeps its own curve and log in the UI.

Delivery: a call is written to the journal (journal.py), queued, and sent by the writer thread
(writer.py), which batches and retries through server outages. A driver crash loses nothing:
the next Tracker on the same journal_dir replays what was not acknowledged.

One FINISHED run per identity: the writer searches for a FINISHED run with the same
`golf.identity` right before it finishes one, and ends a duplicate KILLED
(`golf.killed_reason=duplicate`). The search and the finish are two calls, so two writers could
both pass the check, so the writer checks again after finishing (the earliest-started FINISHED
run stays, later ones end KILLED duplicate). One driver runs a sweep at a time
(orchestrator.run.lease); drivers of different sweeps in one experiment may share identities.
Resume (orchestrator.run.track.TrackingAdapter) uses finished_runs / close_stale_running before
any job starts.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import uuid
from pathlib import Path
from typing import Any, Mapping

from .client import (
    RunRecord, _query, check_store, download_artifacts, finished_runs_everywhere,
    make_client, metric_history, redact, resolve_tracking_uri, search_all, study_runs, tag_filter,
)
from . import index
from .journal import Journal, adopt_orphans
from .names import run_name
from .params import clean_tags, flatten_params, system_tags
from .run_handle import STATUSES, RunHandle, _now_ms  # noqa: F401 - STATUSES re-exported
from .writer import Writer

__all__ = ["RunHandle", "Tracker"]

log = logging.getLogger("golf.tracking")

RESULT_METRICS = (
    "val_bpb", "val_loss", "artifact_bytes", "code_bytes", "model_bytes",
    "train_time_s", "eval_time_s", "tokens_per_s",
)


class Tracker:
    """Tracker(tracking_uri, experiment_name, journal_dir): see the module docstring.

    tracking_uri: None -> $MLFLOW_TRACKING_URI -> sqlite:///mlflow.db (working directory).
    journal_dir: None -> ./.golf/mlflow-journal. Journals of dead drivers found there (same
    tracking URI) are replayed first.
    """

    def __init__(self, tracking_uri: str | None = None, experiment_name: str = "golf",
                 journal_dir: str | os.PathLike | None = None, *, linger_s: float = 0.05,
                 max_backoff_s: float = 5.0, artifact_roots: list[str | os.PathLike] | None = None):
        if not experiment_name or not str(experiment_name).strip():
            raise ValueError("experiment_name must be a non-empty string")
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        check_store(self.tracking_uri)  # a garbage mlflow.db: one line now, not retries forever
        self.experiment_name = str(experiment_name)
        self.journal_dir = Path(journal_dir or Path.cwd() / ".golf" / "mlflow-journal")
        # a replayed upload must come from here (default: the work dir holding the journal)
        self.artifact_roots = [Path(r) for r in (artifact_roots or [self.journal_dir.resolve().parent])]
        self._lock = threading.Lock()
        # run keys: 128 random bits each, as uuid4, from a generator seeded once from the OS
        # (os.urandom per run gave up the GIL once a run, a wait behind the writer thread)
        self._keys = random.Random(int.from_bytes(os.urandom(32), "big"))
        self._journal = Journal(self.journal_dir, self.tracking_uri, self.experiment_name)
        try:
            self._writer = Writer(self.tracking_uri, self._journal, linger_s, max_backoff_s)
            self._writer.experiment = self.experiment_name
            self._handles: list[RunHandle] = []
            self.sweep: RunHandle | None = None
            self.sweep_identity: str | None = None
            self._closed = False
            self._client = None
            self._after_close: list = []
            self.replayed = self._adopt_orphans()
        except BaseException:
            self._journal.close(delete=True)  # never an orphan journal per failed start
            raise
        self._writer.start()

    def _adopt_orphans(self) -> int:
        orphans = adopt_orphans(self.journal_dir, self.tracking_uri, self._journal.path,
                                self.experiment_name, self.artifact_roots)
        for key, run_id in orphans.runs.items():
            self._writer.runs[key] = run_id
            self._writer.unverified.add(key)  # a journal is editable: check the run before use
            self._journal.map_run(key, run_id)
        for op in orphans.ops:
            op.pop("seq", None)
            op["_tried"] = True  # a create may have reached the server: look it up first
            self._enqueue(op)
        self._journal.sync()
        orphans.release()  # their pending calls are safe in our journal now
        return len(orphans.ops)

    def held(self):
        """Context: calls made inside are journaled with one flush at the end (Journal.hold)."""
        return self._journal.hold()

    def _enqueue(self, op: dict) -> None:
        # one lock around seq + queue: the writer must see ops in seq order
        with self._lock:
            if self._closed:
                log.warning("tracking call %s after Tracker.close() ignored", op["op"])
                return
            self._journal.append_op(op)
            self._writer.submit(op)

    def _run_key(self) -> str:
        return uuid.UUID(int=self._keys.getrandbits(128), version=4).hex

    def _new_run(self, kind: str, identity: str | None, tags: dict, name: str,
                 parent: RunHandle | None, reuse: dict | None = None) -> RunHandle:
        handle = RunHandle(self, self._run_key(), kind, identity)
        tags = clean_tags({**system_tags(), **tags, "golf.kind": kind, "golf.run_key": handle.key})
        op = {"op": "create", "key": handle.key, "experiment": self.experiment_name,
              "tags": tags, "name": name, "start_ms": _now_ms(),
              "parent": parent.key if parent else None}
        if reuse:
            op["reuse"] = reuse
        self._enqueue(op)
        self._handles.append(handle)
        return handle

    # -- runs --------------------------------------------------------------------------------
    def start_sweep(self, sweep_identity: str, params: Mapping[str, Any] | None = None,
                    name: str | None = None) -> RunHandle:
        """The sweep's parent run (reused if this sweep identity has one already). Returns its
        handle at once; `.run_id` / `.wait_run_id()` give the MLflow id once created."""
        self.sweep_identity = sweep_identity
        tags = {"golf.sweep": sweep_identity}
        self.sweep = self._new_run("sweep", None, tags, name or f"sweep-{sweep_identity[:12]}",
                                   None, reuse={"golf.kind": "sweep", "golf.sweep": sweep_identity})
        if params:
            self.sweep.log_params(params)
        return self.sweep

    def start_job(self, job: Any, attempt: int = 1) -> RunHandle:
        """A child run for one attempt of `job` (orchestrator.plan.build.Job: kind, identity, name,
        config, deps, seed, params). Params: job.params, or the flattened config when it has none;
        the run's name is short (orchestrator.tracking.names), its full path the `golf.job` tag."""
        identity = str(job.identity)
        tags = {"golf.identity": identity, "golf.attempt": int(attempt)}
        if getattr(job, "seed", None) is not None:
            tags["golf.seed"] = int(job.seed)
        if getattr(job, "deps", None):
            tags["golf.deps"] = ",".join(map(str, job.deps))  # upstream identities
        if self.sweep is not None:
            tags["golf.sweep"] = self.sweep_identity
        if getattr(job, "trial", None) is not None:  # an optuna env trial: resume finds it by these
            tags["golf.trial"] = int(job.trial)
            tags["golf.study"] = str(job.study)
        path = str(getattr(job, "name", "") or f"{job.kind}-{identity[:8]}")
        tags["golf.job"] = path  # the full plan path; the run name is the short form
        name = run_name(str(job.kind), path)
        if attempt > 1:
            name = f"{name} (attempt {attempt})"
        handle = self._new_run(str(job.kind), identity, tags, name, self.sweep)
        # job.params (the plan's curated flat keys) when it has them, else the flattened config:
        # never both, so no field is logged twice under two names (`train.seed`, `run.train.seed`)
        params = flatten_params(getattr(job, "params", None) or getattr(job, "config", None) or {})
        if params:
            handle.log_params(params)
        return handle

    def copy_run(self, job: Any, source: RunRecord) -> RunHandle:
        """A child run of this sweep standing for `source`, a FINISHED run of the same identity
        in another experiment: tagged `golf.reused_from=<source run id>`, its metrics and verdict
        tags copied, its artifacts referenced (`golf.artifact_uri`), not uploaded again. It is
        not the record: lookups skip such copies, and dependents fetch from the source run."""
        handle = self.start_job(job, attempt=1)
        handle.identity = None  # finished beside the source, never judged its duplicate
        keep = ("golf.valid", "golf.reason", "golf.compliant", "golf.code_version", "golf.gpu")
        handle.set_tags({**{k: v for k, v in source.tags.items() if k in keep},
                         "golf.reused_from": source.run_id, "golf.reused_from_experiment": source.experiment_id,
                         "golf.artifact_uri": source.artifact_uri})
        handle.log_metrics(source.metrics)
        handle.finish("FINISHED")
        return handle

    # -- delivery ----------------------------------------------------------------------------
    def reachable(self) -> bool:
        """False while MLflow is unreachable (the writer's last delivery failed)."""
        return not self._writer.unreachable

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call made so far reached MLflow; False on timeout."""
        if not self._writer.is_alive():  # closed: nothing more will be sent
            return self._journal.acked >= self._journal.last_seq
        return self._writer.wait_acked(self._journal.last_seq, timeout)

    def close(self, timeout: float | None = 60.0) -> bool:
        """Finish what is open (the sweep FINISHED, unfinished jobs KILLED), flush, stop the
        writer. Calls not delivered within `timeout` stay in the journal for the next Tracker.
        Returns True when everything was delivered."""
        if self._closed:
            return True
        for h in self._handles:
            if not h.finished:
                if h is self.sweep:
                    h.finish("FINISHED")
                else:
                    h.finish("KILLED", reason="tracker closed before the job finished")
        ok = self.flush(timeout)
        with self._lock:
            self._closed = True
        self._writer.stop()
        self._writer.join(timeout=40)
        done = ok and self._journal.acked >= self._journal.last_seq
        if not done:
            log.warning("%d tracking calls not delivered to %s; kept in %s for the next Tracker",
                        self._journal.last_seq - self._journal.acked, redact(self.tracking_uri),
                        self._journal.path)
        self._journal.close(delete=done)
        for fn in self._after_close:
            try:
                fn(done)
            except Exception:  # noqa: BLE001 - a hook must not hide the close's answer
                log.exception("after-close hook failed")
        return done

    def after_close(self, fn) -> None:
        """Call fn(delivered) once close() has flushed: the driver releases its sweep lease
        there, so a waiting driver never sees our last runs still RUNNING."""
        self._after_close.append(fn)

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- resume queries (synchronous: the driver needs the answer) ---------------------------
    def _sync(self, timeout: float | None) -> Any:
        """Deliver pending calls first (a replayed finish must land before we look), then
        return the query client."""
        self.flush(timeout)
        if self._client is None:
            self._client = make_client(self.tracking_uri)
        return self._client

    def _experiment_id(self, client) -> str | None:
        exp = client.get_experiment_by_name(self.experiment_name)
        return exp.experiment_id if exp is not None and exp.lifecycle_stage == "active" else None

    def close_stale_running(self, identity: str | None = None,
                            timeout: float | None = 30.0, live_sweeps=None) -> list[str]:
        """End as KILLED (tag `golf.killed_reason=stale`) the RUNNING runs of `identity` (or of
        the whole experiment when None) that this Tracker does not own: runs of a driver that
        died. Runs tagged `golf.sweep` in `live_sweeps()` (sweeps whose driver holds a live lease,
        asked after the search: a run found was made before its driver's lease was seen) are
        left alone. Call it holding this sweep's lease. Returns the closed run ids."""
        client = self._sync(timeout)
        filt = "attributes.status = 'RUNNING'"
        if identity is not None:
            filt = f"{tag_filter('golf.identity', identity)} and {filt}"
        own = {h.run_id for h in self._handles if not h.finished}

        def query() -> list[str]:
            exp_id = self._experiment_id(client)
            if exp_id is None:
                return []
            closed = []
            runs = search_all(client, exp_id, filt)
            skip = live_sweeps() if live_sweeps is not None and runs else set()
            for run in runs:
                rid = run.info.run_id
                if rid in own or run.data.tags.get("golf.sweep") in skip:
                    continue
                client.set_tag(rid, "golf.killed_reason", "stale")
                client.set_terminated(rid, status="KILLED")
                closed.append(rid)
            return closed

        closed = _query(self.tracking_uri, "closing stale runs", query)
        if closed:
            log.warning("closed %d stale RUNNING run(s) as KILLED: %s", len(closed), closed)
        return closed

    def finished_runs(self, identities=None) -> dict[str, list[RunRecord]]:
        """identity -> its FINISHED runs in every experiment of the store, oldest first; with
        `identities`, only theirs are read (orchestrator.tracking.index: the cost follows the
        plan, not the store)."""
        self.flush(30.0)
        if identities is not None:
            return index.finished_runs(self.tracking_uri, identities)
        return finished_runs_everywhere(self.tracking_uri)

    def study_runs(self, study: str) -> list[RunRecord]:
        """FINISHED runs of an optuna env study in this experiment, oldest first."""
        self.flush(30.0)
        return study_runs(self.tracking_uri, self.experiment_name, study)

    def experiment_id(self, timeout: float | None = 30.0) -> str | None:
        """This tracker's experiment id (None while it does not exist yet)."""
        client = self._sync(timeout)
        return _query(self.tracking_uri, "looking up the experiment", lambda: self._experiment_id(client))

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return metric_history(self.tracking_uri, run_id, key)

    def set_experiment_tags(self, tags: Mapping[str, Any], timeout: float | None = 30.0) -> None:
        """Experiment tags, synchronously (e.g. `mlflow.note.content`, the description the UI
        shows): once per sweep, at its end, when the experiment exists."""
        client = self._sync(timeout)

        def query() -> None:
            exp_id = self._experiment_id(client)
            if exp_id is not None:
                for k, v in clean_tags(tags).items():
                    client.set_experiment_tag(exp_id, k, v)

        _query(self.tracking_uri, "tagging the experiment", query)

    def download_artifacts(self, run_id: str, path: str, dst: str | os.PathLike) -> Path:
        """Fetch artifact `path` of an earlier run (e.g. model.ptz, token_stats.npz) into dst."""
        return download_artifacts(self.tracking_uri, run_id, path, dst)

    @property
    def stats(self) -> dict:
        """MLflow client calls made so far, by method, and transient failures seen."""
        return {"calls": dict(self._writer.calls), "failures": self._writer.failures}
