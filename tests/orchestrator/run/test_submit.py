"""`golf submit`'s entrypoint and env, and the token handling of orchestrator.run.raycluster, without
a cluster (the real `ray start --head` test is test_cmd_run.py::test_submit_needs_the_cluster_token):
every argument shell-quoted, local tracking stores refused, MLflow credentials forwarded, only
a token file's first line used and no token ever printed."""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.run.raycluster import AuthError, resolve_token, scrub
from orchestrator.run.submit import build_entrypoint, check_remote_tracking_uri, job_env

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "experiments" / "smoke.yaml"


def _golf(args, cwd, **env):
    e = {k: v for k, v in os.environ.items()
         if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    e.update(PYTHONPATH=str(ROOT), HOME=str(cwd), **env)
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=300)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_entrypoint_quotes_every_argument_and_a_shell_runs_nothing_else(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "golf").write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (fake / "golf").chmod(0o755)
    uri = "http://h:5000/; touch F; $(touch G) `touch H`"
    for spec in ("my sweep.yaml", "a;b'c\".yaml", "-x.yaml"):
        entry = build_entrypoint(spec, uri)
        out = subprocess.run(["bash", "-c", entry], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"})
        argv = json.loads(out.stdout)
        assert argv[0] == "run" and argv[1].endswith(spec) and argv[2:] == ["--no-progress", "--tracking-uri", uri]
        assert shlex.split(entry)[1:] == argv
    assert not any((tmp_path / f).exists() for f in "FGH")
    assert build_entrypoint("smoke.yaml") == "golf run smoke.yaml --no-progress"


@pytest.mark.parametrize("uri", ["sqlite:///x.db; touch F", "sqlite:///mlflow.db", "file:///tmp/mlruns", "mlruns"])
def test_submit_refuses_a_local_tracking_store(uri):
    with pytest.raises(ValueError, match="vanish"):
        check_remote_tracking_uri(uri)


def test_golf_submit_with_sqlite_uri_is_one_line_and_runs_nothing(tmp_path):
    p = _golf(["submit", str(SMOKE), "--address", f"http://127.0.0.1:{_closed_port()}",
               "--tracking-uri", "sqlite:///x.db; touch F"], tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "vanish" in p.stderr, p.stderr
    assert not (tmp_path / "F").exists() and not (tmp_path / "x.db").exists()


def test_job_env_forwards_mlflow_credentials_only_when_set():
    env = job_env({"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw",
                   "MLFLOW_TRACKING_TOKEN": "", "OTHER_SECRET": "x"})
    assert env["MLFLOW_TRACKING_USERNAME"] == "alice" and env["MLFLOW_TRACKING_PASSWORD"] == "pw"
    assert "MLFLOW_TRACKING_TOKEN" not in env and "OTHER_SECRET" not in env
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"


def test_only_the_first_line_of_a_token_file_is_the_token(tmp_path, monkeypatch):
    for var in ("GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    f = tmp_path / "tok"
    f.write_text("  abc123  \nsecond line\n")
    assert resolve_token(str(f)) == ("abc123", str(f))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("fromhome\r\nmore")
    assert resolve_token(None) == ("fromhome", str(tmp_path / ".ray" / "auth_token"))
    monkeypatch.setenv("GOLF_RAY_TOKEN", "envtok\nrest")
    assert resolve_token(None)[0] == "envtok"
    f.write_text("has a space SECRETPART\n")
    with pytest.raises(AuthError) as ei:
        resolve_token(str(f))
    assert "SECRETPART" not in str(ei.value) and str(f) in str(ei.value)


def test_scrub_removes_token_and_header_values():
    assert scrub("Invalid header value b'Bearer abc\\ndef'", "abc") == "Invalid header value b'Bearer ***"
    assert "tok42" not in scrub("sent Authorization: bearer tok42 to x", None)


def test_no_message_shows_the_token(tmp_path):
    f = tmp_path / "tok"
    f.write_text("SECRETTOKEN0123\nsecond line with spaces\n")
    p = _golf(["status", "raysubmit_x", "--address", f"http://127.0.0.1:{_closed_port()}", "--token-file", str(f)],
              tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "SECRETTOKEN" not in p.stderr + p.stdout and "Traceback" not in p.stderr


class _Silent:
    """A loopback server that accepts TCP connections and never answers (issue 20, case 5)."""

    def __enter__(self):
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def _accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return

    def __exit__(self, *exc):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_every_network_call_has_a_deadline_naming_the_address(tmp_path, monkeypatch):
    """`golf submit/status/logs` and MLflow queries against a server that never answers: one line
    naming the address, within the deadline (GOLF_NET_TIMEOUT_S; 30 s by default)."""
    import argparse
    import time

    from orchestrator.run import submit
    from orchestrator.tracking.client import TrackingUnavailable, net_timeout_s
    from orchestrator.tracking.index import finished_identities

    assert net_timeout_s() == 30.0 or os.environ.get("GOLF_NET_TIMEOUT_S")
    monkeypatch.setenv("GOLF_NET_TIMEOUT_S", "1.5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.yaml").write_text(SMOKE.read_text())
    with _Silent() as srv:
        address = f"http://127.0.0.1:{srv.port}"
        base = dict(address=address, token_file=None, job_id="raysubmit_x", follow=False)
        for fn, extra in ((submit.cmd_status, {}), (submit.cmd_logs, {}),
                          (submit.cmd_submit, {"spec": "smoke.yaml", "tracking_uri": None, "wait": False})):
            t0 = time.monotonic()
            with pytest.raises(ValueError) as e:
                fn(argparse.Namespace(**base, **extra))
            took = time.monotonic() - t0
            assert str(e.value) == f"{address}: no answer within 1.5 s (GOLF_NET_TIMEOUT_S sets the deadline)"
            assert took < 10, f"{fn.__name__}: {took:.1f} s"
        t0 = time.monotonic()
        with pytest.raises(TrackingUnavailable) as e:
            finished_identities(address, "smoke")
        assert address in str(e.value) and "\n" not in str(e.value)
        assert time.monotonic() - t0 < 10  # one deadline for the query, its retries included
