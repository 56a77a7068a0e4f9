"""The in-process Ray of `golf run` (orchestrator.run.raycluster.connect): every listening socket of
the processes it starts is on loopback, metrics export is off, the auth token Ray writes for it
is 0600, and nothing outlives golf: after a SIGKILL of the driver, the next start stops what
the dead one recorded (issue 7)."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import ray  # noqa: F401 - puts Ray's bundled psutil on sys.path

import psutil  # noqa: E402

from orchestrator.run.raycluster import reap_dead

ROOT = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent("""
    import json, sys, time
    import ray, psutil
    from orchestrator.run.raycluster import connect

    print(connect(None, num_cpus=1, num_gpus=0, log_to_driver=False, state_dir=sys.argv[1]), flush=True)

    @ray.remote
    class A:
        def pid(self):
            return __import__("os").getpid()

    a = A.remote()
    ray.get(a.pid.remote())
    ray.get(ray.remote(lambda: 1).remote())
    time.sleep(2)  # let the agents open their ports
    me = psutil.Process()
    listen = []
    for p in [me] + me.children(recursive=True):
        try:
            listen += [(p.name(), c.laddr.ip, c.laddr.port) for c in p.net_connections(kind="inet")
                       if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    print(json.dumps({"listen": listen, "tree": [p.pid for p in me.children(recursive=True)]}), flush=True)
    sys.stdin.readline()  # killed here with SIGKILL: no ray.shutdown()
""")


def _loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip.split("%")[0])
    return a.is_loopback or bool(getattr(a, "ipv4_mapped", None) and a.ipv4_mapped.is_loopback)


def _alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            pass
    return out


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only_and_a_killed_golf_leaves_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    state = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_TOKEN"))}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(state)], cwd=tmp_path, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    recorded: list[int] = []
    try:
        assert child.stdout.readline().strip() == "local"
        got = json.loads(child.stdout.readline())
        assert got["listen"], "Ray opened no listening socket at all?"
        bad = [x for x in got["listen"] if not _loopback(x[1])]
        assert not bad, f"listening beyond loopback: {bad}"
        names = {n for n, _, _ in got["listen"]}
        assert {"gcs_server", "raylet"} <= names, names
        token = home / ".ray" / "auth_token"
        if token.exists():  # Ray 2.60 writes one for token auth
            assert stat.S_IMODE(token.stat().st_mode) == 0o600
        records = list(state.glob("ray-procs-*.json"))
        assert len(records) == 1
        recorded = [p["pid"] for p in json.loads(records[0].read_text())["procs"]]
        assert recorded and set(recorded) <= set(got["tree"]) | set(recorded)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    time.sleep(1)
    survivors = _alive(recorded)  # on main, agents outlived their golf here
    stopped = reap_dead(state)  # what the next `golf run` does first (connect)
    print(f"recorded {len(recorded)}, alive after the SIGKILL {len(survivors)}, stopped {len(stopped)}")
    deadline = time.monotonic() + 20
    while _alive(recorded) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(recorded), "Ray processes outlived golf"
    assert not list(state.glob("ray-procs-*.json"))


def test_reap_never_touches_a_live_golfs_processes_nor_recycled_pids(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = psutil.Process()
        p = psutil.Process(sleeper.pid)
        live = {"golf_pid": me.pid, "golf_started": round(me.create_time(), 2),
                "procs": [{"pid": p.pid, "started": round(p.create_time(), 2), "name": "x"}]}
        (tmp_path / f"ray-procs-{me.pid}.json").write_text(json.dumps(live))
        assert reap_dead(tmp_path) == [] and sleeper.poll() is None  # its golf (we) is alive
        dead = {"golf_pid": 2**22 + 7, "golf_started": 1.0,
                "procs": [{"pid": p.pid, "started": 12345.0, "name": "x"}]}  # same pid, other start time
        (tmp_path / f"ray-procs-{me.pid}.json").unlink()
        (tmp_path / "ray-procs-1.json").write_text(json.dumps(dead))
        assert reap_dead(tmp_path) == [] and sleeper.poll() is None
        assert not (tmp_path / "ray-procs-1.json").exists()
        dead["procs"][0]["started"] = round(p.create_time(), 2)
        (tmp_path / "ray-procs-2.json").write_text(json.dumps(dead))
        assert reap_dead(tmp_path) == [sleeper.pid]
        assert sleeper.wait(timeout=10) is not None
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
