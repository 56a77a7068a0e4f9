"""RunHandle: one MLflow run as the driver writes it. Every call is journaled and queued for the
tracker's writer thread (orchestrator.tracking.tracker), so it returns at once; `batched()`
groups a job's metrics, params and tags into one journaled op."""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .params import clean_metrics, clean_params, clean_tags

if TYPE_CHECKING:
    from .tracker import Tracker

__all__ = ["RunHandle", "STATUSES"]

log = logging.getLogger("golf.tracking")

STATUSES = ("FINISHED", "FAILED", "KILLED")


def _now_ms() -> int:
    return int(time.time() * 1000)


class RunHandle:
    """One MLflow run as the driver sees it. Methods queue and return; none raises on
    tracking trouble. `run_id` is None until the writer has created the run."""

    def __init__(self, tracker: "Tracker", key: str, kind: str, identity: str | None):
        self._tracker = tracker
        self.key = key
        self.kind = kind
        self.identity = identity
        self.finished: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._tracker._writer.runs.get(self.key)

    def wait_run_id(self, timeout: float | None = 30.0) -> str | None:
        """Block until MLflow gave this run an id (None on timeout or if it never will)."""
        return self._tracker._writer.wait_run_id(self.key, timeout)

    def __repr__(self) -> str:
        return f"RunHandle({self.kind}, run_id={self.run_id}, key={self.key[:8]})"

    @contextlib.contextmanager
    def batched(self):
        """Log calls inside the block become one journaled op at its end (metrics in call order,
        params and tags merged as the writer would): a mix job's ~10 calls cost one journal
        write and one queue hand-off (issue 21)."""
        if self._batch is not None:  # nested: the outer block sends
            yield self
            return
        self._batch = {"metrics": [], "params": {}, "tags": {}}
        try:
            yield self
        finally:
            b, self._batch = self._batch, None
            self._send(b["metrics"], b["params"], b["tags"])

    _batch: dict | None = None

    def _log(self, metrics=(), params=None, tags=None) -> None:
        if self._batch is not None:
            self._batch["metrics"].extend(metrics)
            for k, v in (params or {}).items():
                self._batch["params"].setdefault(k, v)
            self._batch["tags"].update(tags or {})
            return
        self._send(metrics, params, tags)

    def _send(self, metrics=(), params=None, tags=None) -> None:
        op = {"op": "log", "key": self.key}
        if metrics:
            op["metrics"] = list(metrics)
        if params:
            op["params"] = params
        if tags:
            op["tags"] = tags
        if len(op) > 2:
            self._tracker._enqueue(op)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Metrics at `step` (0 when None), stamped now: a replay sends the same stamp, which
        is what lets the store drop the duplicate."""
        ts = _now_ms()
        good = {}
        for k, v in metrics.items():
            try:
                good.update(clean_metrics({k: v}))
            except TypeError as e:
                log.warning("metric not logged: %s", e)
        self._log(metrics=[[k, v, ts, int(step or 0)] for k, v in good.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params; nested dicts become flat dotted keys (`model.num_layers`)."""
        self._log(params=clean_params(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._log(tags=clean_tags(tags))

    def set_validity(self, valid: bool, reason: str | None = None) -> None:
        tags = {"golf.valid": "true" if valid else "false"}
        if not valid:
            tags["golf.reason"] = reason or "unspecified"
        self.set_tags(tags)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """A file, or a folder's contents, uploaded under `artifact_path`. The file must stay
        where it is until the upload (the job's out_dir does)."""
        self._tracker._enqueue({"op": "artifact", "key": self.key,
                                "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    log_artifacts = log_artifact

    def log_result(self, result: Mapping[str, Any], curve: bool = False) -> None:
        """A golf_core result dict: its numeric entries as metrics (the standard names among
        them), `golf.compliant` from its audit, and with curve=True `train_loss_curve` as
        per-step `train_loss` (leave False when the steps were streamed already)."""
        metrics = {k: v for k, v in result.items()  # the seed is a tag, not a measurement
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"}
        self.log_metrics(metrics)
        tags = {}
        compliance = result.get("compliance")
        if isinstance(compliance, Mapping) and "compliant" in compliance:
            tags["golf.compliant"] = "true" if compliance["compliant"] else "false"
        if result.get("code_version"):
            tags["golf.code_version"] = result["code_version"]
        if tags:
            self.set_tags(tags)
        if curve:
            for step, loss in result.get("train_loss_curve") or ():
                self.log_metrics({"train_loss": loss}, step=int(step))

    def finish(self, status: str = "FINISHED", reason: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"run status must be one of {STATUSES}, got {status!r}")
        if self.finished:
            log.warning("%r finished twice (%s, then %s); keeping %s",
                        self, self.finished, status, self.finished)
            return
        self.finished = status
        op = {"op": "finish", "key": self.key, "status": status, "end_ms": _now_ms(),
              "experiment": self._tracker.experiment_name, "identity": self.identity}
        if reason:  # why it failed, or why it was killed (stale / duplicate / closed)
            key = "golf.killed_reason" if status == "KILLED" else "golf.reason"
            op["tags"] = clean_tags({key: reason})
        self._tracker._enqueue(op)
