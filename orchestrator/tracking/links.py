"""The one link golf prints after a sweep or an import: the experiment's runs page, sorted by
val_bpb, best first, on the MLflow server that shows it.

What MLflow 3.17's UI takes (read from its server JS bundle, mlflow/server/js/build): the runs
view reads `searchFilter`, `orderByKey`, `orderByAsc`, `startTime`, `lifecycleFilter`,
`modelVersionFilter`, `datasetsFilter` from the URL; which columns show is browser-local state
(`selectedColumns`), not a URL parameter, but picking a sort key adds its column. An experiment
whose `mlflow.experimentKind` tag is unset may open on the GenAI overview ("Traces 0"); tagged
`custom_model_development` it opens on its runs. docs/mlflow-link.md shows the result.
"""
from __future__ import annotations

from urllib.parse import quote

__all__ = ["EXPERIMENT_KIND", "UI_DEFAULT", "look_with", "runs_url"]

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
UI_DEFAULT = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
SORT_KEY = "metrics.`val_bpb`"


def runs_url(base: str, experiment_id: str, metric: str = "val_bpb") -> str:
    """The runs page of an experiment, sorted by `metric` ascending (legal scores only: golf
    never logs a score that does not count under val_bpb)."""
    key = quote(f"metrics.`{metric}`", safe="")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?orderByKey={key}&orderByAsc=true"


def look_with(uri: str, experiment_id: str | None) -> str:
    """What to tell the user: the URL for an http(s) store; for a local store the `mlflow ui`
    command and the URL it will serve."""
    from orchestrator.tracking.client import redact

    shown = redact(uri)
    if uri.startswith(("http://", "https://")):
        return runs_url(shown, experiment_id) if experiment_id else shown
    cmd = f"mlflow ui --backend-store-uri {shown}"
    return f"{cmd}, then open {runs_url(UI_DEFAULT, experiment_id)}" if experiment_id else cmd
