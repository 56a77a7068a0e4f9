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
