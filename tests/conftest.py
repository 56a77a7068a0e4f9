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
