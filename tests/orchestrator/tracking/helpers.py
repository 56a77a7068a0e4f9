"""Shared bits of the tracking tests."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from mlflow.tracking import MlflowClient

__all__ = ["Job", "find_finished", "new_identity", "runs_of"]


@dataclass(frozen=True)
class Job:
    """A job as the Tracker reads it (duck-typed: kind, identity, name, config, deps, seed,
    params), with any config: the tracker's tests are about runs, not job kinds (the plan's
    typed jobs, workers.contract, have the same attributes)."""
    kind: str
    identity: str
    name: str
    config: dict[str, Any] = field(default_factory=dict)
    deps: tuple[str, ...] = ()
    seed: int = 0
    params: dict[str, str] = field(default_factory=dict)


def new_identity() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex chars, like a sha256


def runs_of(uri: str, experiment: str, filter_string: str = "") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    return client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=1000)


def find_finished(tracker, identity: str):
    """The driver's own lookup of a finished job (orchestrator.run.track.TrackingAdapter:
    the run's id, its metrics as `result`, its RunRecord as `record`), or None."""
    from types import SimpleNamespace

    from orchestrator.run.track import TrackingAdapter

    return TrackingAdapter(tracker).find_finished(SimpleNamespace(identity=identity))
