"""`golf reproduce RECORD_DIR` (and `golf reproduce SPEC` for a script spec): run a record's own
train_gpt.py for its seeds and test what comes out against its claim and the best known score.

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
Everything is resolved and printed before anything runs; a folder without train_gpt.py or without
a torchrun command is a one-line error (RecordFolderError, exit 2).

Then the preset reproduce's path (orchestrator.records.reproduce): the plan through the driver as `golf
run` drives it (FINISHED jobs reused), per-seed results from the jobs' parsed logs (result.json
fetched back for reused runs), the statistics of orchestrator.records.stats (against the claim and
against the best known score), the folder (orchestrator.records.script_folder) and the statistics on the
sweep's parent MLflow run.
"""
from __future__ import annotations

from golf_core.errors import UserError
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from golf_core import rules
from orchestrator.records import stats as S
from orchestrator.records import write as R
from orchestrator.records.folder import RecordFolderError, claim_of, read_record_folder, readme_command
from orchestrator.records.stats import REPORT_ALPHAS, claim_statistics
from orchestrator.records.reproduce import (
    RecordSpecError, ReproduceError, ReproduceResult, _fetcher, _log_to_sweep, data_check,
)

__all__ = ["GOLF_SET", "ScriptReproduction", "ScriptSeed", "collect_script_seeds", "parse_claim", "parse_set_env",
           "parse_seeds", "record_dir_reproduction", "record_env", "record_from_report", "reproduce_script", "script_checks", "spec_reproduction"]

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


# ---------------------------------------------------------------------------------------------
# collecting results


@dataclass
class ScriptSeed:
    seed: int
    job: Any
    result: dict
    verdict: Any
    run_id: str | None
    state: str  # finished | reused
    log: bytes | None  # the job's own train.log, verbatim


def _log_bytes_fetcher(uri: str) -> Callable[[str], bytes | None]:
    from orchestrator.tracking import download_artifacts

    def fetch(run_id: str) -> bytes | None:
        dst = Path(tempfile.mkdtemp(prefix="golf-reproduce-"))
        try:
            return download_artifacts(uri, run_id, "train.log", dst).read_bytes()
        except Exception:  # noqa: BLE001 - reported as a missing log below
            return None
        finally:
            shutil.rmtree(dst, ignore_errors=True)
    return fetch


def collect_script_seeds(report, fetch: Callable[[str], dict | None] | None = None,
                         fetch_log: Callable[[str], bytes | None] | None = None) -> dict[int, ScriptSeed]:
    """Per seed: its script job's result (a reused run's result.json fetched back) and its own
    train.log (the worker's bytes, or a reused run's MLflow artifact). ReproduceError naming
    every job that did not finish, or whose log cannot be had."""
    problems, seeds = [], {}
    for out in report.outcomes.values():
        if out.job.kind != "script_train":
            continue
        if out.state not in ("finished", "reused"):
            problems.append(f"{out.job.name} {out.state}" + (f" ({out.reason})" if out.reason else ""))
            continue
        result = dict(out.result or {})
        if out.state == "reused" and fetch is not None and out.run_id:
            result = {**result, **(fetch(out.run_id) or {})}
        log = out.train_log
        if log is None and out.state == "reused" and fetch_log is not None and out.run_id:
            log = fetch_log(out.run_id)
        if log is None:
            problems.append(f"{out.job.name}: its train.log is not available (MLflow run {out.run_id})")
            continue
        if rules.as_number(result.get("val_bpb")) is None or rules.as_number(result.get("val_loss")) is None:
            problems.append(f"{out.job.name}: no val_bpb/val_loss score line in its train.log")
            continue
        seeds[out.job.seed] = ScriptSeed(out.job.seed, out.job, result, out.verdict, out.run_id, out.state, log)
    if problems:
        raise ReproduceError("the reproduction needs jobs that did not finish: " + "; ".join(problems))
    return seeds


