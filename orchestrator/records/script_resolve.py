"""What `golf reproduce RECORD_DIR` (and `golf reproduce SPEC` for a script spec) will run,
resolved and printed before anything runs: a `ScriptReproduction`.

A record folder (README.md with the `KEY=VALUE ... torchrun ... train_gpt.py` command it ran,
submission.json, one log per seed, train_gpt.py) becomes an in-memory script spec:
- train.script = the folder (every file of it is the job's identity and travels with the job);
- train.env = the README command's env without what golf sets per job and worker (SEED, and
  DATA_PATH / TOKENIZER_PATH / RUN_ID, which name the author's machine), then `--set-env`;
  a README VOCAB_SIZE sets data.vocab_size (golf passes it on as VOCAB_SIZE);
- train.seeds = the seeds in the seed logs' names (else the log's own `seed:` line), or `--seeds`;
- train.gpus_per_job = the README's `--nproc_per_node`, or `--gpus-per-job`;
- data = `--data` / `--tokenizer`, else the README's DATA_PATH / TOKENIZER_PATH when relative
  (upstream runs from its repository root), else data/datasets/fineweb10B_sp<VOCAB>; always
  source fineweb: a reproduction never makes synthetic tokens in place of missing shards.
- the claim = submission.json (orchestrator.records.folder.claim_of), or `--claim`.
A folder without train_gpt.py or without a torchrun command is a one-line error
(RecordFolderError, exit 2). What runs then: orchestrator.records.script_record.
"""
from __future__ import annotations

from golf_core.errors import UserError
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.records.folder import RecordFolderError, claim_of, read_record_folder, readme_command
from orchestrator.records.pipeline import RecordSpecError

__all__ = ["ENTRY", "GOLF_SET", "ScriptReproduction", "parse_claim", "parse_seeds", "parse_set_env",
           "passed_env_line", "record_dir_reproduction", "record_env", "script_source_hint", "spec_reproduction"]

ENTRY = "train_gpt.py"
# what golf sets itself for every job (SEED) and on the worker (paths, the run's name): a README's
# values name the author's seed and machine
GOLF_SET = ("SEED", "DATA_PATH", "TOKENIZER_PATH", "RUN_ID")


@dataclass
class ScriptReproduction:
    """What `golf reproduce` resolved before anything runs."""

    sweep: Any  # orchestrator.spec.sweep.Sweep (a script spec, one env point)
    source: Path | None  # the record folder; None for a YAML spec
    dropped: dict[str, str] = field(default_factory=dict)  # README env golf sets itself
    set_env: dict[str, str] = field(default_factory=dict)  # --set-env
    seeds_from: str = "the spec"
    nproc_from: str = "the spec"
    data_from: str = "the spec"
    claim: dict | None = None  # record_folder.claim_of's shape

    def env(self) -> dict[str, str]:
        from orchestrator.spec.script import env_str

        return {k: env_str(v) for k, v in self.sweep.train.env.items()}

    def lines(self) -> list[str]:
        """The resolution, as printed before anything runs."""
        t = self.sweep.train
        env = self.env()
        out = [f"reproduce record folder {self.source}: its {ENTRY}" if self.source is not None else
               f"reproduce spec {self.sweep.name}: {t.script}"]
        shown = " ".join(f"{k}={_q(v)}" for k, v in sorted(env.items()))
        out.append(f"env: {shown or '(none)'}" + (f"  [--set-env {', '.join(sorted(self.set_env))}]"
                                                    if self.set_env else ""))
        out.append(f"command per seed: {shown + ' ' if shown else ''}SEED=<seed> VOCAB_SIZE={self.sweep.data.vocab_size} "
                   f"torchrun --standalone --nproc_per_node={t.gpus_per_job} {ENTRY}  "
                   f"(gpus per job from {self.nproc_from}; golf sets DATA_PATH, TOKENIZER_PATH, RUN_ID)")
        if self.dropped:
            out.append("not taken from README.md (golf sets them): "
                       + " ".join(f"{k}={_q(v)}" for k, v in self.dropped.items()))
        out.append(f"data: {self.sweep.data.path} (from {self.data_from})")
        out.append(f"seeds: {list(t.seeds)} (from {self.seeds_from})")
        out.append(f"claim: {_claim_words(self.claim)}")
        return out


