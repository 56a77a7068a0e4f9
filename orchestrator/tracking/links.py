"""The one link golf prints after a sweep or an import: the experiment's runs page, sorted by
val_bpb, best first, on the MLflow server that shows it.

What MLflow 3.17's UI takes (read from its server JS bundle, mlflow/server/js/build): the runs
view reads `searchFilter`, `orderByKey`, `orderByAsc`, `startTime`, `lifecycleFilter`,
`modelVersionFilter`, `datasetsFilter` from the URL; which columns show is browser-local state
(`selectedColumns`), not a URL parameter. But a saved view is: an experiment tag
`mlflow.sharedViewState.<key>` holding `{"name", "createdAt", "state"}` (state: a JSON string of
the runs view's search facets and UI state, `selectedColumns` included), opened by the URL
parameter `viewStateShareKey=<key>`. golf writes one (`golf-legal-first`: sorted by val_bpb,
columns val_bpb, val_bpb_noncompliant, seed, compliance and its reason) and links to it. An
experiment whose `mlflow.experimentKind` tag is unset may open on the GenAI overview
("Traces 0"); tagged `custom_model_development` it opens on its runs. docs/mlflow-link.md shows
the result and how to check it.
"""
from __future__ import annotations

import json
import time

__all__ = ["COLUMNS", "EXPERIMENT_KIND", "UI_DEFAULT", "VIEW_KEY", "experiment_tags", "look_with", "runs_url"]

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
UI_DEFAULT = "http://127.0.0.1:5000"  # where `mlflow ui` listens unless told otherwise
VIEW_KEY = "golf-legal-first"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
COLUMNS = ("metrics.`val_bpb`", "metrics.`val_bpb_noncompliant`", "tags.`golf.seed`", "tags.`golf.compliant`",
           "tags.`golf.reason`")


def _view_state() -> str:
    return json.dumps({"orderByKey": "metrics.`val_bpb`", "orderByAsc": True, "selectedColumns": list(COLUMNS)},
                      sort_keys=True)


def experiment_tags(existing: dict[str, str] | None = None) -> dict[str, str]:
    """The experiment tags that make the link open the right view: the kind, and golf's saved
    view (left as it is when it already holds the same state, so setting it again changes nothing)."""
    tags = dict(EXPERIMENT_KIND)
    old = (existing or {}).get(VIEW_TAG)
    try:
        same = old is not None and json.loads(old).get("state") == _view_state()
    except (ValueError, AttributeError):
        same = False
    if not same:
        tags[VIEW_TAG] = json.dumps({"name": "golf: legal first (sorted by val_bpb)",
                                     "createdAt": int(time.time() * 1000), "state": _view_state()})
    return tags


def runs_url(base: str, experiment_id: str) -> str:
    """The runs page of an experiment in golf's saved view: sorted by val_bpb ascending (legal
    scores only: golf never logs a score that does not count under val_bpb), with the seed and
    compliance columns. Only the view key goes in the URL: with `orderByKey` beside it a fresh
    browser applied the sort but not the view's columns (seen in headless Chromium, MLflow 3.17.2)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def look_with(uri: str, experiment_id: str | None) -> str:
    """What to tell the user: the URL for an http(s) store; for a local store the `mlflow ui`
    command and the URL it will serve."""
    from orchestrator.tracking.client import redact

    shown = redact(uri)
    if uri.startswith(("http://", "https://")):
        return runs_url(shown, experiment_id) if experiment_id else shown
    cmd = f"mlflow ui --backend-store-uri {shown}"
    return f"{cmd}, then open {runs_url(UI_DEFAULT, experiment_id)}" if experiment_id else cmd
