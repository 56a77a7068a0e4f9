"""Moving a job's output directory between nodes: a dict {file name: bytes}.

A job's outputs (train: model.ptz, artifact.json, result.json, train.log; eval: result.json,
token_stats.npz) go back to the driver as bytes through Ray's object store, so a dependent job
on another node gets them without a shared filesystem; the driver also logs them to the MLflow
artifact store, where a later sweep (a resume) fetches them.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["EVAL_FILES", "TRAIN_FILES", "pack_dir", "unpack_to", "work_root"]

# what each job kind's worker returns (and orchestrator.kinds fetches again for a reuse)
EVAL_FILES = ("result.json", "token_stats.npz")
# train.log too: a record folder ships every seed's own log verbatim (an MLflow artifact)
TRAIN_FILES = ("model.ptz", "artifact.json", "result.json", "train.log")


def pack_dir(path: str | Path, names: tuple[str, ...] | None = None) -> dict[str, bytes]:
    """The regular files directly under `path` (or only `names`), as {name: bytes}."""
    root = Path(path)
    out: dict[str, bytes] = {}
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if p.is_file() and (names is None or p.name in names):
            out[p.name] = p.read_bytes()
    return out


def unpack_to(files: dict[str, bytes], path: str | Path) -> Path:
    """Write `files` under `path` (created); atomic per file so a reader never sees half a file."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"output file name {name!r} is not a plain file name")
        tmp = root / f".{name}.tmp{os.getpid()}"
        tmp.write_bytes(blob)
        tmp.replace(root / name)
    return root


def work_root(preferred: str | None) -> Path:
    """A writable per-node work directory: the driver's choice if this node can write it."""
    for cand in (preferred, os.path.join(tempfile.gettempdir(), "golf-work")):
        if not cand:
            continue
        try:
            p = Path(cand)
            p.mkdir(parents=True, exist_ok=True)
            if os.access(p, os.W_OK):
                return p
        except OSError:
            continue
    raise OSError("no writable work directory for golf jobs")
