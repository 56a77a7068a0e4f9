"""golf_core: the science of parameter golf.

Data, models, Muon, wallclock-capped training, the 16,000,000-byte artifact, exact
bits-per-byte evaluation, the n-gram mixer, score-first TTT and the compliance audit.

This package never imports ray, mlflow, workers or orchestrator (tests/test_layering.py).
It runs alone: `python -m golf_core.train ...` or under `torchrun`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

__all__ = ["ARTIFACT_LIMIT_BYTES", "code_version", "source_files"]

from golf_core.rules import ARTIFACT_LIMIT_BYTES  # noqa: E402  (the track's rules live in golf_core.rules)

_ROOT = Path(__file__).resolve().parent


def source_files() -> list[Path]:
    """The golf_core sources, sorted: what a job's identity and the code-bytes bound cover."""
    return sorted(p for p in _ROOT.rglob("*.py") if "__pycache__" not in p.parts)


@lru_cache(maxsize=None)
def code_version(kind: str | None = None) -> str:
    """Version of golf_core's code (12 hex chars) over normalized sources (golf_core.version).

    With a job kind ("train", "eval", "mix"): only the modules that kind imports, so a job's
    identity changes when the code it runs changes, and not for a comment, a docstring or a
    module it never imports. Without one: the whole package (what an exported script embeds).
    """
    from golf_core import version

    if kind is not None:
        return version.kind_version(kind)
    return version.version_of([_module_name(p) for p in source_files()])


def _module_name(path: Path) -> str:
    rel = path.relative_to(_ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)
