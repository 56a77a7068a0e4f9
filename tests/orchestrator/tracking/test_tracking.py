"""orchestrator.tracking against a real `mlflow server` on loopback: layout, batching, resume
queries, the one-FINISHED-run-per-identity guard, attempts, artifacts."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import (
    Tracker, TrackingUnavailable, download_artifacts, finished_identities,
)
from tests.fixtures.mlflow_server import free_port
from tests.orchestrator.tracking.helpers import Job, find_finished, new_identity, runs_of

TRAIN_CONFIG = {"run": {"model": {"num_layers": 2, "model_dim": 64, "mlp_mult": 2.5},
                        "train": {"lr": 0.04, "schedule": [1, 2, 3], "note": None},
                        "quant": {"bits": 6, "long": "x" * 7000}}}


@pytest.fixture
def tracker(mlflow_server, tmp_path, request):
    tr = Tracker(mlflow_server.uri, f"exp-{request.node.name}", tmp_path / "journal")
    yield tr
    tr.close(timeout=30)


def test_layout_experiment_parent_children_params_metrics_tags(mlflow_server, tracker):
    sweep_id = new_identity()
    sweep = tracker.start_sweep(sweep_id, {"spec": {"name": "layout", "seeds": [1, 2]}})
    train = Job("train", new_identity(), "train-seed1", TRAIN_CONFIG, seed=1)  # no params: config
    run = tracker.start_job(train, attempt=1)
    for step in range(20):
        run.log_metrics({"train_loss": 6.0 - 0.1 * step}, step=step)
    run.log_result({"val_bpb": 1.25, "val_loss": 2.1, "artifact_bytes": 1234, "code_bytes": 100,
                    "model_bytes": 1134, "train_time_s": 3.5, "tokens_per_s": 1e5,
                    "over_limit": False, "config": {"ignored": 1}, "code_version": "abc"})
    run.set_validity(True)
    run.finish("FINISHED")
    ev = tracker.start_job(Job("eval", new_identity(), "eval/s1/e0", {"eval": {"stride": 64}},
                               deps=(train.identity,), seed=1,
                               params={"eval.stride": "64", "data.variant": "synthetic"}))
    ev.log_result({"val_bpb": 1.2, "eval_time_s": 2.0, "compliance": {"compliant": False}})
    ev.set_validity(False, "artifact over 16,000,000 bytes")
    ev.finish()
    assert tracker.flush(30)

    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name(tracker.experiment_name)
    assert exp is not None
    parent = client.get_run(sweep.run_id)
    assert parent.data.tags["golf.kind"] == "sweep"
    assert parent.data.tags["golf.sweep"] == sweep_id
    assert parent.data.params["spec.name"] == "layout"
    assert parent.data.params["spec.seeds"] == "[1, 2]"

    child = client.get_run(run.run_id)
    assert child.info.experiment_id == exp.experiment_id
    assert child.info.status == "FINISHED"
    assert child.info.run_name == "train-seed1"
    tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
    assert tags["mlflow.parentRunId"] == sweep.run_id
    assert tags["golf.kind"] == "train" and tags["golf.identity"] == train.identity
    assert tags["golf.seed"] == "1" and tags["golf.attempt"] == "1"
    assert tags["golf.sweep"] == sweep_id and tags["golf.valid"] == "true"
    assert tags["golf.code_version"] == "abc"  # the worker's version overrides the driver's
    for key in ("golf.torch_version", "golf.ray_version", "golf.mlflow_version",
                "golf.python_version", "golf.gpu"):
        assert tags[key]
    assert params["run.model.num_layers"] == "2"
    assert params["run.model.mlp_mult"] == "2.5"
    assert params["run.train.schedule"] == "[1, 2, 3]"
    assert params["run.train.note"] == "null"  # one spelling of null, JSON's
    assert len(params["run.quant.long"]) == 6000  # MLflow's param value limit
    assert metrics["val_bpb"] == 1.25 and metrics["artifact_bytes"] == 1234
    assert "over_limit" not in metrics and "config" not in metrics
    history = client.get_metric_history(run.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(20))
    assert {m.step: m.value for m in history}[19] == pytest.approx(4.1)

    ev_run = client.get_run(ev.run_id)
    # job.params are the run's params: the config is not logged a second time beside them
    assert ev_run.data.params == {"eval.stride": "64", "data.variant": "synthetic"}
    assert ev_run.info.run_name == "eval s1" and ev_run.data.tags["golf.job"] == "eval/s1/e0"
    assert ev_run.data.tags["mlflow.parentRunId"] == sweep.run_id
    assert ev_run.data.tags["golf.deps"] == train.identity
    assert ev_run.data.tags["golf.valid"] == "false"
    assert ev_run.data.tags["golf.reason"] == "artifact over 16,000,000 bytes"
    assert ev_run.data.tags["golf.compliant"] == "false"
    assert ev_run.data.metrics["eval_time_s"] == 2.0


def test_500_points_go_in_few_log_batch_calls(mlflow_server, tracker):
    def http_log_batches() -> int:  # the server's access log: real HTTP requests
        time.sleep(0.3)
        return mlflow_server.log_path.read_text(errors="replace").count("/runs/log-batch")

    run = tracker.start_job(Job("train", new_identity(), "batched", {}))
    assert tracker.flush(30)
    before = tracker.stats["calls"].get("log_batch", 0)
    http_before = http_log_batches()
    t0 = time.perf_counter()
    for step in range(500):
        run.log_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
    enqueue_s = time.perf_counter() - t0
    assert tracker.flush(30)
    calls = tracker.stats["calls"]["log_batch"] - before
    assert calls <= 3, f"500 points took {calls} log_batch calls"
    assert http_log_batches() - http_before == calls
    assert enqueue_s < 1.0, f"logging 500 points blocked the caller for {enqueue_s:.2f} s"
    history = MlflowClient(mlflow_server.uri).get_metric_history(run.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(500))


def test_sweep_parent_is_reused_on_rerun(mlflow_server, tmp_path):
    sweep_id, exp = new_identity(), "exp-sweep-reuse"
    ids = []
    for i in range(2):
        with Tracker(mlflow_server.uri, exp, tmp_path / "journal") as tr:
            sweep = tr.start_sweep(sweep_id, {"seeds": "1,2"})
            tr.start_job(Job("train", new_identity(), f"job{i}", {})).finish()
            ids.append(sweep.wait_run_id(30))
    assert ids[0] == ids[1]
    parents = runs_of(mlflow_server.uri, exp, "tags.`golf.kind` = 'sweep'")
    assert [p.info.run_id for p in parents] == [ids[0]]
    assert parents[0].info.status == "FINISHED"
    children = runs_of(mlflow_server.uri, exp, "tags.`golf.kind` = 'train'")
    assert len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {ids[0]}


def test_each_attempt_is_its_own_run_and_find_finished_sees_the_last(mlflow_server, tracker):
    job = Job("train", new_identity(), "flaky", {"run": {"seed": 3}}, seed=3)
    first = tracker.start_job(job, attempt=1)
    first.log_metrics({"train_loss": 5.0}, step=0)
    first.finish("FAILED", reason="actor died: node lost")
    assert find_finished(tracker, job.identity) is None
    second = tracker.start_job(job, attempt=2)
    second.log_metrics({"val_bpb": 1.3})
    second.finish("FINISHED")

    found = find_finished(tracker, job.identity)
    assert found is not None and found.run_id == second.run_id
    assert found.result["val_bpb"] == 1.3 and found.record.tags["golf.attempt"] == "2"
    runs = runs_of(mlflow_server.uri, tracker.experiment_name,
                   f"tags.`golf.identity` = '{job.identity}'")
    by_attempt = {r.data.tags["golf.attempt"]: r for r in runs}
    assert set(by_attempt) == {"1", "2"}
    assert by_attempt["1"].info.status == "FAILED"
    assert by_attempt["1"].data.tags["golf.reason"] == "actor died: node lost"
    assert by_attempt["2"].info.status == "FINISHED"
    assert by_attempt["2"].info.run_name == "flaky (attempt 2)"


def test_find_finished_tie_rule_the_newest_in_this_experiment_wins(mlflow_server, tracker):
    """Two FINISHED runs of one identity exist only after a `--no-reuse` recompute (it finishes
    beside the run it recomputed): the recompute supersedes, so the newest is the record."""
    from orchestrator.run.track import TrackingAdapter

    job = Job("train", new_identity(), "tie", {}, seed=1)
    first = tracker.start_job(job)
    first.log_metrics({"val_bpb": 1.5})
    first.finish()
    assert tracker.flush(30)
    recompute = TrackingAdapter(tracker, reuse=False)  # golf run --no-reuse
    key = recompute.open(job, attempt=1, parent=None)
    recompute.handles[key].log_metrics({"val_bpb": 1.4})
    recompute.close(key, "FINISHED", {})
    assert tracker.flush(30)
    runs = runs_of(mlflow_server.uri, tracker.experiment_name, f"tags.`golf.identity` = '{job.identity}'")
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    found = find_finished(tracker, job.identity)
    assert found.run_id == recompute.run_id(key) != first.run_id and found.result["val_bpb"] == 1.4


def test_never_two_finished_runs_for_one_identity(mlflow_server, tracker, tmp_path):
    job = Job("eval", new_identity(), "dup", {})
    a = tracker.start_job(job)
    a.finish()
    assert tracker.flush(30)
    b = tracker.start_job(job)  # e.g. a driver that missed find_finished
    b.finish()
    with Tracker(mlflow_server.uri, tracker.experiment_name, tmp_path / "j2") as other:
        c = other.start_job(job)
        c.finish()
    assert tracker.flush(30)
    runs = runs_of(mlflow_server.uri, tracker.experiment_name,
                   f"tags.`golf.identity` = '{job.identity}'")
    status = {r.info.run_id: r for r in runs}
    assert [r.info.status for r in runs].count("FINISHED") == 1
    assert status[a.run_id].info.status == "FINISHED"
    for h in (b, c):
        assert status[h.run_id].info.status == "KILLED"
        assert status[h.run_id].data.tags["golf.killed_reason"] == "duplicate"
        assert status[h.run_id].data.tags["golf.duplicate_of"] == a.run_id


def test_close_stale_running_kills_a_dead_drivers_runs_only(mlflow_server, tmp_path):
    exp = "exp-stale"
    dead = Tracker(mlflow_server.uri, exp, tmp_path / "dead")
    j1, j2 = (Job("train", new_identity(), f"stale{i}", {}) for i in range(2))
    s1, s2 = dead.start_job(j1), dead.start_job(j2)
    assert dead.flush(30)
    dead._writer.stop()  # the driver "dies": its runs stay RUNNING
    try:
        with Tracker(mlflow_server.uri, exp, tmp_path / "live") as live:
            mine = live.start_job(Job("train", new_identity(), "mine", {}))
            assert live.close_stale_running(j1.identity) == [s1.run_id]
            assert set(live.close_stale_running()) == {s2.run_id}
            client = MlflowClient(mlflow_server.uri)
            for h in (s1, s2):
                r = client.get_run(h.run_id)
                assert r.info.status == "KILLED"
                assert r.data.tags["golf.killed_reason"] == "stale"
            assert client.get_run(mine.run_id).info.status == "RUNNING"
            mine.finish()
    finally:
        dead._journal.close(delete=True)


def test_finished_identities_and_unreachable_server(mlflow_server, tracker, tmp_path):
    done, failed = new_identity(), new_identity()
    tracker.start_job(Job("train", done, "done", {})).finish()
    tracker.start_job(Job("train", failed, "failed", {})).finish("FAILED")
    tracker.start_job(Job("train", new_identity(), "running", {}))
    assert tracker.flush(30)
    assert finished_identities(mlflow_server.uri, tracker.experiment_name) == {done}
    assert finished_identities(mlflow_server.uri, "no-such-experiment") == set()

    t0 = time.monotonic()
    with pytest.raises(TrackingUnavailable, match="127.0.0.1"):
        finished_identities(f"http://127.0.0.1:{free_port()}", "x")
    assert time.monotonic() - t0 < 15

    # the default SQLite store that does not exist yet: nothing ran, and no file is made
    db = tmp_path / "none" / "mlflow.db"
    assert finished_identities(f"sqlite:///{db}", "x") == set()
    assert not db.exists()


def test_artifact_upload_and_download_roundtrip(mlflow_server, tracker, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    model = out / "model.ptz"
    model.write_bytes(os.urandom(50_000))
    stats = out / "token_stats.npz"
    np.savez(stats, p_model=np.linspace(0, 1, 100))
    (out / "result.json").write_text('{"val_bpb": 1.2}')
    (out / "logs").mkdir()
    (out / "logs" / "rank0.txt").write_text("step 1 loss 5.0\n")

    job = Job("train", new_identity(), "artifacts", {})
    run = tracker.start_job(job)
    for f in (model, stats, out / "result.json"):
        run.log_artifact(f)
    run.log_artifact(out / "logs", artifact_path="logs")
    run.finish()

    found = find_finished(tracker, job.identity)
    assert found is not None
    dst = tmp_path / "elsewhere"
    got = tracker.download_artifacts(found.run_id, "model.ptz", dst)
    assert got.read_bytes() == model.read_bytes()
    got = download_artifacts(mlflow_server.uri, found.run_id, "token_stats.npz", dst / "b")
    assert np.array_equal(np.load(got)["p_model"], np.linspace(0, 1, 100))
    log = download_artifacts(mlflow_server.uri, found.run_id, "logs/rank0.txt", dst / "c")
    assert log.read_text() == "step 1 loss 5.0\n"
    names = {a.path for a in MlflowClient(mlflow_server.uri).list_artifacts(found.run_id)}
    assert names == {"model.ptz", "token_stats.npz", "result.json", "logs"}


def test_bad_calls_never_raise_into_the_job(mlflow_server, tracker):
    run = tracker.start_job(Job("train", new_identity(), "bad", {}))
    run.log_metrics({"ok": 1.0, "not_a_number": "nan?", "bad key: é!": 2.0})
    run.log_params({"p": 1, "q": 1})
    run.log_params({"q": 2})  # same batch: kept client-side as the first value
    assert tracker.flush(30)
    # MLflow refuses to change a param: the server rejects the batch, the writer sends its
    # parts apart and drops only the bad param
    run.log_params({"p": 2, "r": 3})
    run.log_metrics({"after": 3.0})
    run.set_tags({"t": "x"})
    run.log_artifact("/nonexistent/file.bin")
    tracker._enqueue({"op": "log", "key": run.key, "metrics": [["torn"]]})  # a corrupt op
    run.finish()
    assert tracker.flush(30)
    r = MlflowClient(mlflow_server.uri).get_run(run.run_id)
    assert r.data.params == {"p": "1", "q": "1", "r": "3"}
    assert r.data.metrics == {"ok": 1.0, "bad key_ é_": 2.0, "after": 3.0}
    assert r.data.tags["t"] == "x"
    assert r.info.status == "FINISHED"


def test_script_run_names_put_the_env_point_first():
    from orchestrator.tracking.names import run_name

    assert run_name("script_train", "script/s42/MATRIX_LR=0.022,NUM_LAYERS=11") == "MATRIX_LR=0.022 NUM_LAYERS=11 s42"
    # a sweep with tilt points has two evals per seed: the plain one and the one pricing the hints
    assert run_name("eval", "eval/s42/e0") == "eval s42" and run_name("eval", "eval/s42/e0/tilt") == "eval tilt s42"
    assert run_name("eval", "eval/s42/e1/tilt") == "eval tilt s42 e1"
    assert run_name("script_train", "script/s7") == "s7"
