"""Shared bits of the tracking tests."""
from __future__ import annotations

import uuid

from mlflow.tracking import MlflowClient

from orchestrator.plan import Job  # the driver's real job record

__all__ = ["Job", "new_identity", "runs_of"]


def new_identity() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex  # 64 hex chars, like a sha256


def runs_of(uri: str, experiment: str, filter_string: str = "") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} missing"
    return client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=1000)
