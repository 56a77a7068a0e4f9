"""Tracking without a server: MLflow's key/value rules applied client-side, and the default
store (sqlite:///mlflow.db in the working directory) that `golf run` uses out of the box."""
from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import _validate_param, _validate_tag

from golf_core.presets import load_preset
from orchestrator.tracking import Tracker, finished_identities, flatten_params
from orchestrator.tracking.params import (
    MAX_PARAM_VALUE_LEN, clean_key, clean_metrics, clean_params, clean_tags,
)
from tests.orchestrator.tracking.helpers import Job, find_finished, new_identity


def test_flatten_params_makes_dotted_keys_from_nested_configs():
    flat = flatten_params({"run": {"model": {"num_layers": 11, "tie": True},
                                   "train": {"betas": (0.9, 0.95), "sched": {}, "x": None}},
                           "seed": 1337})
    assert flat == {"run.model.num_layers": "11", "run.model.tie": "true",
                    "run.train.betas": "[0.9, 0.95]", "run.train.sched": "{}",
                    "run.train.x": "null", "seed": "1337"}


def test_flatten_params_of_a_real_preset_is_valid_for_mlflow():
    run = load_preset("tiny")
    params = clean_params({"run": run})  # pydantic configs are dumped on the way
    assert params, "the preset produced no params"
    dump = run.model_dump(mode="json")
    some_section = next(iter(dump))
    assert any(k.startswith(f"run.{some_section}.") for k in params)
    for k, v in params.items():
        _validate_param(k, v)  # MLflow's own check: raises on a bad key or value


@pytest.mark.parametrize("key, expected", [
    ("model.num_layers", "model.num_layers"),
    ("a:b", "a_b"), ("x@y#z", "x_y_z"), ("/lead", "lead"), ("a//b/", "a/b"),
    ("../up", "up"), ("", "_"), ("k" * 300, "k" * 250),
])
def test_clean_key_follows_mlflow_key_rules(key, expected):
    assert clean_key(key) == expected
    _validate_tag(clean_key(key), "v")


def test_long_values_are_cut_to_mlflow_limits_and_metrics_must_be_numbers():
    params = clean_params({"blob": "y" * 10_000})
    assert len(params["blob"]) == MAX_PARAM_VALUE_LEN
    assert params["blob"].endswith("[truncated]")
    assert len(clean_tags({"t": "z" * 9000})["t"]) == 8000
    assert clean_metrics({"a": 1, "b": True, "c": 2.5}) == {"a": 1.0, "b": 1.0, "c": 2.5}
    with pytest.raises(TypeError, match="'bad' must be a number"):
        clean_metrics({"bad": "1.0"})


def test_default_store_is_sqlite_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    job = Job("train", new_identity(), "local", {"run": {"lr": 0.1}}, seed=2)
    with Tracker(None, "local-spec") as tr:  # journal under ./.golf too
        assert tr.tracking_uri == "sqlite:///mlflow.db"
        tr.start_sweep(new_identity())
        run = tr.start_job(job)
        for s in range(5):
            run.log_metrics({"train_loss": 1.0 / (s + 1)}, step=s)
        (tmp_path / "note.txt").write_text("hi")
        run.log_artifact(tmp_path / "note.txt")
        run.finish()
        found = find_finished(tr, job.identity)
        assert found is not None and found.record.tags["golf.seed"] == "2"
        got = tr.download_artifacts(found.run_id, "note.txt", tmp_path / "dl")
        assert got.read_text() == "hi"
    assert (tmp_path / "mlflow.db").exists()
    assert finished_identities(None, "local-spec") == {job.identity}
    client = MlflowClient("sqlite:///mlflow.db")
    assert len(client.get_metric_history(found.run_id, "train_loss")) == 5
    assert not list((tmp_path / ".golf" / "mlflow-journal").iterdir())
    json.dumps(found.record.tags)  # plain dicts, safe to hand to a report


def K(i: int) -> str:
    """A run key as Tracker makes them (uuid4().hex): the journal refuses any other."""
    return f"{i:032x}"


def test_journal_adoption_takes_only_dead_journals_of_the_same_uri(tmp_path, monkeypatch):
    from orchestrator.tracking import journal as jmod

    uri = "http://127.0.0.1:1"
    live = jmod.Journal(tmp_path, uri)  # held (flock) by a live tracker
    live.append_op({"op": "log", "key": K(0)})
    other = jmod.Journal(tmp_path, "http://elsewhere:5000")
    other.append_op({"op": "log", "key": K(9)})
    other.close(delete=False)
    dead = jmod.Journal(tmp_path, uri)
    for i in range(1, 4):
        dead.append_op({"op": "log", "key": K(i)})
    dead.map_run(K(1), "run-1")
    dead.ack(1)
    dead.close(delete=False)
    with open(dead.path, "a") as f:
        f.write('{"seq": 4, "op": "lo')  # the line the crash cut short

    me = tmp_path / "me.jsonl"
    orphans = jmod.adopt_orphans(tmp_path, uri, me)
    # the unacknowledged calls replay; the acknowledged one comes as history, replayed only into a
    # store that lacks its run (issue 20: a deleted store loses nothing)
    assert [op["key"] for op in orphans.ops if not op.get("_history")] == [K(2), K(3)]
    assert [op["key"] for op in orphans.ops if op.get("_history")] == [K(1)]
    assert orphans.runs == {K(1): "run-1"}
    orphans.release()
    assert not dead.path.exists() and other.path.exists() and live.path.exists()
    assert jmod.adopt_orphans(tmp_path, uri, me).ops == []  # the live one stays untouched

    # a fully acknowledged, large journal is cut back to its run map
    monkeypatch.setattr(jmod, "_COMPACT_BYTES", 0)
    live.map_run(K(0), "run-0")
    assert not live.compact_if_idle()  # seq 1 not acknowledged yet
    live.ack(1)
    assert live.compact_if_idle()
    seq = live.append_op({"op": "log", "key": K(0)})
    assert seq == 2
    live.close(delete=False)
    orphans = jmod.adopt_orphans(tmp_path, uri, me)
    assert [op["seq"] for op in orphans.ops] == [2] and orphans.runs == {K(0): "run-0"}
    orphans.release()


def test_journal_hold_flushes_a_turn_once_and_other_threads_at_once(tmp_path):
    """Journal.hold (the driver's loop turn, issue 21): this thread's lines reach the file in
    one flush at the end; a line another thread writes meanwhile (the writer's ack) is flushed
    at once and takes the held ones out with it, in order."""
    import threading

    from orchestrator.tracking import journal as jmod

    j = jmod.Journal(tmp_path, "http://127.0.0.1:1")

    def on_disk() -> list:
        return [json.loads(line) for line in j.path.read_text().splitlines()][1:]  # past the header

    with j.hold():
        j.append_op({"op": "log", "key": K(1)})
        with j.hold():  # nested: still one flush, at the outer end
            j.append_op({"op": "log", "key": K(2)})
        assert on_disk() == []  # nothing flushed yet: a crash here loses only this turn
    assert [r["seq"] for r in on_disk()] == [1, 2]
    with j.hold():
        j.append_op({"op": "log", "key": K(3)})
        t = threading.Thread(target=j.ack, args=(3,))  # the writer thread: not held
        t.start()
        t.join()
        assert [r.get("seq", r.get("ack")) for r in on_disk()] == [1, 2, 3, 3]
    j.append_op({"op": "log", "key": K(4)})  # outside a hold: flushed per line, as before
    assert on_disk()[-1]["seq"] == 4
    j.close(delete=True)
