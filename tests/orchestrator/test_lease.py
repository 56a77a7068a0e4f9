"""One driver per sweep (orchestrator.lease) against a real `mlflow server`: a live lease refuses
(one line naming host, pid, since), two simultaneous claimers leave exactly one holder, a stale
or dead holder is taken over, the heartbeat keeps a live driver live, a takeover is noticed; and
the writer's re-check after finishing keeps one FINISHED run per identity."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from orchestrator.lease import TAG_PREFIX, LeaseHeld, LeaseInfo, LeaseLost, SweepLease, machine_id
from orchestrator.tracking import Tracker


def _lease(server, exp, sweep, **kw) -> SweepLease:
    kw.setdefault("settle_s", 0.2)
    return SweepLease(server.uri, exp, sweep, "lease-test", **kw)


def _write_raw(server, exp, sweep, *, host, pid, machine, age_s) -> None:
    """A lease tag as another driver would have left it."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(server.uri)
    e = c.get_experiment_by_name(exp)
    exp_id = e.experiment_id if e else c.create_experiment(exp)
    t = time.time() - age_s
    c.set_experiment_tag(exp_id, TAG_PREFIX + sweep,
                         LeaseInfo(f"{host}:{pid}:x", host, pid, machine, t - 5, t).dump())


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_lease_refuses_a_second_driver_in_one_line(mlflow_server, tmp_path):
    exp, sweep = f"lease-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    a = _lease(mlflow_server, exp, sweep)
    assert a.acquire() is None  # nothing to take over
    try:
        b = _lease(mlflow_server, exp, sweep)
        with pytest.raises(LeaseHeld) as e:
            b.acquire()
        msg = str(e.value)
        assert "\n" not in msg and f"host {socket.gethostname()}" in msg and f"pid {os.getpid()}" in msg
        assert " since " in msg and "UTC" in msg and "--wait" in msg
        assert e.value.info.owner == a.me.owner
    finally:
        a.release()
    assert a.read() is None  # released: the tag is gone
    assert b.acquire() is None
    b.release()


def test_simultaneous_claims_leave_exactly_one_holder(mlflow_server):
    exp = f"lease-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        sweep = uuid.uuid4().hex
        leases = [_lease(mlflow_server, exp, sweep, settle_s=0.3) for _ in range(3)]
        go, results = threading.Barrier(len(leases)), {}

        def claim(i):
            go.wait()
            results[i] = leases[i].try_acquire()[0]

        threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(leases))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results.values()) == [False, False, True], results
        winner = next(x for i, x in enumerate(leases) if results[i])
        assert winner.read().owner == winner.me.owner


def test_only_a_stale_or_dead_holder_is_taken_over(mlflow_server):
    exp = f"lease-{uuid.uuid4().hex[:8]}"
    elsewhere = "other-host/boot/1"
    # another machine, fresh heartbeat: live (its pid cannot be checked from here)
    live = uuid.uuid4().hex
    _write_raw(mlflow_server, exp, live, host="other-host", pid=_dead_pid(), machine=elsewhere, age_s=2)
    with pytest.raises(LeaseHeld, match="host other-host"):
        _lease(mlflow_server, exp, live, timeout_s=60).acquire()
    # another machine, heartbeat older than the timeout: taken over
    stale = uuid.uuid4().hex
    _write_raw(mlflow_server, exp, stale, host="other-host", pid=123, machine=elsewhere, age_s=61)
    lease = _lease(mlflow_server, exp, stale, timeout_s=60)
    took = lease.acquire()
    assert took is not None and took.host == "other-host"
    assert lease.read().owner == lease.me.owner
    lease.release()
    # this machine, fresh heartbeat, but its pid is gone (a SIGKILLed driver): taken at once
    dead = uuid.uuid4().hex
    _write_raw(mlflow_server, exp, dead, host=socket.gethostname(), pid=_dead_pid(), machine=machine_id(), age_s=1)
    lease = _lease(mlflow_server, exp, dead, timeout_s=600)
    assert lease.acquire() is not None
    lease.release()
    # ...while a live pid of this machine is live
    mine = uuid.uuid4().hex
    _write_raw(mlflow_server, exp, mine, host=socket.gethostname(), pid=os.getpid(), machine=machine_id(), age_s=1)
    with pytest.raises(LeaseHeld):
        _lease(mlflow_server, exp, mine).acquire()


