"""The background writer: one thread that sends journaled ops to MLflow in seq order.

Callers only append to a queue; this thread drains it, groups consecutive log ops into
MlflowClient.log_batch calls (<= 1000 metrics, <= 100 params, <= 100 tags per call: one HTTP
call costs ~50 ms, so 500 train_loss points must not be 500 calls), and retries with backoff
(0.25 s doubling to 5 s) while the server is down. Nothing here raises into a job: an error
MLflow will never accept (4xx: a changed param value, a file that vanished) is logged and
dropped — for a rejected batch, after retrying its parts one by one so one bad entry loses
nothing else.

Replays are idempotent: metrics carry the timestamp taken when the caller logged them, and the
SQL store drops a metric identical in (key, value, timestamp, step); a param re-logged with the
same value is accepted; tags overwrite; a run create that may have reached the server before
its answer was lost is looked up by its `golf.run_key` tag before creating it again.

On a SQL store, runs go in bulk (bulk.py, issue 21): a segment of fresh creates, logs and
finishes is one transaction, acknowledged only once committed; what the bulk path does not
take, or a transaction that fails, goes call by call as above (`Writer.bulk = False`: always).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

from . import bulk
from .client import _local_path, is_transient, make_client, redact, search_all, tag_filter
from .index import IndexEntry, identity_index, is_sql_store
from .journal import Journal

__all__ = ["Writer"]

log = logging.getLogger("golf.tracking")

MAX_METRICS = 1000  # mlflow.utils.validation: MAX_METRICS_PER_BATCH
MAX_PARAMS_TAGS = 100  # MAX_PARAMS_TAGS_PER_BATCH
MAX_ENTITIES = 1000  # MAX_ENTITIES_PER_BATCH
MAX_WINDOW = 5000  # log ops merged before the journal acknowledges progress
_WARN_EVERY_S = 30.0


class _Retry(Exception):
    """A transient failure: back off and send the same ops again."""


class _Permanent(Exception):
    """MLflow will never accept this call."""


def _chunks(metrics: list, params: list, tags: list):
    first = True
    while first or metrics or params or tags:
        first = False
        cp, params = params[:MAX_PARAMS_TAGS], params[MAX_PARAMS_TAGS:]
        ct, tags = tags[:MAX_PARAMS_TAGS], tags[MAX_PARAMS_TAGS:]
        room = min(MAX_METRICS, MAX_ENTITIES - len(cp) - len(ct))
        cm, metrics = metrics[:room], metrics[room:]
        yield cm, cp, ct


class _Known:
    """Run keys whose run this writer made or verified: the bulk path may write to them."""

    def __init__(self, writer: "Writer"):
        self.w = writer

    def __contains__(self, key) -> bool:
        return key in self.w.runs and key not in self.w.unverified


class Writer(threading.Thread):
    def __init__(self, tracking_uri: str, journal: Journal, linger_s: float = 0.05,
                 max_backoff_s: float = 5.0):
        super().__init__(name="golf-mlflow-writer", daemon=True)
        self.uri = tracking_uri
        self.shown_uri = redact(tracking_uri)  # what log lines say
        self.journal = journal
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.runs: dict[str, str] = {}  # local run key -> MLflow run id
        self.dead: set[str] = set()  # keys whose run could never be created
        self.unverified: set[str] = set()  # keys mapped by an adopted journal, not checked yet
        self.experiment: str | None = None  # the Tracker's: adopted run ids must belong to it
        self.missing: set[str] = set()  # adopted keys whose run the store does not have
        self.recreated: set[str] = set()  # ... and which a replayed create made again
        self.calls: Counter = Counter()  # MLflow client calls made, by method (tests, stats)
        self.failures = 0  # transient failures seen
        self._cond = threading.Condition()
        self._queue: list[dict] = []
        self._pending: list[dict] = []
        self._stopping = False
        self._urgent = 0  # flush() callers waiting: skip the linger
        self._experiments: dict[str, str] = {}
        self._client = None
        self._last_warn = 0.0
        self._gone_warned = False
        self.bulk = True  # on a SQL store, segments of runs in one transaction (bulk.py); False: per call
        self._bulk_skip = 0  # ops left that a failed bulk segment sends call by call
        self._artifact_locations: dict[str, str] = {}

    def _store_gone(self, e: BaseException) -> str | None:
        """Why a local store cannot take calls any more (its file deleted, its disk full), or None."""
        text = str(e.__cause__ or e).lower()
        if "disk is full" in text or "no space left" in text:
            return "is full"
        local = _local_path(self.uri)
        if local is not None and not local[1].exists():
            return "is gone (deleted)"
        if "readonly database" in text:
            return "is read-only (deleted or replaced under us)"
        return None

    # -- caller side -------------------------------------------------------------------------
    def submit(self, op: dict) -> None:
        with self._cond:
            self._queue.append(op)
            self._cond.notify_all()

    def wait_acked(self, seq: int, timeout: float | None) -> bool:
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self.journal.acked >= seq, timeout)
            finally:
                self._urgent -= 1

    # True while the last delivery failed (an outage): callers that would wait on the writer
    # (the sweep summary's run ids, the leaderboard) go on without it instead
    unreachable = False

    def wait_run_id(self, key: str, timeout: float | None) -> str | None:
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(lambda: key in self.runs or key in self.dead, timeout)
                return self.runs.get(key)
            finally:
                self._urgent -= 1

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- writer thread -----------------------------------------------------------------------
    def run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                while not (self._queue or self._pending or self._stopping):
                    self._cond.wait()
                if self._stopping:
                    return  # whatever is left stays in the journal for the next Tracker
                if not self._pending:  # let a burst of calls gather into one batch
                    deadline = time.monotonic() + self.linger_s
                    while (not self._urgent and not self._stopping
                           and len(self._queue) < MAX_METRICS
                           and (left := deadline - time.monotonic()) > 0):
                        self._cond.wait(left)
                self._pending.extend(self._queue)
                self._queue.clear()
            try:
                if self._client is None:
                    self._client = make_client(self.uri)
                self._process()
                self.unreachable = False
                if backoff:
                    log.warning("MLflow at %s reachable again; buffered calls delivered", self.shown_uri)
                backoff = 0.0
            except Exception as e:  # noqa: BLE001 - the writer must survive anything
                self.failures += 1
                self.unreachable = True
                backoff = min(max(2 * backoff, 0.25), self.max_backoff_s)
                now = time.monotonic()
                gone = self._store_gone(e)
                if gone and not self._gone_warned:  # one line for the outage, however long
                    self._gone_warned = True
                    self._last_warn = now
                    log.warning("MLflow store %s %s; every tracking call is kept in %s and replayed into the "
                                "store the next `golf run` finds", self.shown_uri, gone, self.journal.path)
                elif not gone and now - self._last_warn > _WARN_EVERY_S:
                    self._last_warn = now
                    cause = e.__cause__ or e
                    log.warning("MLflow at %s unreachable (%s); %d calls buffered, retrying",
                                self.shown_uri, str(cause).splitlines()[0][:200] if str(cause) else
                                type(cause).__name__, len(self._pending) + len(self._queue))
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, timeout=backoff)

    def _delivered_before(self, op: dict) -> bool:
        """An adopted call MLflow had acknowledged: replayed only into a store that lacks its
        run (a deleted or replaced store), i.e. after its create made the run again."""
        if not op.get("_history"):
            return False
        if op["op"] == "create":
            self._run_id(op["key"])  # verifies an adopted mapping: a run the store lacks is `missing`
            return op["key"] not in self.missing and op["key"] in self.runs
        return op["key"] not in self.recreated

    def _process(self) -> None:
        pending = self._pending
        # on a SQL store, the duplicate checks of this window's finishes read one identity index
        # per experiment (before) and one more (after), not two searches per run (issue 21)
        self._window = {} if is_sql_store(self.uri) else None
        self._window_done: dict[str, set[str]] = {}
        while pending:
            n = 1
            try:
                m = 0 if self._bulk_skip else self._bulk(pending)
                if m:
                    n = m
                elif self._delivered_before(pending[0]):
                    pass
                elif pending[0]["op"] == "log":
                    while n < len(pending) and n < MAX_WINDOW and pending[n]["op"] == "log" \
                            and not pending[n].get("_history"):
                        n += 1
                    self._send_logs(pending[:n])
                else:
                    self._apply(pending[0])
            except _Retry:
                raise
            except Exception as e:  # noqa: BLE001 - a malformed (e.g. hand-edited) op must not wedge
                log.warning("dropped %d malformed tracking call(s) from seq %s (%s: %s)", n,
                            pending[0].get("seq"), type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
            if self._window_done and n == len(pending):  # before the last ack: a retry redoes it
                try:
                    self._dedupe_window()
                except _Permanent as e:
                    log.warning("duplicate check after finishing not done: %s", e)
                    self._window_done = {}
            self._bulk_skip = max(0, self._bulk_skip - n)
            seq = pending[n - 1]["seq"]
            del pending[:n]
            self.journal.ack(seq)
            with self._cond:
                self._cond.notify_all()
        self.journal.sync()
        self.journal.compact_if_idle()

    # -- many runs in one SQL transaction (bulk.py) --------------------------------------------
    def _bulk(self, pending: list[dict]) -> int:
        """Write the bulk segment at the head of `pending` in one transaction; return how many
        ops it took (0: none, or the transaction failed and those ops go call by call)."""
        if not self.bulk or self._window is None:
            return 0
        store = bulk.sql_store(self._client)
        if store is None:
            return 0
        n = bulk.plan_segment(pending, _Known(self), self.dead)
        if not n:
            return 0
        seg = pending[:n]
        try:
            runs, adds, warnings = self._bulk_runs(seg)
            self.calls["bulk_write"] += 1
            bulk.write(store, list(runs.values()), self._artifact_locations)
        except _Retry:
            raise
        except Exception as e:  # noqa: BLE001 - rolled back: these ops go call by call, as before
            if not isinstance(e, bulk.Unsupported):  # a commit may have landed before its error did
                for op in seg:
                    if op["op"] == "create":
                        op["_tried"] = True  # so its create looks the run up by golf.run_key first
            log.debug("bulk write of %d tracking calls not done (%s: %s); sending them one by one",
                      n, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
            self._bulk_skip = n
            return 0
        created = [r for r in runs.values() if r.new]
        for r in created:
            self.journal.map_run(r.key, r.run_id)
        self.calls["bulk_runs"] += len(created)
        with self._cond:
            self.runs.update((r.key, r.run_id) for r in created)
            self._cond.notify_all()
        for (experiment, identity), entries in adds.items():
            self._index(experiment).setdefault(identity, []).extend(entries)
            self._window_done.setdefault(experiment, set()).add(identity)
        for args in warnings:
            log.warning(*args)
        return n

    def _bulk_runs(self, seg: list[dict]):
        """The runs a bulk segment writes, the index entries its FINISHED runs add, and the
        warnings to give once it is committed; finishes are judged duplicates as _finish does."""
        runs: dict[str, bulk.BulkRun] = {}
        adds: dict[tuple[str, str], list[IndexEntry]] = {}
        warnings: list[tuple] = []
        for op in seg:
            key = op["key"]
            if op["op"] == "create":
                exp_id = self._experiment_id(op["experiment"])
                if exp_id not in self._artifact_locations:
                    self._artifact_locations[exp_id] = self._call("get_experiment", exp_id).artifact_location
                tags = dict(op["tags"])
                parent = op.get("parent")
                if parent:
                    tags["mlflow.parentRunId"] = runs[parent].run_id if parent in runs else self.runs[parent]
                runs[key] = bulk.BulkRun(key, bulk.new_run_id(), True, exp_id,
                                         {"tags": tags, "name": op["name"], "start_ms": int(op["start_ms"])})
                continue
            r = runs.get(key) or runs.setdefault(key, bulk.BulkRun(key, self.runs[key], False))
            if op["op"] == "log":
                r.metrics.extend(op.get("metrics", ()))
                for k, v in op.get("params", {}).items():
                    if r.params.setdefault(k, v) != v:
                        raise bulk.Unsupported(f"param {k} logged twice with different values")
                r.tags.update(op.get("tags", {}))
                continue
            if r.end is not None:
                raise bulk.Unsupported("a run finished twice")
            status, tags, identity = op["status"], dict(op.get("tags", {})), op.get("identity")
            if status == "FINISHED" and identity:
                exp_id = self._experiment_id(op["experiment"])
                mine = adds.setdefault((op["experiment"], identity), [])
                others = [e.run_id for e in [*self._index(op["experiment"]).get(identity, ()), *mine]
                          if e.run_id != r.run_id and e.computed]
                if others:
                    status = "KILLED"
                    tags.update({"golf.killed_reason": "duplicate", "golf.duplicate_of": others[0]})
                    warnings.append(("identity %s already has FINISHED run %s; run %s ends KILLED",
                                     identity, others[0], r.run_id))
                else:
                    mine.append(IndexEntry(r.run_id, exp_id, int(op["end_ms"]), True))
            r.tags.update(tags)
            r.end = (status, int(op["end_ms"]))
        return runs, {k: v for k, v in adds.items() if v}, warnings

    def _call(self, name: str, *args, **kwargs):
        self.calls[name] += 1
        try:
            return getattr(self._client, name)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            if is_transient(e):
                raise _Retry(f"{name}: {e}") from e
            raise _Permanent(f"{name}: {e}") from e

    def _run_id(self, key: str) -> str | None:
        """The run id of `key`; one that came from an adopted journal is used only once MLflow
        confirms it is a run golf made for that key (tag golf.run_key) in our experiment, so
        a hand-edited journal cannot touch another sweep's (or anybody's) run."""
        run_id = self.runs.get(key)
        if run_id is None or key not in self.unverified:
            return run_id
        missing = False
        try:
            run = self._call("get_run", run_id)
            ok = run.data.tags.get("golf.run_key") == key and (
                self.experiment is None or run.info.experiment_id == self._experiment_id(self.experiment))
        except _Permanent as e:
            ok = False
            missing = "RESOURCE_DOES_NOT_EXIST" in str(e) or "not found" in str(e).lower()
        self.unverified.discard(key)
        if not ok and missing:  # the store lost it (deleted, replaced): its journaled create makes it again
            self.missing.add(key)
            with self._cond:
                self.runs.pop(key, None)
        elif not ok:
            log.warning("replayed tracking calls for run %s dropped: it is not a run of experiment %r "
                        "made for key %s", run_id, self.experiment, key[:8])
            with self._cond:
                self.runs.pop(key, None)
        return self.runs.get(key)

    # -- logs --------------------------------------------------------------------------------
    def _send_logs(self, window: list[dict]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        batches: dict[str, tuple[list, dict, dict]] = {}
        for op in window:
            metrics, params, tags = batches.setdefault(op["key"], ([], {}, {}))
            metrics.extend(op.get("metrics", ()))
            for k, v in op.get("params", {}).items():
                if params.setdefault(k, v) != v:
                    log.warning("param %s logged twice with different values (%r, then %r); "
                                "MLflow keeps the first", k, params[k], v)
            tags.update(op.get("tags", {}))
        for key, (metrics, params, tags) in batches.items():
            run_id = self._run_id(key)
            if run_id is None:
                continue  # its run could not be created (already warned)
            ms = [Metric(k, v, ts, step) for k, v, ts, step in metrics]
            ps = [Param(k, v) for k, v in params.items()]
            ts_ = [RunTag(k, v) for k, v in tags.items()]
            for cm, cp, ct in _chunks(ms, ps, ts_):
                self._log_batch(run_id, cm, cp, ct)

    def _log_batch(self, run_id: str, metrics: list, params: list, tags: list) -> None:
        try:
            self._call("log_batch", run_id, metrics=metrics, params=params, tags=tags)
            return
        except _Permanent as e:
            log.warning("MLflow rejected a batch for run %s (%s); sending its parts apart",
                        run_id, e)
        parts = ([("metrics", metrics)] if metrics else []) + \
                ([("tags", tags)] if tags else []) + [("params", [p]) for p in params]
        for kind, items in parts:
            try:
                self._call("log_batch", run_id, **{kind: items})
            except _Permanent as e:
                log.warning("dropped %s for run %s: %s", kind, run_id, e)

    # -- runs, artifacts, ends ---------------------------------------------------------------
    def _apply(self, op: dict) -> None:
        try:
            {"create": self._create, "artifact": self._artifact, "finish": self._finish}[op["op"]](op)
        except _Permanent as e:
            if op["op"] == "create":
                self.dead.add(op["key"])
                with self._cond:
                    self._cond.notify_all()
            log.warning("dropped tracking call %s for %s: %s", op["op"], op["key"], e)

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        exp = self._call("get_experiment_by_name", name)
        if exp is None:
            try:
                exp_id = self._call("create_experiment", name)
            except _Permanent:  # created meanwhile by another process
                exp = self._call("get_experiment_by_name", name)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
            if exp.lifecycle_stage != "active":
                self._call("restore_experiment", exp_id)
        self._experiments[name] = exp_id
        return exp_id

    def _search(self, exp_id: str, filter_string: str) -> list:
        self.calls["search_runs"] += 1
        try:
            return search_all(self._client, exp_id, filter_string,
                              order_by=["attributes.start_time ASC"])
        except Exception as e:  # noqa: BLE001
            raise (_Retry if is_transient(e) else _Permanent)(f"search_runs: {e}") from e

    def _create(self, op: dict) -> None:
        from mlflow.entities import RunTag

        key = op["key"]
        if self._run_id(key) is not None:
            return
        if key in self.missing:
            self.recreated.add(key)  # its acknowledged calls follow, replayed into this store
        exp_id = self._experiment_id(op["experiment"])
        found = None
        if op.get("reuse"):  # the sweep's parent run from an earlier invocation
            filt = " and ".join(tag_filter(k, v) for k, v in op["reuse"].items())
            found = next(iter(self._search(exp_id, filt)), None)
        if found is None and op.get("_tried"):
            # an earlier create may have reached the server before its answer was lost
            found = next(iter(self._search(exp_id, tag_filter("golf.run_key", key))), None)
        tags = dict(op["tags"])
        parent = op.get("parent")
        if parent and self._run_id(parent) is not None:
            tags["mlflow.parentRunId"] = self.runs[parent]
        if found is not None:
            run_id = found.info.run_id
            if op.get("reuse") and found.info.status != "RUNNING":
                self._call("update_run", run_id, status="RUNNING")  # the sweep goes on
            self._log_batch(run_id, [], [], [RunTag(k, v) for k, v in tags.items()])
        else:
            op["_tried"] = True
            run = self._call("create_run", exp_id, start_time=op["start_ms"], tags=tags,
                             run_name=op.get("name"))
            run_id = run.info.run_id
        self.journal.map_run(key, run_id)
        with self._cond:
            self.runs[key] = run_id
            self._cond.notify_all()

    def _artifact(self, op: dict) -> None:
        run_id = self._run_id(op["key"])
        if run_id is None:
            return
        path = op["path"]
        if not os.path.exists(path):
            raise _Permanent(f"artifact {path} no longer exists")
        name = "log_artifacts" if os.path.isdir(path) else "log_artifact"
        self._call(name, run_id, path, op.get("artifact_path"))

    def _finish(self, op: dict) -> None:
        from mlflow.entities import RunTag

        run_id = self._run_id(op["key"])
        if run_id is None:
            return
        status, tags = op["status"], dict(op.get("tags", {}))
        identity = op.get("identity")
        if status == "FINISHED" and identity:
            # never two FINISHED runs for one identity: check just before finishing, and again
            # after (_dedupe): drivers of two sweeps sharing a job can pass this check together
            exp_id = self._experiment_id(op["experiment"])
            if self._window is not None:
                others = [e.run_id for e in self._index(op["experiment"]).get(identity, ())
                          if e.run_id != run_id and e.computed]
            else:
                filt = f"{tag_filter('golf.identity', identity)} and attributes.status = 'FINISHED'"
                others = [r.info.run_id for r in self._search(exp_id, filt) if r.info.run_id != run_id
                          and "golf.reused_from" not in r.data.tags]  # a copy is not the record
            if others:
                status = "KILLED"
                tags.update({"golf.killed_reason": "duplicate", "golf.duplicate_of": others[0]})
                log.warning("identity %s already has FINISHED run %s; run %s ends KILLED",
                            identity, others[0], run_id)
        if tags:
            self._log_batch(run_id, [], [], [RunTag(k, v) for k, v in tags.items()])
        self._call("set_terminated", run_id, status=status, end_time=op["end_ms"])
        if status == "FINISHED" and identity:
            if self._window is not None:  # checked again once for the whole window
                self._index(op["experiment"]).setdefault(identity, []).append(
                    IndexEntry(run_id, exp_id, int(op["end_ms"]), True))
                self._window_done.setdefault(op["experiment"], set()).add(identity)
            else:
                self._dedupe(exp_id, identity)

    def _index(self, experiment: str) -> dict:
        """identity -> FINISHED runs of `experiment`, read once per window (orchestrator.tracking.index)."""
        if experiment not in self._window:
            self._window[experiment] = self._read_index(experiment)
        return self._window[experiment]

    def _read_index(self, experiment: str) -> dict:
        self.calls["identity_index"] += 1
        try:
            return identity_index(self.uri, experiment)
        except Exception as e:  # noqa: BLE001
            raise (_Retry if is_transient(e) else _Permanent)(f"identity index: {e}") from e

    def _dedupe_window(self) -> None:
        """_dedupe for every identity this window finished: one index read per experiment."""
        from mlflow.entities import RunTag

        for experiment, idents in self._window_done.items():
            fresh = self._read_index(experiment)
            for identity in sorted(idents):
                runs = sorted(fresh.get(identity, ()), key=lambda e: (e.start_time, e.run_id))
                for dup in runs[1:]:
                    keep = runs[0].run_id
                    self._log_batch(dup.run_id, [], [], [RunTag("golf.killed_reason", "duplicate"),
                                                         RunTag("golf.duplicate_of", keep)])
                    self._call("update_run", dup.run_id, status="KILLED")
                    log.warning("identity %s: run %s finished together with %s; it ends KILLED (duplicate)",
                                identity, dup.run_id, keep)
            self._window.pop(experiment, None)  # the next window reads it afresh
        self._window_done = {}

    def _dedupe(self, exp_id: str, identity: str) -> None:
        """After a FINISHED: if several runs of `identity` are FINISHED (two writers passed the
        check at once), keep the earliest-started (run id breaks ties) and end the others KILLED
        duplicate. Every writer picks the same survivor, and the last one to finish sees all."""
        from mlflow.entities import RunTag

        filt = f"{tag_filter('golf.identity', identity)} and attributes.status = 'FINISHED'"
        runs = sorted(self._search(exp_id, filt), key=lambda r: (r.info.start_time or 0, r.info.run_id))
        for dup in runs[1:]:
            keep = runs[0].info.run_id
            self._log_batch(dup.info.run_id, [], [], [RunTag("golf.killed_reason", "duplicate"),
                                                      RunTag("golf.duplicate_of", keep)])
            self._call("update_run", dup.info.run_id, status="KILLED")
            log.warning("identity %s: run %s finished together with %s; it ends KILLED (duplicate)",
                        identity, dup.info.run_id, keep)