def script_checks(run: ScriptSeed, tokenizer_name: str | None) -> dict[str, dict]:
    """The rules golf can judge from a script job's log and files. The script scores itself, so
    the eval-time legality checks (C1-C4) are not measured: an informational row says so."""
    r = run.result
    checks: dict[str, dict] = {}
    size = rules.artifact_size(r.get("artifact_bytes"))
    checks["artifact_bytes"] = dict(size.as_dict(), passed=size.passed is True,
                                    detail=size.detail + f"; from the {r.get('artifact_bytes_source', 'log')}")
    cap = run.job.max_wallclock_seconds
    spent = rules.train_time(r.get("train_time_s"), cap, step_avg_ms=r.get("step_avg_ms"), track_cap_s=rules.TRAIN_CAP_S)
    checks["train_time"] = dict(spent.as_dict(), passed=spent.passed is True)
    ev = rules.eval_time(r.get("eval_time_s"))
    checks["eval_time"] = dict(ev.as_dict(), detail=ev.detail + ("" if ev.passed is not None else
                                                                 ": the log states no total eval time"))
    v = run.verdict
    bad = v is not None and not v.valid
    checks["valid"] = {"passed": not bad, "value": not bad,
                       "detail": v.reason if bad else "a finite score line, exit 0"}
    ws = r.get("world_size")
    ok_ws = ws == rules.TRACK_WORLD_SIZE
    checks["hardware"] = {"passed": None if ok_ws else False, "value": f"{ws} rank{'s' if ws != 1 else ''}",
                          "detail": f"the track trains on {rules.TRACK_WORLD_SIZE}x{rules.TRACK_GPU} SXM"
                                    + ("; the GPU model is not recorded by script jobs" if ok_ws else "")}
    checks["eval_audit"] = {"passed": None, "value": "not audited",
                            "detail": "the script scores itself; golf's C1-C4 audit covers golf's own evaluation"}
    if tokenizer_name is not None:
        checks["data"] = data_check(tokenizer_name)
    return checks


# ---------------------------------------------------------------------------------------------
# the flow


@dataclass
class ScriptReproduceResult(ReproduceResult):
    claim_stats: dict | None = None
    resolution: ScriptReproduction | None = None


def reproduce_script(rep: ScriptReproduction, *, name: str | None = None, out: str | Path = R.TRACK_DIR,
                     date: str | None = None, best_bpb: float | None = None, best_loss: float | None = None,
                     alpha: float = S.ALPHA, author: str = "", github_id: str = "", tracking_uri: str | None = None,
                     work_dir: str | Path = ".golf", workspace: str | Path = ".", run_fn: Callable | None = None,
                     ray: dict | None = None,
                     say: Callable[[str], None] = print) -> ScriptReproduceResult:
    """Run `rep`'s seeds as script jobs, test them, write the folder under `out`.

    run_fn: as orchestrator.records.reproduce.reproduce's. Input errors raise ValueError before
    anything runs; jobs that fail raise ReproduceError after the run."""
    from orchestrator.plan.build import build_plan
    from orchestrator.run.start import prepare_sweep, ray_runner
    from orchestrator.tracking import redact

    workspace = Path(workspace).resolve()
    sweep = rep.sweep
    source_name = rep.source.name if rep.source is not None else sweep.name
    name = name or (re.sub(r"^\d{4}-\d{2}-\d{2}_", "", source_name) + "_reproduced")
    date = date or datetime.now(timezone.utc).date().isoformat()
    dest = (Path(out) if Path(out).is_absolute() else workspace / out) / R.folder_name(date, name)
    if rep.source is not None and dest.resolve() == Path(rep.source).resolve():
        # the output's README.md, submission.json and logs would replace the record's own
        raise UserError(f"{dest}: is the record folder being reproduced; give another --name, --date or --out")
    if best_bpb is None and best_loss is None:
        best_bpb = S.DEFAULT_BEST_BPB
    for flag, v in (("--best-bpb", best_bpb), ("--best-loss", best_loss)):
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"{flag} must be a positive number (got {v})")
    if not (math.isfinite(alpha) and 0 < alpha < 1):
        raise UserError(f"--alpha must lie in (0, 1) (got {alpha})")
    for line in rep.lines():  # what will run, before anything does
        say(line)
    say(passed_env_line(sweep.train.pass_env))
    plan = build_plan(sweep, workspace)
    run = prepare_sweep(plan, workspace, tracking_uri=tracking_uri, work_dir=work_dir, say=say,
                        artifact_roots=[workspace], warn_synthetic=True)
    ddir, tok, work, tracker = run.data_dir, run.tokenizer, run.work, run.tracker
    say(f"{len(plan.jobs)} script jobs; tracking {redact(run.uri)}")
    t0 = time.time()
    try:
        report = (run_fn or ray_runner(**({"say": say} | (ray or {})), tokenizer=tok))(plan, tracker, ddir, work)
        res = record_from_report(rep, plan, report, run, name=name, out=out, date=date, best_bpb=best_bpb,
                                 best_loss=best_loss, alpha=alpha, author=author, github_id=github_id,
                                 workspace=workspace)
    finally:
        run.close(say)
    say(f"wrote {res.folder} in {time.time() - t0:.1f} s")
    return res


