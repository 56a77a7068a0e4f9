"""golf_core: the science of parameter golf.

Data, models, Muon, wallclock-capped training, the 16,000,000-byte artifact, exact
bits-per-byte evaluation, the n-gram mixer, score-first TTT and the compliance audit.

This package never imports ray, mlflow, workers or orchestrator (tests/test_layering.py).
It runs alone: `python -m golf_core.train ...` or under `torchrun`.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__all__ = ["ARTIFACT_LIMIT_BYTES", "code_version", "source_files"]

# The challenge's limit, decimal bytes (not MiB): code bytes + compressed model bytes.
ARTIFACT_LIMIT_BYTES = 16_000_000

_ROOT = Path(__file__).resolve().parent


def source_files() -> list[Path]:
    """The golf_core sources, sorted: what a job's identity and the code-bytes bound cover."""
    return sorted(p for p in _ROOT.rglob("*.py") if "__pycache__" not in p.parts)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Content hash of golf_core's sources (12 hex chars).

    Part of every job identity: a change to the science invalidates cached results,
    while a change to orchestration code does not.
    """
    h = hashlib.sha256()
    for p in source_files():
        h.update(p.relative_to(_ROOT).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]
