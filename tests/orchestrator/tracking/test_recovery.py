"""Tracking survives what a long sweep meets: a tracking-server outage (>= 60 s, the issue's
bar), a driver killed mid-sweep (journal replay by the next driver), a replay of calls that
had in fact arrived (nothing twice)."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import Tracker
from tests.orchestrator.tracking.helpers import Job, find_finished, new_identity, runs_of

ROOT = Path(__file__).resolve().parents[3]


def _loss(step: int) -> float:
    return 6.0 / (1 + 0.01 * step)


def _assert_exactly_once(client, run_id: str, n: int, key: str = "train_loss") -> None:
    history = client.get_metric_history(run_id, key)
    steps = [m.step for m in history]
    assert sorted(steps) == list(range(n)), f"{len(steps)} points for {n} steps"
    assert all(m.value == pytest.approx(_loss(m.step)) for m in history)


@pytest.mark.slow
def test_outage_of_60s_loses_nothing_and_never_blocks_the_job(mlflow_server, tmp_path):
    exp = "exp-outage"
    # a 2 s backoff cap (default 5 s) only shortens the wait after the restart
    tr = Tracker(mlflow_server.uri, exp, tmp_path / "journal", max_backoff_s=2.0)
    sweep = tr.start_sweep(new_identity())
    job = Job("train", new_identity(), "long-train", {"run": {"lr": 0.1}}, seed=7)
    run = tr.start_job(job)
    step = 0
    for step in range(10):
        run.log_metrics({"train_loss": _loss(step)}, step=step)
    assert tr.flush(30)

    mlflow_server.stop()
    slowest, t_end = 0.0, time.monotonic() + 60.0
    artifact = tmp_path / "result.json"
    artifact.write_text('{"val_bpb": 1.5}')
    while time.monotonic() < t_end:  # the job keeps going; tracking must not get in its way
        step += 1
        t0 = time.perf_counter()
        run.log_metrics({"train_loss": _loss(step)}, step=step)
        if step == 100:  # a job that starts, logs and ends entirely inside the outage
            other = tr.start_job(Job("eval", new_identity(), "eval-in-outage", {"e": {"s": 64}},
                                     deps=(job.identity,)))
            other.log_metrics({"val_bpb": 1.5})
            other.log_artifact(artifact)
            other.set_validity(True)
            other.finish()
        slowest = max(slowest, time.perf_counter() - t0)
        time.sleep(0.1)
    n = step + 1
    run.log_metrics({"val_bpb": 1.4})
    run.finish()
    pending = tr._journal.last_seq - tr._journal.acked
    assert pending >= n - 10, "calls made during the outage should wait in the journal"
    assert tr.stats["failures"] > 0

    mlflow_server.start()
    assert tr.flush(60), "the backlog did not drain after the server came back"
    assert tr.close(30)
    # a queued call takes well under a millisecond; 0.25 s leaves room for a loaded CI
    # machine while still failing a writer that retries on the caller's thread
    assert slowest < 0.25, f"a logging call blocked the job for {slowest * 1000:.0f} ms"

    client = MlflowClient(mlflow_server.uri)
    _assert_exactly_once(client, run.run_id, n)
    r = client.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.metrics["val_bpb"] == 1.4
    o = client.get_run(other.run_id)
    assert o.info.status == "FINISHED" and o.data.params == {"e.s": "64"}
    assert o.data.tags["mlflow.parentRunId"] == sweep.run_id
    assert [a.path for a in client.list_artifacts(other.run_id)] == ["result.json"]
    assert len(runs_of(mlflow_server.uri, exp)) == 3  # sweep + 2 jobs, nothing doubled
    assert not list((tmp_path / "journal").iterdir()), "a delivered journal is deleted"


CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from orchestrator.tracking import Tracker
    from tests.orchestrator.tracking.helpers import Job
    from tests.orchestrator.tracking.test_recovery import _loss

    uri, exp, journal, sweep_id, id1, id2, artifact = sys.argv[1:]
    tr = Tracker(uri, exp, journal)
    tr.start_sweep(sweep_id, {"seeds": "1"})
    r1 = tr.start_job(Job("train", id1, "crash-train", {"run": {"lr": 0.1}}, seed=1))
    for s in range(100):
        r1.log_metrics({"train_loss": _loss(s)}, step=s)
    assert tr.flush(30)
    print("delivered", r1.run_id, flush=True)
    sys.stdin.readline()  # the test stops the server now
    for s in range(100, 200):
        r1.log_metrics({"train_loss": _loss(s)}, step=s)
    r1.log_artifact(artifact)
    r1.finish()
    r2 = tr.start_job(Job("eval", id2, "crash-eval", {"eval": {"stride": 64}}, deps=(id1,)))
    r2.log_metrics({"val_bpb": 1.23})
    r2.finish()
    print("journaled", flush=True)
    sys.stdin.readline()  # killed here, with SIGKILL: no close, no flush
""")


