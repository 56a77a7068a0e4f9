"""One driver per sweep (orchestrator.run.lease) against a real `mlflow server`: a live lease refuses
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

from orchestrator.run.lease import TAG_PREFIX, LeaseHeld, LeaseInfo, LeaseLost, SweepLease, machine_id
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


def _new_driver_beats(server, exp, sweep, until, host="other-host", limit_s=10.0) -> None:
    """Another driver's claim, rewritten like its heartbeat would be, until `until()` (our
    heartbeat's read-then-write may overwrite one write; a real rival writes again)."""
    deadline = time.monotonic() + limit_s
    while not until() and time.monotonic() < deadline:
        _write_raw(server, exp, sweep, host=host, pid=7, machine=f"{host}/b/1", age_s=0)
        time.sleep(0.2)


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
    for stale in (False, False, True, True):  # the tag absent (an insert), or stale (an update)
        sweep = uuid.uuid4().hex
        if stale:
            _write_raw(mlflow_server, exp, sweep, host="gone", pid=1, machine="gone/b/1", age_s=999)
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
    a = _lease(mlflow_server, exp, sweep, timeout_s=3.0)  # heartbeat every 0.5 s
    a.acquire()
    try:
        first = a.read().heartbeat
        time.sleep(3.5)  # longer than the timeout: only the heartbeat keeps it live
        assert a.read().heartbeat > first
        with pytest.raises(LeaseHeld):
            _lease(mlflow_server, exp, sweep, timeout_s=3.0).acquire()
        a.check()  # still ours
        # another driver overwrites it (as after a takeover): noticed within a beat or two
        _new_driver_beats(mlflow_server, exp, sweep, lambda: a.lost is not None)
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


# ------------------------------------------------------------------ through the driver (real local Ray)

def _dead_driver(server, plan, job, journal, sweep_identity=None):
    """What a killed driver leaves: the sweep's parent run and one job run, both RUNNING."""
    dead = Tracker(server.uri, plan.sweep_name, journal)
    dead.start_sweep(sweep_identity or plan.sweep_identity, name=plan.sweep_name)
    run = dead.start_job(job)
    assert dead.flush(30)
    dead._writer.stop()
    dead._journal.close(delete=True)
    return run.run_id


def test_a_stale_lease_is_taken_over_and_its_running_runs_closed(ray_local, mlflow_server, tmp_path):
    pytest.importorskip("ray")
    from mlflow.tracking import MlflowClient

    from orchestrator.run.types import DriverOptions
    from orchestrator.run.driver import run_plan
    from tests.workers.fakes import FakeRunner, small_plan

    plan = small_plan(f"stale-{uuid.uuid4().hex[:6]}", seeds=(1,), alphas=(0.1,))
    other = uuid.uuid4().hex  # another sweep of the same experiment, its driver alive elsewhere
    stale_run = _dead_driver(mlflow_server, plan, plan.jobs[0], tmp_path / "dead")
    live_run = _dead_driver(mlflow_server, plan, plan.jobs[1], tmp_path / "other", sweep_identity=other)
    _write_raw(mlflow_server, plan.sweep_name, plan.sweep_identity, host="gone-host", pid=_dead_pid(),
               machine="gone-host/b/1", age_s=600)  # heartbeat 10 minutes old
    _write_raw(mlflow_server, plan.sweep_name, other, host="busy-host", pid=1, machine="busy-host/b/1", age_s=1)

    said = []
    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
    try:
        report = run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w"),
                                                       lease_timeout_s=60, say=said.append))
        # run_plan again on the same open tracker: the same driver, its lease still held
        again = run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w")))
        assert again.counts()["reused"] == len(plan.jobs)
    finally:
        assert tracker.close(timeout=60)
    assert report.counts()["finished"] == len(plan.jobs)
    assert any("took over" in s and "gone-host" in s for s in said)
    c = MlflowClient(mlflow_server.uri)
    r = c.get_run(stale_run)
    assert r.info.status == "KILLED" and r.data.tags["golf.killed_reason"] == "stale"
    assert c.get_run(live_run).info.status == "RUNNING"  # another live sweep's run: not stale
    tags = c.get_experiment_by_name(plan.sweep_name).tags
    assert TAG_PREFIX + plan.sweep_identity not in tags  # released after the tracker closed
    assert TAG_PREFIX + other in tags


