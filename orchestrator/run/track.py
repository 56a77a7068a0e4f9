"""The driver's view of tracking: the few calls it makes, mapped onto orchestrator.tracking.

Kept apart so the driver's loop reads as scheduling only, and so that what lands in MLflow
for a job (metrics, per-step train_loss, tags, artifact files) is decided in one place.
"""
from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from orchestrator import kinds
from orchestrator.kinds.base import JobKind
from workers.files import unpack_to

__all__ = ["Reused", "TrackingAdapter", "result_metrics"]

log = logging.getLogger("golf.driver")

# result keys logged as metrics: each kind's own list (orchestrator.kinds: JobKind.metric_keys)
METRIC_KEYS = JobKind.metric_keys


@dataclass(frozen=True)
class Reused:
    run_id: str
    result: dict
    valid: bool
    reason: str | None
    compliant: bool | None
    record: Any = None


def result_metrics(result: dict, keys: tuple[str, ...] = METRIC_KEYS) -> dict[str, float]:
    out = {}
    for k in keys:
        v = result.get(k)
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = float(v)
    return out


def legal(verdict) -> bool:
    """A score that counts: a valid result not judged non-compliant."""
    return bool(verdict.valid) and verdict.compliant is not False


def _reused_result(metrics: dict) -> dict:
    """A run's metrics as the job's result: `val_bpb_noncompliant` is the result's val_bpb."""
    from orchestrator.tracking.names import LEGAL_METRIC, NONCOMPLIANT_METRIC

    out = dict(metrics or {})
    if LEGAL_METRIC not in out and NONCOMPLIANT_METRIC in out:
        out[LEGAL_METRIC] = out.pop(NONCOMPLIANT_METRIC)
    return out


def _reused_compliant(tags: dict) -> bool | None:
    """The judge's own compliance of an earlier run: `golf.audit_compliant` (none/true/false) on
    runs that carry it; older runs' golf.compliant was exactly that."""
    ac = tags.get("golf.audit_compliant")
    if ac is not None:
        return None if ac == "none" else ac == "true"
    return _bool_tag(tags.get("golf.compliant"))


def _bool_tag(v: Any) -> bool | None:
    if v is None:
        return None
    return str(v).lower() == "true"


