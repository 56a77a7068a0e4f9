"""MLflow client access: the tracking URI, error classes, and the synchronous queries
(resume lookups, artifact download) that the driver and `golf plan` make.

Retries belong to us, not to MLflow's HTTP layer: by default MLflow retries a refused
connection 7 times with exponential backoff (minutes), which would stall the writer thread's
own backoff and make `golf plan` hang on a dead server. Unless the user set them, we set
MLFLOW_HTTP_REQUEST_MAX_RETRIES=0 and MLFLOW_HTTP_REQUEST_TIMEOUT=30 for this process (and
MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT, which saves a call per finished run).

Every network call has a deadline (issue 20: a server that accepts TCP and never answers made
golf wait forever): GOLF_NET_TIMEOUT_S (default 30 s) is MLflow's connect and read timeout, the
Ray job client's (orchestrator.run.raycluster), and the whole of one `_query`, retries included.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar
from golf_core.errors import UserError

__all__ = [
    "DEFAULT_TRACKING_URI", "RunRecord", "TrackingStoreError", "TrackingUnavailable",
    "all_experiment_ids", "check_store", "download_artifacts", "finished_runs_everywhere",
    "is_transient", "make_client", "metric_history", "net_timeout_s", "redact", "resolve_tracking_uri", "tag_filter",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
NET_TIMEOUT_S = 30.0


def net_timeout_s() -> float:
    """The deadline of one network call, connect and read (GOLF_NET_TIMEOUT_S, default 30 s)."""
    try:
        v = float(os.environ.get("GOLF_NET_TIMEOUT_S", NET_TIMEOUT_S))
    except ValueError:
        return NET_TIMEOUT_S
    return v if 0 < v < 1e6 else NET_TIMEOUT_S
T = TypeVar("T")


class TrackingUnavailable(ConnectionError):
    """The MLflow tracking server (or store) could not be reached; the message names the URI."""


class TrackingStoreError(UserError):
    """The tracking store is a file that is not what the URI says (e.g. mlflow.db holding
    garbage): retrying cannot help, so it is a user error, one line naming the file."""


# userinfo of any URL (`http://user:pass@host`, `postgresql://u:p@db`): never printed or journaled
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@")


def redact(text: object) -> str:
    """`text` with the credentials of every URL in it replaced by ***."""
    return _USERINFO.sub(r"\1***@", str(text))


class RedactFilter(logging.Filter):
    """Scrubs URL credentials from every record of the logger it is attached to (the tracking
    package's: MLflow's own error texts name the URL it called, credentials and all)."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


logging.getLogger("golf.tracking").addFilter(RedactFilter())

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _local_path(uri: str) -> tuple[str, Path] | None:
    """("sqlite"|"file", path) for a local store URI, else None."""
    if uri.startswith("sqlite:///"):
        return "sqlite", Path(uri[len("sqlite:///"):])
    if uri.startswith("file://"):
        return "file", Path(uri[len("file://"):])
    return None


def check_store(uri: str) -> None:
    """Refuse, before MLflow touches it, a local store that cannot be one: a sqlite URI naming
    a directory or a file that is not an SQLite database, a file store naming a regular file.
    (MLflow would retry a "file is not a database" forever: it looks like a locked store.)"""
    local = _local_path(uri)
    if local is None:
        return
    kind, path = local
    if kind == "sqlite":
        if path.is_dir():
            raise TrackingStoreError(f"{path}: is a directory, not an SQLite database "
                                     f"(tracking URI {redact(uri)})")
        if not path.exists():
            return
        try:
            with open(path, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise TrackingStoreError(f"{path}: unreadable tracking database ({e.strerror})") from None
        if head and head != _SQLITE_MAGIC:  # an empty file is a new database to SQLite
            raise TrackingStoreError(f"{path}: not an SQLite database (tracking URI {redact(uri)}); "
                                     "move it aside or pass another --tracking-uri")
    elif path.exists() and not path.is_dir():
        raise TrackingStoreError(f"{path}: is a file, not an MLflow file store directory "
                                 f"(tracking URI {redact(uri)})")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Explicit URI, else $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _configure_http() -> None:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(net_timeout_s()))))  # MLflow: an int
    # set_terminated otherwise makes one more get_run call to print "View run ..." to stdout
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def make_client(uri: str):
    _configure_http()
    # MLflow logs each failed SQL statement with its traceback (a store deleted mid-run printed
    # 104 of them); golf's writer says what happened in one line instead
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: no connection, timeouts, 5xx, 429, a locked SQLite file.
    False for 4xx answers (bad key, changed param value, unknown run): retrying cannot help."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        status = exc.get_http_status_code()
        return not (400 <= status < 500) or status in (408, 429)
    if isinstance(exc, json.JSONDecodeError):
        return True  # a proxy's HTML error page in front of a restarting server
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError, TypeError,
                        ValueError)):
        return False
    return True  # requests/urllib3/OSError/sqlalchemy: network or store trouble


_SAFE_VALUE = re.compile(r"^[\w.\-:/ ]*$")


