"""Read a published parameter-golf record folder: its seed logs, its README's run command, its
submission.json. `golf import` puts them into MLflow; reproducing a folder needs the same facts.

A folder (records/track_10min_16mb/<date>_<name>/ upstream) holds README.md, submission.json and
the authors' own logs (train.log, train_seed<S>.log, #779's log_seed<S>.txt, ...). The README
gives the run as a shell command, `KEY=VALUE ... torchrun --standalone --nproc_per_node=8
train_gpt.py`, in a fenced code block.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from golf_core.logparse import LogParseError, LogSummary, parse_log_file

__all__ = ["RecordFolder", "RecordFolderError", "SeedLog", "claim_of", "read_record_folder", "readme_command"]

_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```|~~~)")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
LOG_SUFFIXES = (".log", ".txt")


class RecordFolderError(ValueError):
    """A folder that is not a readable record folder; the message is one line naming it."""


@dataclass(frozen=True)
class SeedLog:
    path: Path
    seed: int | None
    sha256: str  # of the file's bytes: the log's identity
    summary: LogSummary


@dataclass(frozen=True)
class RecordFolder:
    path: Path
    name: str
    logs: list[SeedLog]
    env: dict[str, str] = field(default_factory=dict)  # the README command's KEY=VALUE prefix
    launcher: dict[str, str] = field(default_factory=dict)  # torchrun's own flags, e.g. nproc_per_node
    submission: dict = field(default_factory=dict)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why it is not a seed log)


def _code_blocks(markdown: str) -> list[str]:
    blocks, cur = [], None
    for line in markdown.splitlines():
        if _FENCE.match(line):
            if cur is None:
                cur = []
            else:
                blocks.append("\n".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


def readme_command(markdown: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """(env, launcher flags) of the first `KEY=VALUE ... torchrun ...` command in the README's
    code blocks, or None when it has none. Backslash continuations are joined first."""
    for block in _code_blocks(markdown):
        joined = re.sub(r"\\\r?\n", " ", block)
        for line in joined.splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue  # an unbalanced quote in prose: not a command
            env: dict[str, str] = {}
            for i, w in enumerate(words):
                if w in ("env", "export"):
                    continue
                m = _ASSIGN.match(w)
                if m:
                    env[m.group(1)] = m.group(2)
                    continue
                if Path(w).name != "torchrun":
                    break
                launcher = {}
                for flag in words[i + 1:]:
                    if not flag.startswith("--"):
                        launcher["script"] = flag  # what torchrun runs (a path of the author's machine)
                        break
                    k, _, v = flag[2:].partition("=")
                    launcher[k] = v or "true"
                return env, launcher
    return None


def _seed_logs(folder: Path) -> tuple[list[SeedLog], list[tuple[Path, str]]]:
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in LOG_SUFFIXES)
    named = {p: int(m.group(1)) for p in candidates if (m := _SEED_IN_NAME.search(p.stem))}
    logs, skipped = [], []
    for p in candidates:
        if named and p not in named:
            # a folder that names its seed logs: the others are ablations or notes
            skipped.append((p, "not a seed log (its name carries no seed)"))
            continue
        try:
            summary = parse_log_file(p)
        except LogParseError as e:
            skipped.append((p, str(e).split(": ", 1)[-1]))
            continue
        seed = named.get(p, summary.seed)
        logs.append(SeedLog(p, seed, hashlib.sha256(p.read_bytes()).hexdigest(), summary))
    return logs, skipped


def read_record_folder(path: str | Path, require_logs: bool = True) -> RecordFolder:
    """Everything golf needs of a record folder; RecordFolderError when it is not a folder, its
    submission.json is not JSON, or (with `require_logs`: importing needs them, reproducing with
    given seeds does not) it holds no log with a score line."""
    folder = Path(path)
    if not folder.is_dir():
        raise RecordFolderError(f"{folder}: not a record folder (no such directory)")
    submission: dict = {}
    sub_path = folder / "submission.json"
    if sub_path.is_file():
        try:
            submission = json.loads(sub_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordFolderError(f"{sub_path}: not valid JSON ({e})".splitlines()[0]) from None
        if not isinstance(submission, dict):
            raise RecordFolderError(f"{sub_path}: expected a JSON object")
    env, launcher = {}, {}
    readme = folder / "README.md"
    if readme.is_file():
        cmd = readme_command(readme.read_text(encoding="utf-8", errors="replace"))
        if cmd:
            env, launcher = cmd
    logs, skipped = _seed_logs(folder)
    if not logs and require_logs:
        why = "; ".join(f"{p.name}: {r}" for p, r in skipped) or "no *.log or *.txt file"
        raise RecordFolderError(f"{folder}: no log with a score line ({why})")
    return RecordFolder(folder, folder.resolve().name, logs, env, launcher, submission, skipped)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def claim_of(submission: dict, source: str = "submission.json") -> dict | None:
    """What a submission.json claims, in the shape orchestrator.records.stats.claim_statistics
    takes: {"source", "val_bpb": {seed: bpb} | None, "mean", "std", "n"}; None when it states no
    val_bpb. Per-seed values from `seed_results` (the newest records) or `results.seeds` (#779's),
    the mean and std from `val_bpb`/`val_bpb_std` or `results.mean_val_bpb`/`std_val_bpb`."""
    results = submission.get("results") if isinstance(submission.get("results"), dict) else {}
    per_seed_src = submission.get("seed_results") or results.get("seeds") or {}
    per_seed = {}
    if isinstance(per_seed_src, dict):
        for k, row in per_seed_src.items():
            bpb = _num(row.get("val_bpb")) if isinstance(row, dict) else None
            if bpb is not None and str(k).lstrip("-").isdigit():
                per_seed[int(k)] = bpb
    mean = _num(submission.get("val_bpb"))
    std = _num(submission.get("val_bpb_std"))
    if mean is None:
        mean, std = _num(results.get("mean_val_bpb")), _num(results.get("std_val_bpb"))
    if mean is None and not per_seed:
        return None
    seeds = submission.get("seeds")
    n = len(per_seed) or (len(seeds) if isinstance(seeds, list) else None)
    return {"source": source, "val_bpb": per_seed or None, "mean": mean, "std": std, "n": n}
