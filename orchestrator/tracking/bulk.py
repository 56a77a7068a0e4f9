"""Many journaled runs into a SQL store in one transaction (issue 21).

MLflow 3.17 has no bulk run creation: through MlflowClient a mix job's run costs create_run,
log_batch and set_terminated, three transactions (31 + 78 + 24 ms on SQLite on a loaded 2-core
box), so a 1,000-config grid took minutes to land. On a SQL store the writer hands this module
a segment of consecutive journaled ops (creates, logs, finishes) and it writes them in one
transaction of the SqlAlchemyStore's own session, with MLflow's own table models, the rows the
API would have written: a run as `SqlAlchemyStore.create_run` makes it (uuid4 hex id, artifact
URI under the experiment's location, user from `mlflow.user`, `mlflow.runName` tag), params as
`_log_params` (a changed value is refused), metrics and latest_metrics as `_log_metrics`
(duplicates dropped, NaN / inf sanitized, latest by (step, timestamp, value)), tags as
`_set_tags` (overwrite), the end as `update_run_info`. Values pass MLflow's own validators first.

Anything this module does not do exactly as the API would (an HTTP store, a replayed op, an
artifact, a reused sweep run, a changed param, a `mlflow.runName` set later, a value the
validators would cut or refuse, a run not active, any SQL error) is `Unsupported` or raises
before the commit: the transaction rolls back and the writer sends those ops one call at a time
as before. Nothing is acknowledged in the journal before the commit, so a crash mid-transaction
loses nothing (the ops are replayed, with the `golf.run_key` lookup that keeps a run from being
created twice).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

__all__ = ["MAX_OPS", "BulkRun", "Unsupported", "plan_segment", "sql_store", "write"]

MAX_OPS = 5000  # ops in one transaction: a long transaction holds SQLite's write lock
_IN = 500  # ids per `IN (...)` (SQLite's bound-parameter limit is 999 on old builds)


class Unsupported(Exception):
    """Not something the bulk path writes exactly as the API would: send it call by call."""


@dataclass
class BulkRun:
    key: str
    run_id: str
    new: bool  # created in this segment
    experiment_id: str | None = None
    create: dict | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list = field(default_factory=list)  # [key, value, timestamp, step]
    end: tuple[str, int] | None = None  # (status, end_ms)


def sql_store(client):
    """The SqlAlchemyStore behind an MlflowClient, or None (an HTTP or file store)."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = client._tracking_client.store
    except Exception:  # noqa: BLE001 - another MLflow layout: no bulk path
        return None
    return store if isinstance(store, SqlAlchemyStore) else None


def plan_segment(pending: list[dict], known, dead) -> int:
    """How many ops from pending[0] on the bulk path can take: fresh creates (not replayed, not
    a reused sweep run) whose parent exists, and logs and finishes of runs created in the
    segment or `known` (created or verified by this writer). Stops at the first other op."""
    new: set[str] = set()
    n = 0
    for op in pending[:MAX_OPS]:
        if op.get("_history") or op.get("_tried"):
            break
        kind, key = op.get("op"), op.get("key")
        if kind == "create":
            parent = op.get("parent")
            if op.get("reuse") or key in new or key in known or key in dead or not op.get("name") \
                    or (parent is not None and parent not in new and parent not in known):
                break
            new.add(key)
        elif kind in ("log", "finish"):
            if key not in new and key not in known:
                break
            if kind == "log" and "mlflow.runName" in op.get("tags", {}):
                break  # MLflow renames the run (update_run_info): left to the API
        else:
            break
        n += 1
    return n