def passed_env_line(pass_env=(), environ=None) -> str:
    """Which of this machine's variables the script sees besides golf's and the README's
    (workers.script_runner.base_env: a minimal base; credentials only by train.pass_env)."""
    import os

    from workers.script_runner import base_env

    names = sorted(base_env(dict(os.environ if environ is None else environ), tuple(pass_env)))
    return f"passes from this environment: {' '.join(names) or '(nothing)'}" + \
        (f"  [train.pass_env: {', '.join(pass_env)}]" if pass_env else "  (no credentials: train.pass_env names any)")


def _q(v: str) -> str:
    import shlex

    return shlex.quote(v)


def _claim_words(claim: dict | None) -> str:
    if claim is None:
        return "none (no test against a claim; give --claim)"
    per = claim.get("val_bpb") or {}
    if len(per) >= 2:
        vals = ", ".join(f"{s}: {v}" for s, v in sorted(per.items()))
        return f"val_bpb per seed {{{vals}}} ({claim['source']})"
    text = f"mean val_bpb {claim.get('mean') if claim.get('mean') is not None else next(iter(per.values()))}"
    if claim.get("std"):
        text += f", std {claim['std']}" + (f" over {claim['n']} seeds" if claim.get("n") else "")
    return f"{text} ({claim['source']})"

# ---------------------------------------------------------------------------------------------
# command-line values


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """`1337,42,2024` -> (1337, 42, 2024); ValueError (one line) otherwise."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise UserError(f"--seeds: a comma-separated list of non-negative integers (got {text!r})")
    return tuple(int(p) for p in parts)


def parse_set_env(items: list[str] | None) -> dict[str, str]:
    """[`KEY=VALUE`, ...] -> {KEY: VALUE}; ValueError (one line) for anything else."""
    from orchestrator.spec.script import ENV_NAME

    out: dict[str, str] = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not ENV_NAME.match(key):
            raise UserError(f"--set-env: expected KEY=VALUE with KEY an environment variable name (got {item!r})")
        out[key] = value
    return out


def parse_claim(text: str | None) -> dict | None:
    """`--claim`: a mean val_bpb (a number) or a submission.json (or a record folder holding one)."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        v = None
    if v is not None:
        if not (math.isfinite(v) and v > 0):
            raise UserError(f"--claim must be a positive val_bpb or a submission.json (got {text!r})")
        return {"source": "--claim", "val_bpb": None, "mean": v, "std": None, "n": None}
    p = Path(text)
    p = p / "submission.json" if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"--claim: {text}: neither a number nor a submission.json")
    import json

    try:
        sub = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"--claim: {p}: not valid JSON ({e})".splitlines()[0]) from None
    claim = claim_of(sub, str(p)) if isinstance(sub, dict) else None
    if claim is None:
        raise UserError(f"--claim: {p} states no val_bpb")
    return claim

# ---------------------------------------------------------------------------------------------
# resolving what runs


def _slug(name: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return ("reproduce-" + s)[:100].rstrip("-._") if s else "reproduce"


def _relative_ok(v: str | None) -> bool:
    if not v:
        return False
    p = PurePosixPath(v)
    return not p.is_absolute() and ".." not in p.parts and "$" not in v and not v.startswith("~")


def _data_section(data: str | None, tokenizer: str | None, vocab: int, env_hint: dict[str, str],
                  workspace: Path) -> tuple[dict, str]:
    """The spec's data section and where it came from."""
    out: dict[str, Any] = {"source": "fineweb", "vocab_size": vocab}
    if data is not None:
        out["path"], how = str((workspace / data).resolve()) if not Path(data).is_absolute() else data, "--data"
    elif _relative_ok(env_hint.get("DATA_PATH")):
        out["path"], how = str(PurePosixPath(env_hint["DATA_PATH"])), "README.md's DATA_PATH"
    else:
        out["path"], how = f"data/datasets/fineweb10B_sp{vocab}", "upstream's layout for this vocabulary"
    if tokenizer is not None:
        out["tokenizer_path"] = str((workspace / tokenizer).resolve()) if not Path(tokenizer).is_absolute() \
            else tokenizer
    elif data is None and _relative_ok(env_hint.get("TOKENIZER_PATH")):
        out["tokenizer_path"] = str(PurePosixPath(env_hint["TOKENIZER_PATH"]))
    out["external"] = any(Path(out[k]).is_absolute() for k in ("path", "tokenizer_path") if out.get(k))
    return out, how


def _vocab(env: dict[str, str], default: int = 1024) -> int:
    raw = env.pop("VOCAB_SIZE", None)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw.strip()):
        raise UserError(f"VOCAB_SIZE={raw!r} is not an integer")
    return int(raw)


