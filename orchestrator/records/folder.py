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
from golf_core.errors import UserError

__all__ = ["ReadmeRun", "RecordFolder", "RecordFolderError", "SeedLog", "claim_of", "read_record_folder", "readme_command",
           "readme_run"]

_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)
_FENCE = re.compile(r"^\s*(```|~~~)")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
LOG_SUFFIXES = (".log", ".txt")


class RecordFolderError(UserError):
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


@dataclass(frozen=True)
class ReadmeRun:
    """The run command of a README: env (earlier `export`s, then the command's own KEY=VALUE
    prefix), the launcher's flags (`script` = what it runs), and the `for VAR in ...` loop around
    it, when there is one (e.g. ("SEED", ("314", "42", "0")))."""
    env: dict[str, str]
    launcher: dict[str, str]
    loop: tuple[str, tuple[str, ...]] | None = None
    how: str = "torchrun"  # the launcher as written: torchrun, uv run torchrun, python -m torch.distributed.run


_SEPARATORS = {";", "&&", "||", "|", "&", ";;"}
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
_BOOL_FLAGS = {"standalone", "no-python", "no_python", "module", "run-path", "run_path", "m"}


def _words(line: str) -> list[str] | None:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:
        return None  # an unbalanced quote in prose: not a command


def _commands(words: list[str]) -> list[list[str]]:
    out, cur = [], []
    for w in words:
        if w in _SEPARATORS:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(w)
    if cur:
        out.append(cur)
    return out


def _launcher_at(words: list[str], i: int) -> tuple[int, str] | None:
    """(index of the first launcher argument, how it was written) when words[i:] start a
    torchrun launch: `torchrun`, `uv run torchrun`, `python -m torch.distributed.run`."""
    how = []
    if words[i] == "uv" and i + 1 < len(words) and words[i + 1] == "run":
        how, i = ["uv run"], i + 2
        while i < len(words) and words[i].startswith("-"):  # uv's own flags (`uv run --no-sync torchrun`)
            i += 1
    if i >= len(words):
        return None
    name = Path(words[i]).name
    if name == "torchrun":
        return i + 1, " ".join(how + ["torchrun"])
    if re.fullmatch(r"python[0-9.]*", name) and words[i + 1:i + 2] == ["-m"] and \
            words[i + 2:i + 3] and words[i + 2] in ("torch.distributed.run", "torch.distributed.launch"):
        return i + 3, " ".join(how + [f"{name} -m {words[i + 2]}"])
    return None


def _launcher_flags(args: list[str]) -> dict[str, str]:
    launcher: dict[str, str] = {}
    i = 0
    while i < len(args):
        flag = args[i]
        if not flag.startswith("-"):
            launcher["script"] = flag  # what torchrun runs (a path of the author's machine)
            break
        k, eq, v = flag.lstrip("-").partition("=")
        if not eq and k not in _BOOL_FLAGS and i + 1 < len(args) and not args[i + 1].startswith("-") \
                and not args[i + 1].endswith(".py"):
            v, i = args[i + 1], i + 1  # `--nproc_per_node 8`
        launcher[k] = v or "true"
        i += 1
    return launcher


def readme_run(markdown: str) -> ReadmeRun | None:
    """The first torchrun command in the README's code blocks, read as a shell would: `\\`
    continuations joined, `export KEY=VALUE` (and bare assignments) on earlier lines of the block
    kept, `for SEED in 1 2 3; do ... done` loops seen through, `uv run torchrun` and `python -m
    torch.distributed.run` understood, heredoc bodies skipped. None when there is none."""
    for block in _code_blocks(markdown):
        joined = re.sub(r"\\\r?\n", " ", block)
        exported: dict[str, str] = {}
        loop: tuple[str, tuple[str, ...]] | None = None
        heredoc = None
        for line in joined.splitlines():
            if heredoc is not None:
                heredoc = None if line.strip() == heredoc else heredoc
                continue
            if m := _HEREDOC.search(line):
                heredoc = m.group(1)
            words = _words(line)
            if not words:
                continue
            for cmd in _commands(words):
                if cmd[0] == "do":
                    cmd = cmd[1:]
                if not cmd or cmd[0] == "done":
                    loop = None if cmd else loop
                    continue
                if cmd[0] == "for" and len(cmd) >= 3 and cmd[2] == "in":
                    loop = (cmd[1], tuple(cmd[3:]))
                    continue
                exporting = cmd[0] in ("export", "env")
                env: dict[str, str] = {}
                rest = cmd[1:] if exporting else cmd
                j = 0
                while j < len(rest) and (m := _ASSIGN.match(rest[j])):
                    env[m.group(1)] = m.group(2)
                    j += 1
                if j == len(rest):  # assignments only: they hold for the block's later lines
                    exported.update(env)
                    continue
                if rest[j] == "env":
                    j += 1
                    while j < len(rest) and (m := _ASSIGN.match(rest[j])):
                        env[m.group(1)] = m.group(2)
                        j += 1
                found = _launcher_at(rest, j) if j < len(rest) else None
                if found is None:
                    continue
                start, how = found
                return ReadmeRun({**exported, **env}, _launcher_flags(rest[start:]), loop, how)
    return None


def readme_command(markdown: str) -> tuple[dict[str, str], dict[str, str]] | None:
    """(env, launcher flags) of the README's run command (readme_run), or None."""
    run = readme_run(markdown)
    return None if run is None else (run.env, run.launcher)


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
