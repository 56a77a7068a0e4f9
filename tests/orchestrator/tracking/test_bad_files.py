"""A bad file never blocks the work dir, and the tracking URI's credentials never leak (issue 7):
malformed journals are skipped with one warning and moved aside, a replay touches only its own
sweep's runs and files, a garbage mlflow.db is one line, journals are 0600 and say no secret."""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking import Tracker, TrackingStoreError, redact
from orchestrator.tracking import journal as jmod
from tests.orchestrator.tracking.helpers import Job, new_identity

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "experiments" / "smoke.yaml"


def K(i: int) -> str:
    return f"{i:032x}"


def _warnings(caplog, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and needle in r.getMessage()]


def _dead_journal(d: Path, uri: str, experiment: str | None, ops: list[dict], extra: list[bytes] = ()) -> Path:
    j = jmod.Journal(d, uri, experiment)
    for op in ops:
        j.append_op(op)
    j.close(delete=False)
    with open(j.path, "ab") as f:
        for line in extra:
            f.write(line + b"\n")
    return j.path


def test_malformed_journal_lines_cost_one_warning_and_the_file_is_moved_aside(tmp_path, caplog):
    uri, exp = "http://127.0.0.1:1", "exp"
    good = {"op": "log", "key": K(1), "metrics": [["loss", 1.0, 5, 0]]}
    path = _dead_journal(tmp_path, uri, exp, [good], extra=[
        b"\xff\xfe not utf-8",
        b"{not json",
        b'{"seq": "3", "op": "log", "key": "' + K(2).encode() + b'"}',   # seq mistyped
        b'{"seq": 4, "op": "finish", "key": "' + K(2).encode() + b'"}',  # fields missing
        b'[1, 2, 3]',
        b'{"ack": true}',
        b'{"run": "' + K(3).encode() + b'", "run_id": "a b;c"}',
        b'{"seq": 9, "op": "log", "key": "' + K(4).encode() + b'", "tags": {"t": "v"}}',  # good
    ])
    (tmp_path / "journal-host-1-deadbeef.jsonl").mkdir()  # a directory where a journal should be
    caplog.set_level(logging.WARNING, logger="golf.tracking")
    orphans = jmod.adopt_orphans(tmp_path, uri, tmp_path / "me.jsonl", exp)
    assert [op["key"] for op in orphans.ops] == [K(1), K(4)]  # the good lines still replay
    assert orphans.runs == {}
    msgs = [m for m in _warnings(caplog, path.name) if "replaying" not in m]
    assert len(msgs) == 1 and f"{path}: line 3 is not UTF-8 (and 6 more)" in msgs[0], msgs
    assert len(_warnings(caplog, "journal-host-1-deadbeef.jsonl")) == 1
    orphans.release()
    assert not path.exists() and path.with_name(path.name + ".corrupt").is_file()
    assert (tmp_path / "journal-host-1-deadbeef.jsonl.corrupt").is_dir()
    caplog.clear()
    assert jmod.adopt_orphans(tmp_path, uri, tmp_path / "me.jsonl", exp).ops == []
    assert not _warnings(caplog, "journal"), "a file moved aside is never read again"


def test_a_journal_whose_header_is_garbage_is_moved_aside_not_replayed(tmp_path, caplog):
    bad = tmp_path / "journal-x-1-00000000.jsonl"
    bad.write_bytes(b"\x00\x01garbage\n" + json.dumps({"seq": 1, "op": "log", "key": K(1)}).encode() + b"\n")
    caplog.set_level(logging.WARNING, logger="golf.tracking")
    orphans = jmod.adopt_orphans(tmp_path, "http://h:1", tmp_path / "me.jsonl", "exp")
    assert orphans.ops == [] and len(_warnings(caplog, bad.name)) == 1
    assert bad.with_name(bad.name + ".corrupt").exists() and not bad.exists()


def test_journal_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "mlflow-journal").write_text("oops")
    with pytest.raises(ValueError, match="mlflow-journal: is a file"):
        Tracker("http://127.0.0.1:1", "exp", tmp_path / "mlflow-journal")