def record_env(readme_env: dict[str, str], set_env: dict[str, str] | None = None
               ) -> tuple[dict[str, str], dict[str, str], int]:
    """(env, dropped, vocab_size) of a README command's env: what golf sets itself dropped
    (GOLF_SET), then `set_env` on top, VOCAB_SIZE taken out as the data's vocabulary (golf
    passes it on as VOCAB_SIZE; 1024 when the command has none)."""
    env = dict(readme_env)
    dropped = {k: env.pop(k) for k in GOLF_SET if k in env}
    env.update(set_env or {})
    return env, dropped, _vocab(env)


def script_source_hint(readme: str) -> str:
    """Where a README says its train_gpt.py comes from: the path its command runs, the pull
    requests and GitHub links it names."""
    from orchestrator.records.folder import readme_run

    where = []
    run = readme_run(readme) if readme else None
    if run is not None and run.launcher.get("script") and run.launcher["script"] != ENTRY:
        where.append(f"its command runs {run.launcher['script']}")
    prs = list(dict.fromkeys(re.findall(r"PR #(\d+)", readme)))[:3]
    if prs:
        where.append("it names " + ", ".join(f"https://github.com/openai/parameter-golf/pull/{n}" for n in prs))
    links = list(dict.fromkeys(re.findall(r"https://github\.com/[\w./#-]+", readme)))[:2]
    where += [f"it links {u}" for u in links]
    return ("the README says where to get it: " + "; ".join(where)) if where else "the README does not say where it comes from"


def _stage_with_script(folder: Path, script: Path, workspace: Path) -> Path:
    """A copy of the record folder with `script` as its train_gpt.py (under .golf/reproduce/ of
    the workspace): the job's identity is the folder's files, the given script included."""
    if not script.is_file():
        raise RecordFolderError(f"--script {script}: no such file")
    staged = workspace / ".golf" / "reproduce" / folder.resolve().name
    if staged.exists():
        shutil.rmtree(staged)  # ours: written here by an earlier --script run
    shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(ENTRY))
    shutil.copyfile(script, staged / ENTRY)
    return staged


def record_dir_reproduction(path: str | Path, *, seeds: tuple[int, ...] | None = None,
                            set_env: dict[str, str] | None = None, gpus_per_job: int | None = None,
                            data: str | None = None, tokenizer: str | None = None, claim: dict | None = None,
                            workspace: str | Path = ".", script: str | Path | None = None) -> ScriptReproduction:
    """The in-memory script spec of a record folder (see the module doc). RecordFolderError
    (one line) when it holds no train_gpt.py (and `script` gives none: the message says where
    the README says it comes from), no README torchrun command, or no seeds."""
    from orchestrator.spec.sweep import SpecError, sweep_from_dict

    folder = Path(path)
    workspace = Path(workspace).resolve()
    if not folder.is_dir():
        raise RecordFolderError(f"{folder}: not a record folder (no such directory)")
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8", errors="replace") if readme.is_file() else ""
    if script is not None:
        folder = _stage_with_script(folder, Path(script), workspace)
    elif not (folder / ENTRY).is_file():
        raise RecordFolderError(f"{folder}: no {ENTRY}; {script_source_hint(text)}; pass one with --script PATH")
    cmd = readme_command(text) if text else None
    if cmd is None:
        raise RecordFolderError(f"{folder}: {'README.md has' if readme.is_file() else 'no README.md, so'} no "
                                "`KEY=VALUE ... torchrun ... train_gpt.py` command in a code block")
    rf = read_record_folder(folder, require_logs=False)
    launcher = cmd[1]
    overrides = dict(set_env or {})
    env, dropped, vocab = record_env(cmd[0], overrides)
    if seeds is not None:
        seed_list, seeds_from = tuple(seeds), "--seeds"
    else:
        seed_list = tuple(sorted({log.seed for log in rf.logs if log.seed is not None}))
        seeds_from = "the seed logs: " + ", ".join(log.path.name for log in rf.logs if log.seed is not None)
        if not seed_list:
            raise RecordFolderError(f"{folder}: no seed log with a seed in its name or a `seed:` line; give --seeds")
    if gpus_per_job is not None:
        nproc, nproc_from = gpus_per_job, "--gpus-per-job"
    else:
        raw = launcher.get("nproc_per_node", "1")
        if not re.fullmatch(r"\d+", raw):
            raise RecordFolderError(f"{folder}: README.md's torchrun --nproc_per_node={raw} is not a number; "
                                    "give --gpus-per-job")
        nproc = int(raw)
        nproc_from = "README.md's --nproc_per_node" if "nproc_per_node" in launcher else "torchrun's default (1)"
    data_sec, data_from = _data_section(data, tokenizer, vocab, {**dropped, **overrides}, workspace)
    spec = {"name": _slug(rf.name), "description": f"golf reproduce {rf.name}: its train_gpt.py, its README's env",
            "data": data_sec,
            "train": {"script": str(folder.resolve()), "external": True, "seeds": list(seed_list),
                      "gpus_per_job": nproc, "env": env,
                      # the authors' own command runs as written; only what --set-env adds is checked
                      "env_unchecked": sorted(k for k in env if k not in overrides)}}
    try:
        sweep = sweep_from_dict(spec)  # SpecError (one line per problem): e.g. --set-env SEED with several seeds
    except SpecError as e:  # each line says which file (or flag) the bad value came from
        raise SpecError([_where(line, folder, seed_list, rf.logs if seeds is None else None, overrides)
                         for line in e.lines]) from None
    if claim is None:
        claim = claim_of(rf.submission, f"{rf.name}/submission.json") if rf.submission else None
    return ScriptReproduction(sweep, folder.resolve(), dropped, overrides, seeds_from, nproc_from, data_from, claim)