def test_driver_killed_mid_sweep_is_replayed_by_the_next_tracker(mlflow_server, tmp_path):
    exp, journal = "exp-crash", tmp_path / "journal"
    sweep_id, id1, id2 = new_identity(), new_identity(), new_identity()
    artifact = tmp_path / "model.ptz"
    artifact.write_bytes(b"\x01" * 1000)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mlflow_server.uri, exp, str(journal), sweep_id, id1, id2,
         str(artifact)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        line = child.stdout.readline().split()
        assert line and line[0] == "delivered", line
        mlflow_server.stop()
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "journaled"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        mlflow_server.start()

    with Tracker(mlflow_server.uri, exp, journal) as tr:
        assert tr.replayed > 100
        assert tr.flush(60)
        f1, f2 = find_finished(tr, id1), find_finished(tr, id2)
        assert f1 is not None and f1.run_id == line[1]  # the run made before the crash
        assert f2 is not None and f2.result["val_bpb"] == 1.23
    client = MlflowClient(mlflow_server.uri)
    _assert_exactly_once(client, f1.run_id, 200)
    assert [a.path for a in client.list_artifacts(f1.run_id)] == ["model.ptz"]
    assert len(runs_of(mlflow_server.uri, exp)) == 3  # sweep + 2 jobs
    assert not list(journal.iterdir())


def test_replaying_calls_that_had_arrived_makes_nothing_twice(mlflow_server, tmp_path):
    """The crash may fall after a call reached MLflow but before its ack was journaled (or a
    create's answer was lost): replaying a whole journal must be a no-op."""
    exp = "exp-replay-twice"
    tr = Tracker(mlflow_server.uri, exp, tmp_path / "a")
    sweep = tr.start_sweep(new_identity(), {"x": 1})
    job = Job("train", new_identity(), "replayed", {"run": {"lr": 0.1}})
    run = tr.start_job(job)
    for s in range(50):
        run.log_metrics({"train_loss": _loss(s)}, step=s)
    run.set_tags({"golf.valid": "true"})
    run.finish()
    sweep.finish()
    assert tr.flush(30)
    lines = tr._journal.path.read_text().splitlines()
    assert tr.close(30)

    # the same journal as if no answer had come back: no acks, no run ids
    dead = tmp_path / "b"
    dead.mkdir()
    kept = [ln for ln in lines if not ({"ack", "run"} & set(json.loads(ln)))]
    (dead / "journal-deadhost-1-00000000.jsonl").write_text("\n".join(kept) + "\n")
    with Tracker(mlflow_server.uri, exp, dead) as again:
        assert again.replayed == len(kept) - 1  # every op but the header
        assert again.flush(30)
    runs = runs_of(mlflow_server.uri, exp)
    assert len(runs) == 2
    client = MlflowClient(mlflow_server.uri)
    _assert_exactly_once(client, run.run_id, 50)
    r = client.get_run(run.run_id)
    assert r.info.status == "FINISHED" and r.data.params == {"run.lr": "0.1"}
    assert not list(dead.iterdir())


def test_a_store_deleted_mid_run_is_one_line_and_the_next_tracker_replays_everything(tmp_path, caplog):
    """Issue 20, case 10: the SQLite store deleted mid-run printed 104 tracebacks, and the next
    run dropped the journal's records ("not a run of experiment ...") and recomputed the jobs."""
    import logging
    import os

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    exp = "exp-vanish"
    tr = Tracker(uri, exp, tmp_path / "journal", max_backoff_s=0.5)
    tr.start_sweep(new_identity())
    job = Job("train", new_identity(), "train-vanish", {"run": {"lr": 0.1}}, seed=7)
    run = tr.start_job(job)
    for step in range(5):
        run.log_metrics({"train_loss": _loss(step)}, step=step)
    art = tmp_path / "files" / "result.json"
    art.parent.mkdir()
    art.write_text('{"val_bpb": 1.5}')
    assert tr.flush(30)  # these reached the store, which is then deleted
    os.remove(db)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for step in range(5, 10):
            run.log_metrics({"train_loss": _loss(step)}, step=step)
        run.log_artifact(art)
        run.set_validity(True)
        run.finish("FINISHED")
        assert not tr.close(timeout=5)  # not delivered: kept
    lines = [r.getMessage() for r in caplog.records]
    gone = [x for x in lines if "is gone (deleted)" in x]
    assert len(gone) == 1 and "journal" in gone[0] and "replayed" in gone[0], lines
    assert not [r for r in caplog.records if r.exc_info], "a traceback on the console"
    assert list((tmp_path / "journal").glob("journal-*.jsonl")), "the journal went with the store"

    # the next run is a new process (MLflow caches one SQLAlchemy engine per URI in a process)
    code = textwrap.dedent(f"""
        import json, sys
        from orchestrator.tracking import Tracker
        tr = Tracker({uri!r}, {exp!r}, {str(tmp_path / "journal")!r})
        ok = tr.flush(60)
        from tests.orchestrator.tracking.helpers import find_finished
        found = find_finished(tr, {job.identity!r})
        closed = tr.close(timeout=60)
        from mlflow.tracking import MlflowClient
        c = MlflowClient({uri!r})
        rid = found.run_id if found else None
        steps = sorted(m.step for m in c.get_metric_history(rid, "train_loss")) if rid else []
        arts = [a.path for a in c.list_artifacts(rid)] if rid else []
        valid = c.get_run(rid).data.tags.get("golf.valid") if rid else None
        print(json.dumps([ok, rid, closed, steps, arts, valid]))
    """)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-3000:]
    ok, run_id, closed, steps, arts, valid = json.loads(p.stdout.strip().splitlines()[-1])
    assert ok and closed and run_id, "the job's run was not replayed: the rerun would recompute it"
    assert steps == list(range(10))  # the acknowledged calls and the rest, each once
    assert "result.json" in arts and valid == "true"
    assert not list((tmp_path / "journal").glob("journal-*.jsonl"))  # delivered: nothing kept