def test_replay_touches_only_its_own_sweeps_runs_and_files(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with Tracker(uri, "victim", tmp_path / "v-journal") as v:
        v.start_sweep(new_identity())
        victim = v.start_job(Job("train", new_identity(), "victim-job", {}))
        victim.finish()
        assert v.flush(30)
        victim_id = victim.run_id
    work = tmp_path / "work"
    (work / "jobs").mkdir(parents=True)
    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text("private")
    (work / "jobs" / "link.txt").symlink_to(outside)  # a link out of the work dir is out
    inside = work / "jobs" / "model.ptz"
    inside.write_bytes(b"x" * 10)
    journal = work / "mlflow-journal"
    path = _dead_journal(journal, uri, "mine", [
        {"op": "log", "key": K(1), "tags": {"hacked": "yes"}},
        {"op": "finish", "key": K(1), "status": "FAILED", "end_ms": 1, "experiment": "mine", "identity": None},
        {"op": "create", "key": K(2), "experiment": "victim", "tags": {}, "name": "x", "start_ms": 1,
         "parent": None},
        {"op": "create", "key": K(3), "experiment": "mine", "tags": {"golf.run_key": K(3)}, "name": "mine",
         "start_ms": 1, "parent": None},
        {"op": "artifact", "key": K(3), "path": str(outside), "artifact_path": None},
        {"op": "artifact", "key": K(3), "path": str(work / "jobs" / "link.txt"), "artifact_path": None},
        {"op": "artifact", "key": K(3), "path": str(inside), "artifact_path": None},
    ], extra=[json.dumps({"run": K(1), "run_id": victim_id}).encode()])  # points at the victim's run
    caplog.set_level(logging.WARNING, logger="golf.tracking")
    with Tracker(uri, "mine", journal) as tr:
        assert tr.replayed == 4  # K(1)'s log + finish, K(3)'s create + the upload from inside
        assert tr.flush(30)
    client = MlflowClient(uri)
    run = client.get_run(victim_id)
    assert run.info.status == "FINISHED" and "hacked" not in run.data.tags
    assert len(client.search_runs([client.get_experiment_by_name("victim").experiment_id])) == 2
    mine = client.search_runs([client.get_experiment_by_name("mine").experiment_id])
    assert [r.data.tags["golf.run_key"] for r in mine] == [K(3)]
    assert [a.path for a in client.list_artifacts(mine[0].info.run_id)] == ["model.ptz"]
    assert len([m for m in _warnings(caplog, path.name) if "replaying" not in m]) == 1
    assert _warnings(caplog, "replayed tracking calls for run")
    assert path.with_name(path.name + ".corrupt").exists()


def test_stale_running_runs_are_still_closed_next_to_a_corrupt_journal(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = client.create_experiment("exp")
    stale = client.create_run(exp_id, tags={"golf.identity": new_identity()}).info.run_id
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "journal-h-1-00000000.jsonl").write_bytes(b"\xff" * 100 + b"\n")
    with Tracker(uri, "exp", journal) as tr:
        assert tr.close_stale_running(None) == [stale]
    assert client.get_run(stale).info.status == "KILLED"
    assert {p.name for p in journal.iterdir()} == {"journal-h-1-00000000.jsonl.corrupt"}


def test_garbage_tracking_db_is_refused_before_any_journal(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is no database\n" * 10)
    with pytest.raises(TrackingStoreError, match=f"{db}: not an SQLite database"):
        Tracker(f"sqlite:///{db}", "exp", tmp_path / "journal")
    assert not (tmp_path / "journal").exists() or not list((tmp_path / "journal").iterdir())


@pytest.mark.parametrize("command", ["plan", "run"])
def test_golf_plan_and_run_on_a_garbage_db_say_one_line_exit_2(tmp_path, command):
    (tmp_path / "mlflow.db").write_bytes(b"\x00garbage" * 100)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", command, str(SMOKE)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "mlflow.db: not an SQLite database" in err[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr + p.stdout
    assert not (tmp_path / ".golf" / "mlflow-journal").exists() or not list((tmp_path / ".golf" / "mlflow-journal").iterdir())
    assert not (tmp_path / "data").exists() or command == "plan", "refused before any data was made"


def test_redact_hides_url_credentials_only():
    assert redact("http://alice:s3cret@mlflow.example:5000/x") == "http://***@mlflow.example:5000/x"
    assert redact("postgresql://u:p@db/mlflow and https://tok@h") == "postgresql://***@db/mlflow and https://***@h"
    assert redact("sqlite:///mlflow.db") == "sqlite:///mlflow.db"


def test_uri_credentials_never_reach_the_journal_or_the_log_and_journals_are_0600(tmp_path, caplog):
    uri = "http://alice:s3cret@127.0.0.1:1"  # nothing listens: every call fails
    caplog.set_level(logging.DEBUG)
    tr = Tracker(uri, "exp", tmp_path / "journal", max_backoff_s=0.2)
    tr.start_sweep(new_identity(), {"a": 1})
    assert not tr.flush(2)
    path = tr._journal.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not tr.close(timeout=1)
    text = path.read_text()
    assert "s3cret" not in text and "http://***@127.0.0.1:1" in text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "not delivered to http://***@127.0.0.1:1" in logged
    assert "s3cret" not in logged and "alice" not in logged
    # the next Tracker of the same URI adopts the redacted journal and says no secret either
    caplog.clear()
    again = Tracker(uri, "exp", tmp_path / "journal", max_backoff_s=0.2)
    assert again.replayed >= 2
    again.close(timeout=1)
    assert "s3cret" not in "\n".join(r.getMessage() for r in caplog.records)