def _where(line: str, folder: Path, seed_list: tuple, logs, overrides: dict) -> str:
    """A spec error line of a record folder's reproduction, with the file its value came from."""
    m = re.match(r"train\.seeds(?:\.(\d+))?\b", line)
    if m:
        if logs is None:
            return f"{line} (from --seeds)"
        i = int(m.group(1)) if m.group(1) is not None else None
        seed = seed_list[i] if i is not None and i < len(seed_list) else None
        files = [log.path.name for log in logs if log.seed is not None and (seed is None or log.seed == seed)]
        return f"{line} (from {folder}/{files[0]})" if len(files) == 1 else \
            f"{line} (from the seed logs in {folder}: {', '.join(files)})"
    m = re.match(r"train\.env\.(\w+)", line)
    if m:
        return f"{line} (from {'--set-env' if m.group(1) in overrides else f'{folder}/README.md'})"
    return line


def spec_reproduction(sweep, *, seeds: tuple[int, ...] | None = None, set_env: dict[str, str] | None = None,
                      gpus_per_job: int | None = None, data: str | None = None, tokenizer: str | None = None,
                      claim: dict | None = None, workspace: str | Path = ".") -> ScriptReproduction:
    """A YAML script spec as a reproduction: one env point (a grid or a search picks a best-of,
    which a claim may not), the flags applied as for a record folder."""
    from orchestrator.spec.script import env_axes
    from orchestrator.spec.sweep import sweep_from_dict

    axes = env_axes(sweep.train)
    if axes or sweep.search.kind != "grid":
        raise RecordSpecError(f"train.env: a reproduction runs one env point; {sweep.name} searches "
                              f"{', '.join(axes) or sweep.search.kind} (sweep with `golf run`, then reproduce the point)")
    d = sweep.model_dump(mode="json", exclude_unset=True)  # a set eval/mixer section is an error
    d["train"]["env"] = {**d["train"].get("env", {}), **(set_env or {})}
    if seeds is not None:
        d["train"]["seeds"] = list(seeds)
    if gpus_per_job is not None:
        d["train"]["gpus_per_job"] = gpus_per_job
    data_from = "the spec"
    if data is not None or tokenizer is not None:
        ws = Path(workspace).resolve()
        old = d.get("data", {})
        sec, data_from = _data_section(data, tokenizer, sweep.data.vocab_size, {}, ws)
        sec.pop("source")  # the spec's own
        if data is None:
            sec["path"], data_from = sweep.data.path, "the spec"
        d["data"] = {**old, **sec, "external": True}
    new = sweep_from_dict(d)
    return ScriptReproduction(new, None, {}, dict(set_env or {}), "--seeds" if seeds else "the spec",
                              "--gpus-per-job" if gpus_per_job else "the spec", data_from, claim)