def test_heartbeat_keeps_a_driver_live_and_a_takeover_is_noticed(mlflow_server):
    exp, sweep = f"lease-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    a = _lease(mlflow_server, exp, sweep, timeout_s=1.2)  # heartbeat every 0.2 s
    a.acquire()
    try:
        first = a.read().heartbeat
        time.sleep(2.0)  # longer than the timeout: only the heartbeat keeps it live
        assert a.read().heartbeat > first
        with pytest.raises(LeaseHeld):
            _lease(mlflow_server, exp, sweep, timeout_s=1.2).acquire()
        a.check()  # still ours
        # another driver overwrites it (as after a takeover): noticed within a beat or two
        _write_raw(mlflow_server, exp, sweep, host="other-host", pid=1, machine="x/y/z", age_s=0)
        deadline = time.monotonic() + 5
        while a.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(LeaseLost, match="other-host"):
            a.check()
    finally:
        a.release()
    assert a.read().host == "other-host"  # a lost lease is not deleted by its old holder


def test_the_work_dir_lock_names_the_holder_on_this_machine(mlflow_server, tmp_path):
    exp, sweep = f"lease-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    a = _lease(mlflow_server, exp, sweep, work_dir=tmp_path)
    a.acquire()
    try:
        ok, holder = _lease(mlflow_server, exp, sweep, work_dir=tmp_path).try_acquire()
        assert not ok and holder.owner == a.me.owner and holder.pid == os.getpid()
    finally:
        a.release()
    b = _lease(mlflow_server, exp, sweep, work_dir=tmp_path)
    assert b.try_acquire()[0]
    b.release()


def test_finishing_twice_at_once_leaves_one_finished_run(mlflow_server, tmp_path):
    """Two writers that both passed the check before finishing (drivers of two sweeps sharing a
    job): the re-check after finishing keeps the earliest-started FINISHED run."""
    from mlflow.tracking import MlflowClient

    exp, ident = f"dedupe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    c = MlflowClient(mlflow_server.uri)
    exp_id = c.create_experiment(exp)
    t0 = int(time.time() * 1000)
    runs = [c.create_run(exp_id, start_time=t0 + i, tags={"golf.identity": ident}) for i in range(2)]
    for r in runs:
        c.set_terminated(r.info.run_id, "FINISHED")  # both "passed" the pre-check
    with Tracker(mlflow_server.uri, exp, tmp_path / "j") as tr:
        tr._writer._client = c
        tr._writer._dedupe(exp_id, ident)
        tr._writer._dedupe(exp_id, ident)  # the other writer's re-check agrees (idempotent)
    first, second = (c.get_run(r.info.run_id) for r in runs)
    assert first.info.status == "FINISHED"
    assert second.info.status == "KILLED" and second.data.tags["golf.killed_reason"] == "duplicate"
    assert second.data.tags["golf.duplicate_of"] == first.info.run_id


def test_lease_value_is_plain_json(mlflow_server):
    exp, sweep = f"lease-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    a = _lease(mlflow_server, exp, sweep)
    a.acquire()
    try:
        from mlflow.tracking import MlflowClient

        c = MlflowClient(mlflow_server.uri)
        tag = c.get_experiment_by_name(exp).tags[TAG_PREFIX + sweep]
        d = json.loads(tag)
        assert d["owner"].startswith(f"{socket.gethostname()}:{os.getpid()}:") and d["pid"] == os.getpid()
        assert d["heartbeat"] >= d["since"] > 0
    finally:
        a.release()