def _validated(metrics: list, params: dict, tags: dict, create_tags: dict) -> None:
    """MLflow's own checks of what log_batch would send; a value they would cut is Unsupported."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_batch_log_data

    ps = [Param(k, v) for k, v in params.items()]
    ts = [RunTag(k, v) for k, v in {**create_tags, **tags}.items()]
    try:
        _, ps2, ts2 = _validate_batch_log_data([Metric(k, v, t, s) for k, v, t, s in metrics], ps, ts)
    except MlflowException as e:
        raise Unsupported(str(e).splitlines()[0][:200]) from e
    if [(p.key, p.value) for p in ps2] != [(p.key, p.value) for p in ps] or \
            [(t.key, t.value) for t in ts2] != [(t.key, t.value) for t in ts]:
        raise Unsupported("a value MLflow would cut")


def _chunks(ids: list) -> list:
    return [ids[i:i + _IN] for i in range(0, len(ids), _IN)]


def write(store, runs: list[BulkRun], artifact_locations: dict[str, str]) -> None:
    """Write `runs` in one transaction of `store` (a SqlAlchemyStore), or raise with nothing
    written. `artifact_locations`: experiment id -> its artifact location (get_experiment's)."""
    from mlflow.entities import RunStatus, SourceType
    from mlflow.entities.lifecycle_stage import LifecycleStage
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME, MLFLOW_USER
    from mlflow.utils.uri import append_to_uri_path
    from sqlalchemy import insert

    for r in runs:
        _validated(r.metrics, r.params, r.tags, r.create["tags"] if r.create else {})
    old = [r for r in runs if not r.new]
    old_ids = [r.run_id for r in old]
    with store.ManagedSessionMaker(read_only=False) as session:
        # what the store holds for runs made before this segment (MLflow reads the same per call)
        db_runs, db_params, db_tags, db_latest = {}, {}, {}, {}
        for ids in _chunks(old_ids):
            for row in session.query(SqlRun).filter(SqlRun.run_uuid.in_(ids)):
                db_runs[row.run_uuid] = row
            for row in session.query(SqlParam).filter(SqlParam.run_uuid.in_(ids)):
                db_params.setdefault(row.run_uuid, {})[row.key] = row.value
            for row in session.query(SqlTag).filter(SqlTag.run_uuid.in_(ids)):
                db_tags.setdefault(row.run_uuid, {})[row.key] = row
            for row in session.query(SqlLatestMetric).filter(SqlLatestMetric.run_uuid.in_(ids)):
                db_latest.setdefault(row.run_uuid, {})[row.key] = row
        # a metric the store already holds (same key, stamp, step and value: its primary key) is
        # skipped, as _log_metrics does; else the whole segment failed on a UNIQUE constraint and
        # went call by call (a job's gpu_seconds, logged when charged and again with its result
        # in the same millisecond, cost a 1,000-run sweep 20 s this way)
        db_metrics: set = set()
        since = min((m[2] for r in old for m in r.metrics), default=None)
        for ids in (_chunks([r.run_id for r in old if r.metrics]) if since is not None else []):
            q = session.query(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.timestamp, SqlMetric.step,
                              SqlMetric.value, SqlMetric.is_nan)
            for row in q.filter(SqlMetric.run_uuid.in_(ids), SqlMetric.timestamp >= int(since)):
                db_metrics.add(tuple(row))
        run_rows, tag_rows, param_rows, metric_rows, latest_rows = [], [], [], [], []
        for r in runs:
            if r.new:
                c = r.create
                tags = dict(c["tags"])
                name = c["name"]
                if tags.get(MLFLOW_RUN_NAME, name) != name:
                    raise Unsupported("run name and mlflow.runName differ")  # create_run refuses it
                tags.setdefault(MLFLOW_RUN_NAME, name)
                tags.update(r.tags)
                status, end = r.end if r.end else ("RUNNING", None)
                run_rows.append(dict(
                    run_uuid=r.run_id, name=name, experiment_id=r.experiment_id,
                    artifact_uri=append_to_uri_path(artifact_locations[r.experiment_id], r.run_id, "artifacts"),
                    source_type=SourceType.to_string(SourceType.UNKNOWN), source_name="", entry_point_name="",
                    user_id=c["tags"].get(MLFLOW_USER, "unknown"),
                    status=RunStatus.to_string(RunStatus.from_string(status)),
                    start_time=c["start_ms"], end_time=end, deleted_time=None, source_version="",
                    lifecycle_stage=LifecycleStage.ACTIVE))
                tag_rows += [dict(run_uuid=r.run_id, key=k, value=v) for k, v in tags.items()]
                param_rows += [dict(run_uuid=r.run_id, key=k, value=v) for k, v in r.params.items()]
                latest: dict = {}
            else:
                row = db_runs.get(r.run_id)
                if row is None or row.lifecycle_stage != LifecycleStage.ACTIVE:
                    raise Unsupported(f"run {r.run_id} is not an active run of the store")
                have = db_params.get(r.run_id, {})
                for k, v in r.params.items():
                    if k in have and have[k] != v:
                        raise Unsupported(f"param {k} changed")  # log_batch refuses it: the API says so
                    if k not in have:
                        param_rows.append(dict(run_uuid=r.run_id, key=k, value=v))
                current = db_tags.get(r.run_id, {})
                for k, v in r.tags.items():
                    if k in current:
                        current[k].value = v  # an UPDATE, as _set_tags
                    else:
                        tag_rows.append(dict(run_uuid=r.run_id, key=k, value=v))
                if r.end:
                    row.status = RunStatus.to_string(RunStatus.from_string(r.end[0]))
                    row.end_time = r.end[1]
                latest = db_latest.get(r.run_id, {})
            seen = set()
            fresh: dict = {}
            for k, v, ts, step in r.metrics:
                is_nan, value = store.sanitize_metric_value(float(v))
                ident = (k, ts, step, value, is_nan)
                if ident in seen or (r.run_id, k, ts, step, value, is_nan) in db_metrics:
                    continue  # the same metric twice: MLflow keeps one
                seen.add(ident)
                metric_rows.append(dict(run_uuid=r.run_id, key=k, value=value, timestamp=ts, step=step,
                                        is_nan=is_nan))
                # latest_metrics: the greatest (step, timestamp, value), as _update_latest_metrics_if_necessary
                cur = latest.get(k) or fresh.get(k)
                if cur is None:
                    fresh[k] = dict(run_uuid=r.run_id, key=k, value=value, timestamp=ts, step=step, is_nan=is_nan)
                elif isinstance(cur, dict):
                    if (step, ts, value) > (cur["step"], cur["timestamp"], cur["value"]):
                        cur.update(value=value, timestamp=ts, step=step, is_nan=is_nan)
                elif (step, ts, value) > (cur.step, cur.timestamp, cur.value):
                    cur.value, cur.timestamp, cur.step, cur.is_nan = value, ts, step, is_nan
            latest_rows += fresh.values()
        # executemany through the models' tables: parents first (foreign keys are on)
        for model, rows in ((SqlRun, run_rows), (SqlTag, tag_rows), (SqlParam, param_rows),
                            (SqlMetric, metric_rows), (SqlLatestMetric, latest_rows)):
            if rows:
                session.execute(insert(model), rows)


def new_run_id() -> str:
    return uuid.uuid4().hex  # what SqlAlchemyStore.create_run gives a run
