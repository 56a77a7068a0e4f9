"""Which identities have a FINISHED run: read as identities and status, not whole runs (issue 21).

Resume and `golf plan` only need to know, per job identity, which FINISHED runs computed it.
MlflowClient.search_runs returns every run with all its params, metrics and tags, so a lookup
that way costs time and memory in proportion to the whole store (a rerun of 1,000 jobs beside
5,000 unrelated runs read them all). On a SQL store (sqlite, postgresql, mysql, mssql: what
`golf run` uses locally and what an `mlflow server` usually sits on) the identity index is one
query over the tags and runs tables; only the runs of the plan's own identities are then read
in full, by run id. On any other store (an http server, a file store) it falls back to the
search, filtered to the identities asked for.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Iterable

from .client import (
    RunRecord, _query, _sqlite_missing, all_experiment_ids, check_store, finished_runs_everywhere, make_client,
    resolve_tracking_uri, search_all,
)

__all__ = ["IndexEntry", "finished_identities", "finished_runs", "identity_index", "is_sql_store"]

SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_BY_ID = 100  # run ids per `attributes.run_id IN (...)` search
_RUN_ID = re.compile(r"^[0-9a-fA-F-]{1,64}$")  # what goes between quotes in the search filter
_engines: dict = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class IndexEntry:
    run_id: str
    experiment_id: str
    start_time: int
    computed: bool  # not a golf.reused_from copy


def is_sql_store(uri: str) -> bool:
    return uri.split(":", 1)[0].split("+", 1)[0].lower() in SQL_SCHEMES


def _engine(uri: str):
    import sqlalchemy

    with _lock:
        if uri not in _engines:
            _engines[uri] = sqlalchemy.create_engine(uri)
        return _engines[uri]


_INDEX_SQL = """
SELECT r.run_uuid, r.experiment_id, r.start_time, t.value,
       (SELECT COUNT(*) FROM tags c WHERE c.run_uuid = r.run_uuid AND c.key = 'golf.reused_from')
FROM runs r
JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'golf.identity'
JOIN experiments e ON e.experiment_id = r.experiment_id
WHERE r.status = 'FINISHED' AND r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active' {extra}
ORDER BY r.start_time, r.run_uuid
"""


def identity_index(tracking_uri: str | None, experiment_name: str | None = None) -> dict[str, list[IndexEntry]]:
    """identity -> its FINISHED runs (oldest first), in one experiment or every active one."""
    uri = resolve_tracking_uri(tracking_uri)
    check_store(uri)
    if _sqlite_missing(uri):
        return {}
    if not is_sql_store(uri):
        return {ident: [IndexEntry(r.run_id, r.experiment_id, r.start_time, r.computed) for r in recs]
                for ident, recs in _search_fallback(uri, experiment_name).items()}

    def query() -> dict[str, list[IndexEntry]]:
        import sqlalchemy

        extra, args = ("AND e.name = :name", {"name": experiment_name}) if experiment_name is not None else ("", {})
        out: dict[str, list[IndexEntry]] = {}
        with _engine(uri).connect() as conn:
            for run_id, exp_id, start, ident, copies in conn.execute(sqlalchemy.text(_INDEX_SQL.format(extra=extra)),
                                                                      args):
                out.setdefault(ident, []).append(IndexEntry(run_id, str(exp_id), int(start or 0), not copies))
        return out

    return _query(uri, "listing finished identities", query)


def _search_fallback(uri: str, experiment_name: str | None) -> dict[str, list[RunRecord]]:
    if experiment_name is None:
        return finished_runs_everywhere(uri)
    client = make_client(uri)

    def query() -> dict[str, list[RunRecord]]:
        exp = client.get_experiment_by_name(experiment_name)
        if exp is None or exp.lifecycle_stage != "active":
            return {}
        out: dict[str, list[RunRecord]] = {}
        for r in search_all(client, exp.experiment_id, "attributes.status = 'FINISHED'",
                            order_by=["attributes.start_time ASC"]):
            ident = r.data.tags.get("golf.identity")
            if ident:
                out.setdefault(ident, []).append(RunRecord.from_run(r))
        return out

    return _query(uri, f"listing finished runs of {experiment_name!r}", query)


def finished_identities(tracking_uri: str | None, experiment_name: str) -> set[str]:
    """Identities with a FINISHED run in `experiment_name` (`golf plan`): no run is read whole."""
    return set(identity_index(tracking_uri, experiment_name))


def finished_runs(tracking_uri: str | None, identities: Iterable[str]) -> dict[str, list[RunRecord]]:
    """identity -> its FINISHED runs in every active experiment, oldest first, for the given
    identities only; those runs (and no others) are read whole, by run id."""
    uri = resolve_tracking_uri(tracking_uri)
    wanted = set(identities)
    if not wanted or _sqlite_missing(uri):
        return {}
    if not is_sql_store(uri):
        return {k: v for k, v in finished_runs_everywhere(uri).items() if k in wanted}
    index = {k: v for k, v in identity_index(uri).items() if k in wanted}
    ids = [e.run_id for entries in index.values() for e in entries if _RUN_ID.match(e.run_id)]
    if not ids:
        return {}
    client = make_client(uri)

    def query() -> dict[str, RunRecord]:
        exps = sorted({e.experiment_id for entries in index.values() for e in entries}) or all_experiment_ids(client)
        got: dict[str, RunRecord] = {}
        for i in range(0, len(ids), _BY_ID):
            quoted = ", ".join(f"'{r}'" for r in ids[i:i + _BY_ID])  # run ids are hex: nothing to escape
            for r in search_all(client, exps, f"attributes.run_id IN ({quoted})"):
                got[r.info.run_id] = RunRecord.from_run(r)
        return got

    got = _query(uri, "reading the finished runs of this plan", query)
    out: dict[str, list[RunRecord]] = {}
    for ident, entries in index.items():
        recs = [got[e.run_id] for e in entries if e.run_id in got and got[e.run_id].status == "FINISHED"]
        if recs:
            out[ident] = recs
    return out