def record_from_report(rep: ScriptReproduction, plan, report, run, *, name: str, out: str | Path, date: str,
                       best_bpb: float | None, best_loss: float | None, alpha: float = S.ALPHA, author: str = "",
                       github_id: str = "", workspace: str | Path = ".",
                       log_sweep: bool = True) -> ScriptReproduceResult:
    """The statistics and the record folder of `rep` from the script jobs a run finished: what
    `golf reproduce` does after its seeds ran, and what a staged sweep's `reproduce: true` stage
    does with its jobs (`report` holds only the reproduced configuration's jobs). `run` is
    orchestrator.run.start.prepare_sweep's (its tracking URI, data dir, tokenizer and tracker).
    ReproduceError when a seed did not finish or has no score line."""
    from golf_core.data.shards import find_tokenizer
    from orchestrator.records.script_folder import write_script_record_folder

    workspace = Path(workspace).resolve()
    if best_bpb is None and best_loss is None:
        best_bpb = S.DEFAULT_BEST_BPB
    seeds = collect_script_seeds(report, _fetcher(run.uri), _log_bytes_fetcher(run.uri))
    tok_name = find_tokenizer(run.data_dir, run.tokenizer).name
    per_check = {s: script_checks(r, tok_name) for s, r in seeds.items()}
    compliance = S.merge_compliance(per_check)
    bpb = {s: float(r.result["val_bpb"]) for s, r in seeds.items()}
    loss = {s: float(r.result["val_loss"]) for s, r in seeds.items()}
    stats = S.record_statistics(bpb, loss, best_bpb=best_bpb, best_loss=best_loss, alpha=alpha,
                                report_alphas=REPORT_ALPHAS)
    claim_stats = claim_statistics(bpb, rep.claim, alpha=alpha) if rep.claim is not None else None
    ref = next(iter(seeds.values())).job.script
    bundle_root, entry = Path(ref.path), ref.entry
    folder = write_script_record_folder(
        out if Path(out).is_absolute() else workspace / out, date, name, rep, seeds, stats, claim_stats,
        compliance, plan, bundle_root, entry, author=author, github_id=github_id)
    ok = S.submittable(stats, compliance)
    sweep_run_id = None
    if log_sweep:
        metrics, tags = {}, {}
        if claim_stats is not None:
            metrics = {"claim_val_bpb_mean": claim_stats["claim_val_bpb_mean"],
                       "claim_delta_bpb": claim_stats["delta_bpb"], "claim_p_value": claim_stats["p_value"],
                       "claim_t_stat": claim_stats["t_stat"]}
            tags["golf.claim_verdict"] = claim_stats["verdict"]
            tags.update({f"golf.claim_verdict.{k.replace('<', '_')}": v for k, v in claim_stats["verdict_at"].items()})
        _log_to_sweep(run.tracker, stats, compliance, ok, folder, metrics, tags)
        sweep_run_id = run.tracker.sweep.wait_run_id(30) if getattr(run.tracker, "sweep", None) is not None else None
    code_bytes = (folder / ENTRY).stat().st_size
    return ScriptReproduceResult(folder, stats, compliance, seeds, code_bytes, ok, {}, sweep_run_id,
                                 claim_stats=claim_stats, resolution=rep)
