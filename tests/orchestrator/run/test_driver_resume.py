"""Resume and outages through the driver: a SIGKILLed driver rerun (no duplicates, stale
RUNNING runs closed as KILLED) and an MLflow server stopped mid-sweep (nothing lost)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.run.driver import run_plan  # noqa: E402
from orchestrator.tracking import Tracker  # noqa: E402
from tests.orchestrator.run.test_driver import _by_identity, _runs  # noqa: E402
from tests.workers.fakes import FakeRunner, small_plan  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]

# The driver process: joins the test's Ray, runs the same plan the test builds.
DRIVER = """
import json, sys
import ray
from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.run.driver import run_plan
from orchestrator.tracking import Tracker
from tests.workers.fakes import FakeRunner, small_plan
a = json.loads(sys.argv[1])
ray.init(address=a["address"], log_to_driver=False, configure_logging=False)
plan = small_plan(**a["plan"])
tracker = Tracker(a["uri"], plan.sweep_name, a["journal"])
run_plan(plan, tracker, DriverOptions(runner=FakeRunner(a["tmp"]), work_dir=a["tmp"] + "/w"))
tracker.close()
"""


def _plan_args(tmp_path, name):
    return {"name": name, "seeds": [10, 11], "alphas": [0.1],
            "per_seed_train_fake": {11: {"hang_once": str(tmp_path / "hung")}}}


def _wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_driver_killed_mid_sweep_then_rerun(ray_local, mlflow_server, tmp_path):
    args = _plan_args(tmp_path, "resume")
    plan = small_plan(**{**args, "per_seed_train_fake": {11: args["per_seed_train_fake"][11]}})
    t10 = next(j for j in plan.jobs if j.name == "train/s10")
    t11 = next(j for j in plan.jobs if j.name == "train/s11")
    payload = {"address": ray.get_runtime_context().gcs_address, "uri": mlflow_server.uri,
               "journal": str(tmp_path / "journal"), "tmp": str(tmp_path),
               "plan": {**args, "per_seed_train_fake": {11: args["per_seed_train_fake"][11]}}}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(payload)], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "driver.log", "wb"))
    try:
        def state():
            runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
            return ([r.info.status for r in runs.get(t10.identity, [])],
                    [r.info.status for r in runs.get(t11.identity, [])])
        _wait_for(lambda: state() == (["FINISHED"], ["RUNNING"]) and (tmp_path / "hung").exists(), 120,
                  "train/s10 FINISHED while train/s11 hangs RUNNING")
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-sweep: no cleanup at all
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")  # adopts the dead journal
    try:
        report = run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w")))
    finally:
        assert tracker.close(timeout=60)
    counts = report.counts()
    assert counts["failed"] == counts["skipped"] == 0
    assert report.outcomes[t10.identity].state == "reused"
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    for job in plan.jobs:  # exactly one FINISHED run per identity: nothing ran twice
        assert Counter(r.info.status for r in runs[job.identity])["FINISHED"] == 1, job.name
    assert len(runs[t10.identity]) == 1
    stale = [r for r in runs[t11.identity] if r.info.status == "KILLED"]
    assert len(stale) == 1 and stale[0].data.tags.get("golf.killed_reason") == "stale"
    assert not [r for rs in runs.values() for r in rs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_tracking_server_down_for_a_minute_mid_sweep(ray_local, mlflow_server, tmp_path):
    outage_s = float(os.environ.get("GOLF_TEST_OUTAGE_S", "60"))
    plan = small_plan("outage", seeds=(12, 13), alphas=(0.1, 0.2, 0.3))
    down = threading.Event()
    back = threading.Thread(target=lambda: (time.sleep(outage_s), mlflow_server.start()), daemon=True)

    def on_event(what, out):
        if what == "finished" and not down.is_set():  # after the first result: pull the plug
            down.set()
            mlflow_server.stop()
            back.start()

    tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
    t0 = time.monotonic()
    try:
        report = run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w"),
                                                       on_event=on_event))
        swept = time.monotonic() - t0
        assert report.counts() == Counter(finished=len(plan.jobs))  # no job waited on, or failed by, MLflow
        assert swept < outage_s  # the sweep ran on through the outage
        assert tracker.close(timeout=outage_s + 90)  # then everything buffered is delivered
    finally:
        back.join(timeout=outage_s + 30)
        if not mlflow_server.is_up():
            mlflow_server.start()
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    for job in plan.jobs:
        rs = runs[job.identity]
        assert [r.info.status for r in rs] == ["FINISHED"], job.name
        assert "val_bpb" in rs[0].data.metrics and rs[0].data.tags["golf.valid"] == "true"
