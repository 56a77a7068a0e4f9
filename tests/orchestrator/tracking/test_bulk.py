"""The bulk path (orchestrator.tracking.bulk, issue 21): runs written to a SQL store in one
transaction read back through MlflowClient exactly as runs written call by call, and a crash
or an error in the middle of a transaction loses nothing and makes nothing twice."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import orchestrator.tracking.run_handle as run_handle_mod
import orchestrator.tracking.tracker as tracker_mod
from orchestrator.tracking import Tracker, bulk
from tests.orchestrator.tracking.helpers import Job, new_identity

ROOT = Path(__file__).resolve().parents[3]
IDENTS = [new_identity() for _ in range(6)]


def _sweep(tr: Tracker, clock: list[int]) -> dict:
    """One sweep's tracking calls, the same for both paths: mix-like jobs logged in one batch,
    a job whose logs and finish come after its run exists, a duplicate, a failure."""
    tr.start_sweep(IDENTS[0], params={"sweep.n": 5})
    handles = {}
    for i in range(3):
        job = Job("mix", IDENTS[1 + i], f"seed1337/eval/mix-{i}", params={"mixer.alpha": str(0.1 * i), "mixer.o": "4"})
        h = handles[f"mix{i}"] = tr.start_job(job)
        clock[0] += 1
        with h.batched():
            h.log_metrics({"val_bpb": 1.0 + i / 7, "tokens_scored": 12000, "odd": math.inf})
            for step in range(4):
                h.log_metrics({"chunk_val_bpb": 1.5 - step / 10 + i}, step=step)
            h.log_metrics({"chunk_val_bpb": 1.5 + i}, step=0)  # the same metric again: kept once
            h.set_tags({"golf.compliant": "true"})
            h.set_validity(i != 2, "why not" if i == 2 else None)
        clock[0] += 1
        h.finish()
    late = handles["late"] = tr.start_job(Job("eval", IDENTS[4], "seed1337/eval", params={"eval.stride": "64"}))
    late.log_metrics({"loss": 9.0}, step=0)
    assert tr.flush(60)  # its run exists: what follows writes to a run made earlier (latest_metrics updated)
    for step in (3, 1, 2):  # out of order: latest_metrics is the greatest step, not the last logged
        clock[0] += 1
        late.log_metrics({"loss": 2.0 + step, "nan": float("nan")}, step=step)
    late.log_params({"eval.extra": "x"})
    late.set_tags({"golf.gpu": "cpu"})
    clock[0] += 1
    late.finish()
    dup = handles["dup"] = tr.start_job(Job("mix", IDENTS[1], "seed1337/eval/mix-0", params={"mixer.alpha": "0.0"}))
    clock[0] += 1
    dup.finish()  # identity already FINISHED: ends KILLED duplicate
    bad = handles["bad"] = tr.start_job(Job("mix", IDENTS[5], "seed1337/eval/mix-bad"), attempt=2)
    clock[0] += 1
    bad.finish("FAILED", reason="worker died")
    assert tr.close(60)
    return handles


def _read(uri: str, handles: dict) -> dict:
    """Everything MlflowClient shows of these runs, run ids replaced by handle names."""
    c = MlflowClient(uri)
    ids = {h.run_id: name for name, h in handles.items()}
    sweep_id = c.get_run(handles["mix0"].run_id).data.tags["mlflow.parentRunId"]
    ids[sweep_id] = "sweep"
    out = {}
    for run_id, name in ids.items():
        run = c.get_run(run_id)
        info = run.info
        tags = {k: ids.get(v, v) for k, v in run.data.tags.items() if k != "golf.run_key"}
        out[name] = {
            "status": info.status, "start": info.start_time, "end": info.end_time, "name": info.run_name,
            "user": info.user_id, "stage": info.lifecycle_stage,
            "artifact_uri": info.artifact_uri.replace(run_id, "RUN").replace(f"/{info.experiment_id}/", "/EXP/"),
            "tags": tags, "params": run.data.params,
            "metrics": {k: repr(v) for k, v in run.data.metrics.items()},  # repr: nan == nan
            "history": {k: sorted((m.step, m.timestamp, repr(m.value)) for m in c.get_metric_history(run_id, k))
                        for k in run.data.metrics},
        }
        exp = info.experiment_id
    for i, ident in enumerate(IDENTS):  # what the UI's search by tag finds
        found = c.search_runs([exp], f"tags.`golf.identity` = '{ident}'", order_by=["attributes.start_time ASC"])
        out[f"search{i}"] = [(ids[r.info.run_id], r.info.status) for r in found]
    out["children"] = sorted(ids[r.info.run_id] for r in c.search_runs([exp], f"tags.`mlflow.parentRunId` = '{sweep_id}'"))
    return out


def test_bulk_runs_read_back_exactly_as_runs_written_call_by_call(tmp_path, monkeypatch):
    got = {}
    for mode in ("calls", "bulk"):
        clock = [1_700_000_000_000]
        monkeypatch.setattr(tracker_mod, "_now_ms", lambda: clock[0])
        monkeypatch.setattr(run_handle_mod, "_now_ms", lambda: clock[0])  # a run handle stamps its finish
        uri = f"sqlite:///{tmp_path / mode / 'mlflow.db'}"
        (tmp_path / mode).mkdir()
        tr = Tracker(uri, "same", tmp_path / mode / "journal")
        tr._writer.bulk = mode == "bulk"
        got[mode] = _read(uri, _sweep(tr, clock))
        calls = tr.stats["calls"]
        if mode == "bulk":
            # the sweep's run is looked up for reuse, then created by the API; the 6 jobs in bulk
            assert calls["bulk_runs"] == 6 and calls["create_run"] == 1 and not calls.get("set_terminated")
        else:
            assert not calls.get("bulk_runs") and calls["create_run"] == 7
    assert got["bulk"] == got["calls"]
    b = got["bulk"]
    assert b["dup"]["status"] == "KILLED" and b["dup"]["tags"]["golf.duplicate_of"] == "mix0"
    assert b["late"]["metrics"]["loss"] == "5.0" and b["late"]["metrics"]["nan"] == "nan"
    assert len(b["mix0"]["history"]["chunk_val_bpb"]) == 4 and b["search1"] == [("mix0", "FINISHED"), ("dup", "KILLED")]


def test_an_error_inside_the_transaction_rolls_back_and_the_calls_go_one_by_one(tmp_path, monkeypatch, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    real, tried = bulk.write, []

    def broken(store, runs, locations):  # runs, tags and params go in, then the database fails
        from sqlalchemy.exc import OperationalError
        from sqlalchemy.orm import Session

        execute = Session.execute

        def failing(self, stmt, *a, **k):
            if getattr(getattr(stmt, "table", None), "name", None) == "metrics":
                raise OperationalError("INSERT INTO metrics", {}, Exception("disk I/O error"))
            return execute(self, stmt, *a, **k)
        Session.execute = failing
        try:
            return real(store, runs, locations)
        finally:
            Session.execute = execute
            tried.append(len(runs))
    monkeypatch.setattr(bulk, "write", broken)
    clock = [1_700_000_000_000]
    monkeypatch.setattr(tracker_mod, "_now_ms", lambda: clock[0])
    monkeypatch.setattr(run_handle_mod, "_now_ms", lambda: clock[0])  # a run handle stamps its finish
    tr = Tracker(uri, "same", tmp_path / "journal")
    handles = _sweep(tr, clock)
    assert tried, "the bulk path was not tried"
    assert tr.stats["calls"]["create_run"] == 7 and not tr.stats["calls"].get("bulk_runs")
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("same").experiment_id
    assert len(c.search_runs([exp])) == 7  # each once
    assert c.get_run(handles["mix1"].run_id).data.metrics["val_bpb"] == pytest.approx(1 + 1 / 7)


def test_a_metric_the_store_already_holds_does_not_fail_the_segment(tmp_path, monkeypatch):
    """A job's gpu_seconds was logged when charged and again with its result: in the same
    millisecond but in two writer segments, the second insert hit the metrics table's primary
    key and the whole segment (1,121 calls once) went one by one. It is skipped, as MLflow's
    own log_batch skips it, and the segment stays one transaction."""
    clock = [1_700_000_000_000]
    monkeypatch.setattr(tracker_mod, "_now_ms", lambda: clock[0])
    monkeypatch.setattr(run_handle_mod, "_now_ms", lambda: clock[0])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tr = Tracker(uri, "same", tmp_path / "journal")
    tr.start_sweep(IDENTS[0])
    h = tr.start_job(Job("mix", IDENTS[1], "seed1337/eval/mix-0"))
    h.log_metrics({"gpu_seconds": 1.5, "other": 2.0})
    assert tr.flush(60)  # segment 1: the run and its first metrics
    before = dict(tr.stats["calls"])
    with h.batched():  # segment 2, the same millisecond: one metric again, one new
        h.log_metrics({"gpu_seconds": 1.5, "val_bpb": 1.25})
        h.log_metrics({"gpu_seconds": 1.75}, step=1)
    h.finish()
    assert tr.close(60)
    calls = tr.stats["calls"]
    assert calls["bulk_write"] == before["bulk_write"] + 1  # one transaction, not call by call
    assert not calls.get("log_batch", 0) - before.get("log_batch", 0) and not calls.get("set_terminated")
    c = MlflowClient(uri)
    run = c.get_run(h.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"gpu_seconds": 1.75, "other": 2.0, "val_bpb": 1.25}
    hist = sorted((m.step, m.value) for m in c.get_metric_history(h.run_id, "gpu_seconds"))
    assert hist == [(0, 1.5), (1, 1.75)]  # the repeat kept once


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_a_driver_killed_inside_a_bulk_write_loses_nothing_and_makes_nothing_twice(tmp_path, where):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    idents = [new_identity() for _ in range(8)]
    code = textwrap.dedent(f"""
        import os
        from orchestrator.tracking import Tracker, bulk
        from tests.orchestrator.tracking.helpers import Job
        real = bulk.write
        def write(store, runs, locations):
            if not any(r.new for r in runs):
                return real(store, runs, locations)
            if {where!r} == "before_commit":  # the rows are in the open transaction, then the process dies
                from sqlalchemy.orm import Session
                Session.commit = lambda self: os._exit(9)
                real(store, runs, locations)
            real(store, runs, locations)  # committed; the journal never hears of it
            os._exit(9)
        bulk.write = write
        tr = Tracker({uri!r}, "crash", {str(tmp_path / "journal")!r})
        tr.start_sweep({idents[0]!r})
        tr.flush(60)
        for i, ident in enumerate({idents[1:]!r}):
            h = tr.start_job(Job("mix", ident, f"mix-{{i}}", params={{"mixer.alpha": str(i)}}))
            with h.batched():
                h.log_metrics({{"val_bpb": 1.0 + i}})
                for s in range(3):
                    h.log_metrics({{"chunk_val_bpb": 2.0 + s}}, step=s)
                h.set_validity(True)
            h.finish()
        tr.flush(60)
        print("not killed")
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 9, (p.stdout + p.stderr)[-3000:]
    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("crash").experiment_id
    before = c.search_runs([exp], "tags.`golf.kind` = 'mix'")
    if where == "before_commit":
        assert before == []  # rolled back: none at all
    else:
        assert before  # committed, never acknowledged: the replay must find them, not make them again
    tr = Tracker(uri, "crash", tmp_path / "journal")  # the next driver replays the dead one's journal
    assert tr.replayed and tr.close(60)
    runs = c.search_runs([exp], "tags.`golf.kind` = 'mix'")
    by_ident = {}
    for r in runs:
        by_ident.setdefault(r.data.tags["golf.identity"], []).append(r)
    assert sorted(by_ident) == sorted(idents[1:]) and all(len(v) == 1 for v in by_ident.values())
    for r in runs:
        i = int(r.data.params["mixer.alpha"])
        assert r.info.status == "FINISHED" and r.data.metrics["val_bpb"] == 1.0 + i
        assert r.data.tags["golf.valid"] == "true" and r.data.tags["mlflow.parentRunId"]
        hist = c.get_metric_history(r.info.run_id, "chunk_val_bpb")
        assert sorted((m.step, m.value) for m in hist) == [(s, 2.0 + s) for s in range(3)]
    assert len(runs) == 7
