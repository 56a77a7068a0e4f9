"""Shared test setup. Fixtures that start real services live in tests/fixtures/."""
from __future__ import annotations

import os

# Two cores: keep torch from oversubscribing them when tests run processes side by side.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import torch  # noqa: E402

torch.set_num_threads(1)

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.mlflow_server",
    "tests.fixtures.ray_cluster",
    "tests.fixtures.reference",
]

# The longest test files, longest first: seconds per file in a full `-n 2` run on 2 loaded cores
# (pytest --durations, 2026-12-07). `.ci/run` runs `-n 2 --dist loadfile`: each file goes whole
# to whichever test process asks next, in collection order (pyproject turns off xdist's default
# reorder, which sorted files with FEW tests, these end-to-end files among them, to the END). The
# longest first and the many short files after let both processes end at about the same time,
# instead of one starting a 4-minute sweep when the other has nothing left to do.
LONGEST_FIRST = (
    "tests/orchestrator/run/test_prune_budget.py",  # ~320 s
    "tests/orchestrator/run/test_prune_stages.py",  # ~290 s
    "tests/orchestrator/run/test_script_jobs.py",  # ~280 s
    "tests/orchestrator/run/test_prune.py",  # ~265 s
    "tests/golf_core/test_export.py",  # ~260 s
    "tests/orchestrator/tracking/test_summary.py",  # ~235 s (the smoke sweep)
    "tests/orchestrator/run/test_driver.py",  # ~230 s
    "tests/golf_core/train/test_accel.py",  # ~180 s
    "tests/workers/test_multinode.py",  # ~180 s
    "tests/orchestrator/tracking/test_recovery.py",  # ~150 s
    "tests/orchestrator/run/test_driver_resume.py",  # ~115 s
    "tests/test_gpu_check.py",  # ~100 s
    "tests/orchestrator/run/test_script_optuna.py",  # ~90 s
)


def pytest_collection_modifyitems(session, config, items):
    """Longest files first, then the other files with end-to-end (`slow`) tests, then the rest;
    a file's own tests keep their order."""
    rank = {f: i for i, f in enumerate(LONGEST_FIRST)}
    slow_files = {item.nodeid.split("::", 1)[0] for item in items if item.get_closest_marker("slow")}

    def key(item):
        f = item.nodeid.split("::", 1)[0]
        return (0, rank[f]) if f in rank else (1, 0) if f in slow_files else (2, 0)

    items.sort(key=key)  # stable: files stay whole, collection order within each group