def test_a_live_lease_stops_the_driver_before_it_touches_any_run(ray_local, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestrator.run.types import DriverOptions
    from orchestrator.run.driver import run_plan
    from tests.workers.fakes import FakeRunner, small_plan

    plan = small_plan(f"live-{uuid.uuid4().hex[:6]}", seeds=(1,), alphas=(0.1,))
    running = _dead_driver(mlflow_server, plan, plan.jobs[0], tmp_path / "first")  # the live driver's run
    _write_raw(mlflow_server, plan.sweep_name, plan.sweep_identity, host="busy-host", pid=4242,
               machine="busy-host/b/1", age_s=3)
    c = MlflowClient(mlflow_server.uri)
    exp_id = c.get_experiment_by_name(plan.sweep_name).experiment_id
    before = {r.info.run_id: r.info.status for r in c.search_runs([exp_id], "")}
    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
    try:
        with pytest.raises(LeaseHeld, match=r"host busy-host pid 4242 since .* UTC"):
            run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w")))
    finally:
        assert tracker.close(timeout=60)
    after = {r.info.run_id: r.info.status for r in c.search_runs([exp_id], "")}
    assert after == before and after[running] == "RUNNING"  # no run created, none closed


def test_a_driver_whose_lease_was_taken_over_stops(ray_local, mlflow_server, tmp_path):
    """A driver that missed heartbeats past the timeout and was taken over stops dispatching,
    closes its open runs and says so (LeaseLost), instead of racing the new driver."""
    from orchestrator.run.types import DriverOptions
    from orchestrator.run.driver import run_plan
    from orchestrator.run.lease import LeaseLost
    from tests.workers.fakes import FakeRunner, small_plan

    plan = small_plan(f"lost-{uuid.uuid4().hex[:6]}", seeds=(1,), alphas=(0.1,), train_fake={"sleep": 20})
    dispatched, stopped = [], threading.Event()
    rival = threading.Thread(target=lambda: _new_driver_beats(mlflow_server, plan.sweep_name, plan.sweep_identity,
                                                              stopped.is_set, host="new-host", limit_s=20))

    def on_event(what, out):
        if what == "dispatch" and not dispatched:  # the new driver's claims land mid-job
            dispatched.append(out.job.name)
            rival.start()

    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
    t0 = time.monotonic()
    try:
        with pytest.raises(LeaseLost, match="new-host"):
            run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w"),
                                                  lease_timeout_s=1.2, on_event=on_event))
    finally:
        stopped.set()
        if rival.is_alive():
            rival.join(30)
        assert tracker.close(timeout=60)
    assert time.monotonic() - t0 < 20 and dispatched == ["train/s1"]  # stopped mid-job
    from tests.orchestrator.run.test_driver import _by_identity, _runs

    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    assert [r.info.status for r in runs[plan.jobs[0].identity]] == ["KILLED"]  # closed, not left RUNNING
    assert len(runs) == 1  # nothing else was started
    parent = [r for r in _runs(mlflow_server.uri, plan.sweep_name) if r.data.tags.get("golf.kind") == "sweep"]
    assert [r.info.status for r in parent] == ["RUNNING"]  # the new driver's now: not ended by us


# ------------------------------------------------------------------ the real CLI

def _small_spec(root, out) -> None:
    """experiments/smoke.yaml cut to 4 jobs (1 train, 1 eval, 2 mix): ~20 s on 2 cores."""
    s = (root / "experiments" / "smoke.yaml").read_text()
    for a, b in [("name: smoke", "name: lease"), ("path: data/smoke", "path: data/lease"),
                 ("seeds: [1337, 42]", "seeds: [1337]"),
                 ("modes: [none, hashed_target, normalized, tilt]", "modes: [none, normalized]"),
                 ("alpha_base: [0.05, 0.1, 0.2]", "alpha_base: [0.1]"), ("alpha_range: [0.2, 0.4, 0.6]", "alpha_range: [0.4]"),
                 ("synthetic_train_tokens: 500000", "synthetic_train_tokens: 200000"),
                 ("synthetic_val_tokens: 200000", "synthetic_val_tokens: 100000")]:
        assert a in s, a
        s = s.replace(a, b)
    out.write_text(s)


def _lease_tags(db) -> list[str]:
    """The lease tags in a SQLite store, read without MLflow (the driver may be creating it)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return [v for k, v in con.execute("select key, value from experiment_tags") if k.startswith(TAG_PREFIX)]
        finally:
            con.close()
    except sqlite3.Error:
        return []


@pytest.mark.slow
def test_two_golf_runs_of_one_sweep_one_refuses_one_waits(tmp_path):
    from mlflow.tracking import MlflowClient

    from tests.orchestrator.cli.test_run import GOLF, ROOT, _env

    _small_spec(ROOT, tmp_path / "small.yaml")
    cmd = GOLF + ["run", "small.yaml", "--no-progress"]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=open(tmp_path / "first.log", "w"),
                             stderr=subprocess.STDOUT, text=True)
    waiter = None
    try:
        deadline = time.monotonic() + 120
        while not _lease_tags(tmp_path / "mlflow.db"):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.3)
        waiter = subprocess.Popen(cmd + ["--wait"], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        second = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        assert first.poll() is None  # it refused a live driver (not one that had finished)
        assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
        err = [line for line in second.stderr.splitlines() if line.startswith("golf: error:")]
        assert len(err) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"host {socket.gethostname()} pid {first.pid} since " in err[0] and "UTC" in err[0], err[0]
        assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
        out, _ = waiter.communicate(timeout=300)
    finally:
        for p in (first, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert waiter.returncode == 0, out[-3000:]
    assert f"is being run by host {socket.gethostname()} pid {first.pid}" in out and "waiting" in out
    assert "4 reused" in out and "ray:" not in out  # it went on once the first was done, reusing all
    c = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = c.get_experiment_by_name("lease")
    jobs = [r for r in c.search_runs([exp.experiment_id], "", max_results=1000) if "golf.identity" in r.data.tags]
    assert len(jobs) == 4 and {r.info.status for r in jobs} == {"FINISHED"}  # none KILLED, none twice
    assert not [k for k in exp.tags if k.startswith(TAG_PREFIX)]  # released
