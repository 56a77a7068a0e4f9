"""Local multi-process launch and device resolution."""
from __future__ import annotations

import time

import pytest
import torch

from golf_core.train.distributed import launch_local, resolve_device, setup


def test_launch_local_sets_rank_env_and_reports_success(tmp_path, monkeypatch):
    code = ("import os, pathlib; pathlib.Path(os.environ['OUT'], os.environ['RANK']).write_text("
            "os.environ['WORLD_SIZE'] + ' ' + os.environ['MASTER_ADDR'] + ' ' + os.environ['MASTER_PORT'])")
    monkeypatch.setenv("OUT", str(tmp_path))
    assert launch_local(["-c", code], 3) == 0
    seen = {p.name: p.read_text().split() for p in tmp_path.iterdir()}
    assert set(seen) == {"0", "1", "2"}
    assert {tuple(v) for v in seen.values()} == {tuple(seen["0"])} and seen["0"][0] == "3"


def test_a_failing_rank_stops_the_others():
    # rank 1 fails at once; rank 0 would sleep a minute (as if waiting in a collective)
    code = "import os, sys, time; time.sleep(60) if os.environ['RANK'] == '0' else sys.exit(3)"
    t0 = time.perf_counter()
    assert launch_local(["-c", code], 2) == 3
    assert time.perf_counter() - t0 < 30


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    ctx = setup("cpu")  # no WORLD_SIZE in the test environment: a single rank, no group
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.owns_group) == (0, 1, False, False)
