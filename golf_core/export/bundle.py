"""What an exported train_gpt.py carries: the golf_core modules a training run and its
evaluation import, and nothing else.

The set is found statically (golf_core.version's import walk from the train and eval entry
points) plus golf_core.envvars (the script's environment interface). golf_core.export itself is
tooling: the trainer reaches it only to estimate the script size when the caller does not give
one, and the exported script always gives its own. The CLI, the downloader, synthetic data and
the mix grids are never reached, so they are not shipped (their bytes would count against the
16,000,000-byte artifact).
"""
from __future__ import annotations

from pathlib import Path

from golf_core import version

__all__ = ["RUNTIME_KINDS", "bundle_versions", "runtime_modules", "runtime_sources"]

RUNTIME_KINDS = ("train", "eval")
_EXTRA = ("golf_core.envvars",)
_TOOLING = "golf_core.export"


def runtime_modules() -> tuple[str, ...]:
    mods: set[str] = set(_EXTRA)
    for kind in RUNTIME_KINDS:
        mods.update(version.kind_modules(kind))
    return tuple(sorted(m for m in mods if m != _TOOLING and not m.startswith(_TOOLING + ".")))


def _relpath(module: str) -> str:
    path = version._path_of(module)
    return path.relative_to(version._ROOT.parent).as_posix()


def runtime_sources() -> dict[str, str]:
    """{"golf_core/train/loop.py": source text, ...} for every runtime module, verbatim."""
    root = version._ROOT.parent
    rels = [_relpath(m) for m in runtime_modules()]
    return {rel: (root / rel).read_text(encoding="utf-8") for rel in rels}


def bundle_versions(modules: tuple[str, ...]) -> dict[str, str]:
    """The code version of each runtime kind over the bundled modules: what
    golf_core.code_version(kind) returns when golf_core is imported from the bundle."""
    have = set(modules)
    return {kind: version.version_of([m for m in version.kind_modules(kind) if m in have])
            for kind in RUNTIME_KINDS}


def source_root() -> Path:
    return version._ROOT.parent