class TrackingAdapter:
    """Wraps an orchestrator.tracking.Tracker; calls return at once (the tracker queues)."""

    def __init__(self, tracker, spool_dir: str | None = None, reuse: bool = True):
        self.t = tracker
        self.reuse = reuse  # False (`golf run --no-reuse`): recompute every job
        self.handles: dict[str, Any] = {}  # handle key -> RunHandle
        self.copies: dict[str, Any] = {}  # identity -> the reused_from child run of this sweep
        self.sweep = None
        # job files are written here for the tracker's upload (it reads them later, in order)
        self.spool = Path(spool_dir or Path.cwd() / ".golf" / "spool")

    def held(self):
        """Context for one loop turn's tracking calls: one journal flush (Tracker.held)."""
        held = getattr(self.t, "held", None)
        return held() if held is not None else contextlib.nullcontext()

    def start_sweep(self, plan, live_sweeps=None) -> str | None:
        self._plan_ids = {j.identity for j in plan.jobs}  # the reuse lookup reads these runs only
        self.sweep = self.t.start_sweep(plan.sweep_identity, params={"golf.sweep_name": plan.sweep_name},
                                        name=plan.sweep_name)
        # RUNNING runs of a dead driver -> KILLED `stale`, with whatever log they had streamed
        # (after start_sweep, so our own parent run is ours; the driver holds this sweep's lease
        # by now); runs of other sweeps whose driver is alive (live_sweeps(): their leases are
        # live) are not stale. Tests: test_driver_resume.py (a SIGKILLed driver's run), test_lease.py
        # (a live sweep's run kept)
        self.t.close_stale_running(None, live_sweeps=live_sweeps)
        return self.sweep.key

    def find_finished(self, job) -> Reused | None:
        """The record of `job`: a FINISHED run that computed it, in any experiment of the store.
        The one lookup of a finished job (the driver's resume, tests). Tie rule: one in this
        experiment wins, the newest of them (a `--no-reuse` recompute supersedes the run it
        recomputed); else the newest elsewhere, which this sweep then shows as a child run tagged golf.reused_from
        (once: a rerun finds that copy in its experiment and adds no second one)."""
        if not self.reuse:
            return None
        if self._finished is None:  # one query for the whole plan
            self._asked = set(self._plan_ids) | {job.identity}
            self._finished = self.t.finished_runs(self._asked)
            self._exp_id = self.t.experiment_id() if self._finished else None
        elif job.identity not in self._asked:  # a job added while running (an optuna env trial)
            self._asked.add(job.identity)
            self._finished.update(self.t.finished_runs({job.identity}))
            if self._exp_id is None and self._finished:
                self._exp_id = self.t.experiment_id()
        runs = self._finished.get(job.identity) or []
        computed = [r for r in runs if r.computed]
        if not computed:
            return None
        here = [r for r in computed if r.experiment_id == self._exp_id]
        rec = (here or computed)[-1]
        if not here and not any(r.experiment_id == self._exp_id for r in runs):
            self.copies[job.identity] = self.t.copy_run(job, rec)
        tags = rec.tags or {}
        return Reused(rec.run_id, _reused_result(rec.metrics), valid=_bool_tag(tags.get("golf.valid")) is not False,
                      reason=tags.get("golf.reason"), compliant=_reused_compliant(tags), record=rec)

    _finished: dict | None = None
    _exp_id: str | None = None
    _plan_ids: set = frozenset()
    _asked: set = frozenset()

    def study_runs(self, study: str) -> list:
        """The FINISHED runs of an optuna env study in this experiment (orchestrator.run.trials)."""
        return self.t.study_runs(study) if self.reuse else []

    def open(self, job, attempt: int, parent: str | None) -> str:
        h = self.t.start_job(job, attempt=attempt)
        if not self.reuse:
            h.identity = None  # a forced recompute finishes beside the earlier run, not KILLED as its duplicate
        self.handles[h.key] = h
        return h.key

    def record(self, key: str, job, result: dict, verdict, files: dict[str, bytes]) -> None:
        from orchestrator.tracking.names import LEGAL_METRIC, score_metric

        h = self.handles[key]
        with h.batched() if hasattr(h, "batched") else contextlib.nullcontext():  # one journaled op
            ok = legal(verdict)
            keys = kinds.of(job).metric_keys
            metrics = result_metrics(result, keys)
            if LEGAL_METRIC in metrics:  # legal first: a score that does not count is never `val_bpb`
                metrics[score_metric(ok)] = metrics.pop(LEGAL_METRIC)
            h.log_metrics(metrics)
            h.log_result({k: v for k, v in result.items() if k not in keys}, curve=True)
            for i, bpb in enumerate(result.get("chunk_bpb") or []):  # drift across score-first chunks
                h.log_metrics({"chunk_val_bpb": float(bpb)}, step=i)
            for number, bpb, _params in result.get("trials") or []:  # optuna: step = trial number
                h.log_metrics({"trial_val_bpb": float(bpb)}, step=int(number))
            # every run kind carries golf.compliant (does its score count?); golf.audit_compliant keeps
            # the judge's own verdict (none for kinds it does not judge) for reuse
            h.set_tags({"golf.compliant": str(ok).lower(),
                        "golf.audit_compliant": "none" if verdict.compliant is None else str(verdict.compliant).lower()})
            h.set_validity(verdict.valid, verdict.reason)
        if files:
            d = self.spool / f"{job.identity[:16]}-{key[:8]}"
            unpack_to(files, d)
            h.log_artifact(d)

    def close(self, key: str | None, status: str, tags: dict) -> None:
        h = self.handles.get(key)
        if h is None or h.finished:
            return
        if tags:
            h.set_tags(tags)
        h.finish(status, reason=tags.get("golf.reason") if status != "FINISHED" else None)

    def run_id(self, key: str | None) -> str | None:
        h = self.handles.get(key)
        return h.run_id if h is not None else None

    def fetch_files(self, reused: Reused, names: tuple[str, ...]) -> dict[str, bytes]:
        """Named output files of an earlier run, from the MLflow artifact store."""
        dst = Path(tempfile.mkdtemp(prefix="golf-fetch-"))
        try:
            out = {}
            for name in names:
                try:
                    p = self.t.download_artifacts(reused.run_id, name, dst)
                except Exception as e:  # noqa: BLE001 - one line for the user
                    if name in names[:1]:
                        raise RuntimeError(f"run {reused.run_id}: cannot fetch {name}: {e}".splitlines()[0]) from e
                    continue
                out[name] = Path(p).read_bytes()
            return out
        finally:
            shutil.rmtree(dst, ignore_errors=True)

    # -- the sweep's summary (orchestrator.tracking.summary calls these) --------------------------------
    def _reachable(self) -> bool:
        return getattr(self.t, "reachable", lambda: True)()

    def outcome_run_id(self, out) -> str | None:
        """The MLflow run that shows `out` in this sweep (the reused_from copy for a run reused
        from another experiment)."""
        copy = self.copies.get(out.job.identity)
        if copy is not None:
            return copy.run_id
        h = self.handles.get(out.run_id)
        if h is not None and h.run_id is None and hasattr(h, "wait_run_id") and self._reachable():
            return h.wait_run_id(60.0) or out.run_id  # the writer is behind (not in an outage: never wait on one)
        return self.run_id(out.run_id) or out.run_id

    def history(self, out, key: str) -> list[tuple[int, float]]:
        """A metric's (step, value) series: from the result when this sweep ran the job, else from
        the run that computed it."""
        r = out.result or {}
        if key == "train_loss" and r.get("train_loss_curve"):
            return [(int(s), float(v)) for s, v in r["train_loss_curve"]]
        if key == "chunk_val_bpb" and r.get("chunk_bpb"):
            return list(enumerate(map(float, r["chunk_bpb"])))
        if out.state != "reused" or not out.run_id:
            return []
        try:
            return self.t.metric_history(out.run_id, key)
        except Exception as e:  # noqa: BLE001 - a plot without one curve beats no summary
            log.warning("no %s history for run %s: %s", key, out.run_id, str(e).splitlines()[0])
            return []

    def best_record(self) -> dict | None:
        """The best imported record in the store (orchestrator.tracking.leaderboard)."""
        from orchestrator.tracking.leaderboard import best_record

        if not self._reachable():  # an outage: the summary goes on without the gap to a record
            return None
        return best_record(self.t.tracking_uri)

    def log_sweep_summary(self, metrics: dict, tags: dict, description: str, files_dir) -> None:
        h = self.sweep
        h.log_metrics(metrics)
        if description:
            tags = {**tags, "mlflow.note.content": description}  # the run's description in the UI
        h.set_tags(tags)
        h.log_artifact(files_dir)
        from orchestrator.tracking.links import experiment_tags

        def describe(*_delivered) -> None:
            try:  # the description; the kind and the saved view that make the printed link open the runs
                self.t.set_experiment_tags({**experiment_tags(),
                                            **({"mlflow.note.content": description} if description else {})})
            except Exception as e:  # noqa: BLE001
                log.warning("experiment description not set: %s", str(e).splitlines()[0])

        # a synchronous call: it would wait for the writer to deliver every run first, so it
        # runs once the tracker closes and results are out without that wait (issue 21)
        if hasattr(self.t, "after_close"):
            self.t.after_close(describe)
        else:
            describe()

    def abandon_sweep(self) -> None:
        """The sweep's parent run belongs to the driver that took our lease over: never end it
        (Tracker.close would otherwise mark it FINISHED under the new driver)."""
        if self.sweep is not None and not self.sweep.finished:
            self.sweep.finished = "ABANDONED"  # RunHandle.finish and Tracker.close skip it

    def end_sweep(self, report) -> None:
        if self.sweep is not None and not self.sweep.finished and report.status != "KILLED":
            from orchestrator.tracking.summary import summarize

            try:  # once, at sweep end; a summary failure never fails the sweep
                summarize(report, self, self.spool / f"sweep-{self.sweep.key[:8]}")
            except Exception:  # noqa: BLE001
                log.exception("sweep summary not written")
        if self.sweep is not None and not self.sweep.finished:
            self.sweep.finish(report.status if report.status in ("FINISHED", "FAILED", "KILLED") else "FINISHED")
