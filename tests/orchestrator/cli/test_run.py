"""`golf run`'s input checks, and `golf submit|status|logs|cancel` against a token-authenticated
`ray start --head` cluster. The smoke sweep end to end and its rerun: test_summary.py (one run of
it for the suite, against a real `mlflow server`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOLF = [sys.executable, "-m", "orchestrator.cli.main"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", COLUMNS="120", **extra)
    return env


def _golf(args, cwd, timeout=600, **env):
    t0 = time.monotonic()
    p = subprocess.run(GOLF + list(args), cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    return p, time.monotonic() - t0


def test_run_checks_the_spec_before_starting_anything(tmp_path):
    spec = (ROOT / "experiments" / "smoke.yaml").read_text().replace("buckets: 262144", "buckets: 1000")
    (tmp_path / "bad.yaml").write_text(spec)
    p, _ = _golf(["run", "bad.yaml"], tmp_path, timeout=120)
    assert p.returncode == 2
    err = [line for line in p.stderr.splitlines() if line.startswith("golf: error:")]
    assert len(err) == 1 and "mixer.buckets" in err[0] and "power of two" in err[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "data").exists()  # nothing started


# ------------------------------------------------------------------------------- submit / token

@pytest.fixture(scope="module")
def head():
    from tests.fixtures.ray_cluster import RayHead

    h = RayHead(num_cpus=2)
    try:
        h.start()
        yield h
    finally:
        h.stop()


@pytest.mark.slow
def test_submit_needs_the_cluster_token(head, tmp_path):
    home = tmp_path / "home"  # no ~/.ray/auth_token here
    home.mkdir()
    addr = ["--address", head.dashboard_url]
    p, _ = _golf(["status", "raysubmit_x", *addr], tmp_path, timeout=120, HOME=str(home))
    assert p.returncode == 2 and "requires a Ray auth token" in p.stderr and "--token-file" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    (tmp_path / "wrong").write_text("0" * 64)
    p, _ = _golf(["status", "raysubmit_x", *addr, "--token-file", str(tmp_path / "wrong")], tmp_path,
                 timeout=120, HOME=str(home))
    assert p.returncode == 2 and "rejected the Ray auth token" in p.stderr

    # the right token (only a token file's first line counts): submit the smoke sweep under a
    # name with a space (the entrypoint is shell-quoted), see it start, cancel it
    shutil.copy(ROOT / "experiments" / "smoke.yaml", tmp_path / "my sweep.yaml")
    (tmp_path / "token").write_text(head.token + "\nsecond line: not part of the token\n")
    tok = ["--token-file", str(tmp_path / "token")]
    p, _ = _golf(["submit", "my sweep.yaml", *addr, *tok], tmp_path, timeout=180, HOME=str(home))
    assert p.returncode == 0, p.stderr[-2000:]
    job_id = p.stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 240
    logs = ""
    while time.monotonic() < deadline and "golf: sweep smoke" not in logs:
        time.sleep(2)
        lp, _ = _golf(["logs", job_id, *addr], tmp_path, timeout=120, HOME=str(home), GOLF_RAY_TOKEN=head.token)
        logs = lp.stdout
    assert "golf: sweep smoke" in logs, logs[-3000:]  # `golf run` started on the cluster
    p, _ = _golf(["cancel", job_id, *addr, *tok], tmp_path, timeout=120, HOME=str(home))
    assert p.returncode == 0 and "stop requested" in p.stdout
    status = ""
    while time.monotonic() < deadline and "STOPPED" not in status:
        time.sleep(1)
        sp, _ = _golf(["status", job_id, *addr, *tok], tmp_path, timeout=120, HOME=str(home))
        status = sp.stdout
    assert f"{job_id}: STOPPED" in status


def test_run_refuses_a_fineweb_spec_without_shards_and_makes_no_synthetic_data(tmp_path, monkeypatch, capsys):
    """A record spec on a fresh checkout must not be silently trained on synthetic tokens."""
    import yaml

    from orchestrator.cli.main import main

    monkeypatch.chdir(tmp_path)
    spec = {"name": "fw", "data": {"path": "data/fineweb10B_sp1024", "source": "fineweb"},
            "train": {"preset": "tiny", "seeds": [1]}, "eval": {"seq_len": 128, "stride": 64},
            "mixer": {"modes": ["none"]}}
    (tmp_path / "fw.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", "fw.yaml", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "golf data fineweb" in err[0] and "fineweb10B_sp1024" in err[0]
    assert not (tmp_path / "data" / "fineweb10B_sp1024").exists()
