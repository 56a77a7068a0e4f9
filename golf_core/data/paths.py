"""Where golf may write: a relative path must stay inside its workspace after symlinks resolve.

`data/x` that is a symlink to `/somewhere/else` reads like a workspace path but is not; golf
writes (and, for its own synthetic data, deletes) only inside the workspace unless the user
said so explicitly (an absolute path on the command line, `data.external: true` in a spec).
"""
from __future__ import annotations

from pathlib import Path
from golf_core.errors import UserError


class OutsideWorkspaceError(UserError):
    """A path that leaves the workspace without the user saying so; one line."""


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether `path` (resolved, symlinks followed) lies in `root` (resolved)."""
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def check_inside(path: str | Path, root: str | Path, what: str, allow: str) -> Path:
    """`path` resolved against `root`; refused when it resolves outside `root`.

    `what` names the setting (e.g. "data.path data/x"), `allow` says how to allow it."""
    p = Path(path)
    full = (p if p.is_absolute() else Path(root) / p).resolve()
    if not full.is_relative_to(Path(root).resolve()):
        raise OutsideWorkspaceError(f"{what} resolves to {full}, outside the workspace {Path(root).resolve()} "
                                    f"(through a symlink); {allow}")
    return full
