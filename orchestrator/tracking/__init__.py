"""orchestrator.tracking: everything MLflow (layout in docs/ARCHITECTURE.md).

    tracker = Tracker(None, spec.name, journal_dir)      # URI: $MLFLOW_TRACKING_URI or sqlite
    sweep = tracker.start_sweep(plan.sweep_identity, params)
    run = tracker.start_job(job, attempt=1)
    run.log_metrics({"train_loss": 3.2}, step=10); run.log_result(result)
    run.log_artifact(out_dir / "model.ptz"); run.finish("FINISHED")
    tracker.close()

Modules: tracker (Tracker, RunHandle), writer (background batching/retry thread), bulk (many runs
in one SQL transaction), journal
(on-disk write-ahead log, crash replay), client (queries, errors, URI), params (flat keys,
MLflow limits, system info).
"""
from .client import (
    DEFAULT_TRACKING_URI, RunRecord, TrackingStoreError, TrackingUnavailable, check_store,
    download_artifacts, redact, resolve_tracking_uri, study_runs,
)
from .index import finished_identities  # identities and status only, not whole runs (issue 21)
from .params import flatten_params, system_tags
from .tracker import RESULT_METRICS, RunHandle, Tracker

__all__ = [
    "DEFAULT_TRACKING_URI", "RESULT_METRICS", "RunHandle", "RunRecord", "Tracker",
    "TrackingStoreError", "TrackingUnavailable", "check_store", "download_artifacts",
    "finished_identities", "flatten_params", "redact", "resolve_tracking_uri", "study_runs", "system_tags",
]
