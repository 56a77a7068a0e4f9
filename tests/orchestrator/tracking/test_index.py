"""The identity index on a SQL store (orchestrator.tracking.index) answers what the full search
answers: the same FINISHED runs per identity, across experiments, copies marked, deleted runs
and experiments left out; only the identities asked for are read (issue 21)."""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from orchestrator.tracking import Tracker
from orchestrator.tracking.client import finished_runs_everywhere
from orchestrator.tracking.index import finished_identities, finished_runs, identity_index, is_sql_store
from tests.orchestrator.tracking.helpers import Job, new_identity


def _finish(tr, job, status="FINISHED", metrics=None):
    run = tr.start_job(job)
    run.log_metrics(metrics or {"val_bpb": 1.5})
    run.finish(status)
    return run


def test_index_equals_the_full_search_across_experiments(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    a, b, c, gone = (Job("mix", new_identity(), f"m{i}", {"mixer": {"alpha_base": i / 10}}) for i in range(4))
    with Tracker(uri, "exp-one", tmp_path / "j1") as tr:
        tr.start_sweep(new_identity())
        _finish(tr, a, metrics={"val_bpb": 1.25})
        _finish(tr, b, status="FAILED")
        _finish(tr, gone)
    with Tracker(uri, "exp-two", tmp_path / "j2") as tr:
        tr.start_sweep(new_identity())
        _finish(tr, a, metrics={"val_bpb": 1.5})
        _finish(tr, c)
        src = tr.finished_runs([c.identity])[c.identity][0]
        tr.copy_run(c, src)  # a golf.reused_from copy in this experiment
    client = MlflowClient(uri)
    run_gone = finished_runs(uri, [gone.identity])[gone.identity][0].run_id
    client.delete_run(run_gone)

    assert is_sql_store(uri) and not is_sql_store("http://127.0.0.1:5000")
    full = finished_runs_everywhere(uri)
    fast = finished_runs(uri, [a.identity, b.identity, c.identity, gone.identity])
    assert set(fast) == {a.identity, c.identity}
    assert {a.identity, c.identity} <= set(full) and not {b.identity, gone.identity} & set(full)
    for ident in fast:
        assert [r.run_id for r in fast[ident]] == [r.run_id for r in full[ident]]
        assert [r.metrics for r in fast[ident]] == [r.metrics for r in full[ident]]
        assert [r.computed for r in fast[ident]] == [r.computed for r in full[ident]]
    assert [r.metrics["val_bpb"] for r in fast[a.identity]] == [1.25, 1.5]  # oldest first
    assert [r.computed for r in fast[c.identity]] == [True, False]
    assert finished_runs(uri, [a.identity]).keys() == {a.identity}  # only what was asked
    assert finished_identities(uri, "exp-one") == {a.identity}
    assert finished_identities(uri, "exp-two") == {a.identity, c.identity}
    assert finished_identities(uri, "no-such") == set()
    idx = identity_index(uri)
    assert {e.run_id for e in idx[a.identity]} == {r.run_id for r in full[a.identity]}
    exp_two = client.get_experiment_by_name("exp-two").experiment_id
    client.delete_experiment(exp_two)
    assert set(finished_runs(uri, [a.identity, c.identity])) == {a.identity}
    assert finished_identities(uri, "exp-two") == set()


def test_a_missing_sqlite_store_is_not_created(tmp_path):
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert finished_runs(uri, ["x"]) == {} and finished_identities(uri, "e") == set()
    assert not (tmp_path / "none.db").exists()


def test_never_two_finished_runs_for_one_identity_on_a_sql_store_without_a_search_per_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = Job("eval", new_identity(), "dup", {})
    others = [Job("mix", new_identity(), f"m{i}", {}) for i in range(5)]
    with Tracker(uri, "dups", tmp_path / "j1") as tracker:
        a = tracker.start_job(job)
        a.finish()
        assert tracker.flush(30)
        b = tracker.start_job(job)  # a driver that missed find_finished
        b.finish()
        for o in others:
            _finish(tracker, o)
        with Tracker(uri, "dups", tmp_path / "j2") as other:
            c = other.start_job(job)
            c.finish()
        assert tracker.flush(30)
        calls = tracker.stats["calls"]
    assert calls.get("search_runs", 0) == 0  # identity index reads instead, a few per window
    # a few per window: per set_terminated call, or per bulk transaction on this SQL store
    assert calls["identity_index"] <= 2 * (calls.get("set_terminated", 0) + calls.get("bulk_write", 0))
    client = MlflowClient(uri)
    runs = {h.run_id: client.get_run(h.run_id) for h in (a, b, c)}
    assert runs[a.run_id].info.status == "FINISHED"
    for h in (b, c):
        assert runs[h.run_id].info.status == "KILLED"
        assert runs[h.run_id].data.tags["golf.killed_reason"] == "duplicate"
        assert runs[h.run_id].data.tags["golf.duplicate_of"] == a.run_id
    assert finished_identities(uri, "dups") == {job.identity} | {o.identity for o in others}


def test_two_writers_finishing_together_keep_the_earliest(tmp_path):
    """Both pass the check before finishing (the other's finish lands after this window's index
    was read): the window's check after finishing ends the later-started run KILLED duplicate."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = Job("eval", new_identity(), "race", {})
    t1, t2 = Tracker(uri, "race", tmp_path / "j1"), Tracker(uri, "race", tmp_path / "j2")
    try:
        r1, r2 = t1.start_job(job), t2.start_job(job)
        assert t1.flush(30) and t2.flush(30)
        client = MlflowClient(uri)
        real, reads = t1._writer._read_index, []

        def stale_first(experiment):  # the snapshot before r2 finished
            reads.append(experiment)
            return {} if len(reads) == 1 else real(experiment)

        t1._writer._read_index = stale_first
        client.set_terminated(r2.run_id, "FINISHED")  # t2's finish, inside t1's window
        r1.finish()
        assert t1.flush(30) and len(reads) == 2
        first = min((client.get_run(r.run_id) for r in (r1, r2)), key=lambda r: (r.info.start_time, r.info.run_id))
        later = ({r1.run_id, r2.run_id} - {first.info.run_id}).pop()
        assert client.get_run(first.info.run_id).info.status == "FINISHED"
        assert client.get_run(later).info.status == "KILLED"
        assert client.get_run(later).data.tags["golf.duplicate_of"] == first.info.run_id
    finally:
        r2.finished = "FINISHED"  # finished by hand above
        t1.close()
        t2.close()


def test_a_batched_handle_sends_one_op_with_everything(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = Job("mix", new_identity(), "batched", {"mixer": {"alpha_base": 0.1}})
    with Tracker(uri, "batched", tmp_path / "j") as tr:
        h = tr.start_job(job)
        seq0 = tr._journal.last_seq
        with h.batched():
            h.log_metrics({"val_bpb": 1.25})
            for i in range(4):
                h.log_metrics({"chunk_val_bpb": 1.0 + i}, step=i)
            h.set_tags({"golf.compliant": "true"})
            h.set_validity(False, "why")
        assert tr._journal.last_seq == seq0 + 1
        h.finish()
    run = MlflowClient(uri).get_run(h.run_id)
    assert run.data.metrics["val_bpb"] == 1.25 and run.data.tags["golf.reason"] == "why"
    hist = MlflowClient(uri).get_metric_history(h.run_id, "chunk_val_bpb")
    assert sorted((m.step, m.value) for m in hist) == [(i, 1.0 + i) for i in range(4)]