def tag_filter(key: str, value: str) -> str:
    """`tags.`golf.identity` = 'abc'` (MLflow's search grammar: backticks for dotted keys)."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"tag value for search must be [A-Za-z0-9_.-:/ ], got {value!r}")
    return f"tags.`{key}` = '{value}'"


def _query(uri: str, what: str, fn: Callable[[], T], tries: int = 3) -> T:
    """Run a read query with a short retry; an unreachable store becomes TrackingUnavailable.
    The retries stay inside one deadline (net_timeout_s): a store that timed out once is not
    waited on again."""
    delay = 0.5
    deadline = time.monotonic() + net_timeout_s()
    for attempt in range(tries):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified below
            if not is_transient(e):
                raise
            if attempt == tries - 1 or time.monotonic() + delay >= deadline:
                raise TrackingUnavailable(redact(
                    f"MLflow tracking at {uri} unreachable while {what}: {e}".splitlines()[0]
                )) from e
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class RunRecord:
    """What the driver needs of an earlier run: its id, status and results."""

    run_id: str
    status: str
    artifact_uri: str
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    experiment_id: str = ""
    start_time: int = 0

    @property
    def identity(self) -> str | None:
        return self.tags.get("golf.identity")

    @classmethod
    def from_run(cls, run) -> "RunRecord":
        return cls(run.info.run_id, run.info.status, run.info.artifact_uri,
                   dict(run.data.tags), dict(run.data.metrics), dict(run.data.params),
                   run.info.experiment_id, int(run.info.start_time or 0))

    @property
    def computed(self) -> bool:
        """A run that computed its result (not a `golf.reused_from` copy): only these are the record."""
        return "golf.reused_from" not in self.tags


def search_all(client, experiment_id: str | list[str], filter_string: str, order_by=None) -> list:
    """Every active run matching the filter, across pages (one experiment id or a list)."""
    runs, token = [], None
    ids = [experiment_id] if isinstance(experiment_id, str) else list(experiment_id)
    if not ids:
        return []
    while True:
        page = client.search_runs(ids, filter_string=filter_string,
                                  max_results=1000, order_by=order_by, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _sqlite_missing(uri: str) -> bool:
    if not uri.startswith("sqlite:///"):
        return False
    return not Path(uri[len("sqlite:///"):]).exists()


def study_runs(tracking_uri: str | None, experiment_name: str, study: str) -> list[RunRecord]:
    """The FINISHED runs of an optuna env study (tag `golf.study`) in `experiment_name`, oldest
    first: the trials a resumed sweep tells its study before asking for more (and what `golf
    plan` counts as done). Raises TrackingUnavailable when the store cannot be reached."""
    uri = resolve_tracking_uri(tracking_uri)
    check_store(uri)
    if _sqlite_missing(uri):
        return []
    client = make_client(uri)
    filt = f"{tag_filter('golf.study', study)} and attributes.status = 'FINISHED'"

    def query() -> list[RunRecord]:
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None or exp.lifecycle_stage != "active":
            return []
        runs = search_all(client, exp.experiment_id, filt, order_by=["attributes.start_time ASC"])
        return [RunRecord.from_run(r) for r in runs]

    return _query(uri, f"listing the trials of study {study[:12]}", query)


def all_experiment_ids(client) -> list[str]:
    """Ids of every active experiment in the store."""
    from mlflow.entities import ViewType

    ids, token = [], None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        ids += [e.experiment_id for e in page]
        token = page.token
        if not token:
            return ids


def finished_runs_everywhere(tracking_uri: str | None) -> dict[str, list[RunRecord]]:
    """identity -> its FINISHED runs in every active experiment of the store, oldest first.
    Cross-experiment reuse (a copy of a spec under another name reruns nothing) starts here."""
    uri = resolve_tracking_uri(tracking_uri)
    if _sqlite_missing(uri):
        return {}
    client = make_client(uri)

    def query() -> dict[str, list[RunRecord]]:
        out: dict[str, list[RunRecord]] = {}
        runs = search_all(client, all_experiment_ids(client), "attributes.status = 'FINISHED'",
                          order_by=["attributes.start_time ASC"])
        for r in runs:
            ident = r.data.tags.get("golf.identity")
            if ident:
                out.setdefault(ident, []).append(RunRecord.from_run(r))
        return out

    return _query(uri, "listing finished runs of every experiment", query)


def metric_history(tracking_uri: str | None, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of a metric of a run, by step (the last value logged at a step wins)."""
    uri = resolve_tracking_uri(tracking_uri)
    client = make_client(uri)
    hist = _query(uri, f"reading {key} of run {run_id}", lambda: client.get_metric_history(run_id, key))
    by = {}
    for m in sorted(hist, key=lambda m: (m.step, m.timestamp)):
        by[int(m.step)] = float(m.value)
    return sorted(by.items())


def download_artifacts(tracking_uri: str | None, run_id: str, path: str,
                       dst: str | os.PathLike) -> Path:
    """Fetch artifact `path` (a file or folder) of run `run_id` into `dst`; returns the local path.
    Works from any node: artifacts come through the tracking server (--serve-artifacts)."""
    uri = resolve_tracking_uri(tracking_uri)
    client = make_client(uri)
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    local = _query(uri, f"downloading {path!r} of run {run_id}",
                   lambda: client.download_artifacts(run_id, path, str(dst)))
    return Path(local)
