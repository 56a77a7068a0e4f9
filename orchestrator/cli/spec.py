"""`golf validate SPEC...`, `golf schema`, `golf plan SPEC`: look at a sweep before running it.

Nothing here starts Ray or trains; `plan` only asks MLflow which identities are FINISHED
(through orchestrator.tracking.finished_identities) and degrades to "assuming nothing done"
when the tracking module or server is not there.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import golf_core
from orchestrator.spec.sweep import Sweep, SpecError, load_sweep, sweep_schema
from orchestrator import kinds

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # what `golf run` uses in the working directory


def register(sub) -> None:
    p = sub.add_parser("validate", help="check spec files; print job counts or one line per problem")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of spec files (for editor autocompletion)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("plan", help="expand a spec into jobs: counts, what MLflow has finished, GPU-hours")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--tracking-uri", default=None,
                   help=f"MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else {DEFAULT_TRACKING_URI})")
    p.add_argument("--workspace", default=".", help="directory relative data paths resolve against")
    p.add_argument("--jobs", action="store_true", help="also list every job")
    p.add_argument("--gpu-mem-gib", type=float, default=None,
                   help="GPU memory per rank of the nodes, GiB (default: the spec's limits.gpu_mem_gib, else 80)")
    p.set_defaults(func=cmd_plan)


def _load(path: str) -> Sweep | None:
    """The sweep, or None after printing each problem as `SPEC: field.path: message`."""
    try:
        return load_sweep(path)
    except SpecError as e:
        for line in e.lines:
            print(f"{path}: {line}", file=sys.stderr)
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
    return None


def _stage_words(outline, budget) -> str:
    """`screen 6 x 1 seed = 6 jobs; confirm at most 3 x 2 seeds = 6 jobs; worst case ... GPU-h; budget ...`"""
    parts = [f"{o.name} {'' if o.exact else 'at most '}{o.configurations} configuration(s) x {o.seeds} "
             f"seed(s) = {o.jobs} jobs" for o in outline]
    worst = [o.worst_gpu_hours for o in outline]
    line = "; ".join(parts) + ("; worst case " + (f"{_hours(sum(worst))} GPU-h" if None not in worst else
                                                  "unknown (a stage has no training cap)"))
    if budget is not None:
        line += f"; budget {budget.gpu_hours:g} GPU-h"
        if None not in worst:
            line += " (fits)" if sum(worst) <= budget.gpu_hours else " (the sweep stops starting jobs at it)"
    return line


def _counts_line(sweep: Sweep) -> str:
    if sweep.stages:  # what each stage runs, not the unstaged grid
        from orchestrator.plan.stages import stage_outline

        return f"{len(sweep.stages)} stages: " + _stage_words(stage_outline(sweep), sweep.budget)
    c = sweep.counts()
    if sweep.is_script:
        how = f"({sweep.train.script}, torchrun --nproc_per_node={sweep.train.gpus_per_job})"
        if sweep.search.kind == "optuna":
            return (f"optuna: {sweep.search.n} trials x {len(sweep.train.seeds)} seeds = up to "
                    f"{c['script_train']} script_train jobs {how}")
        return f"{c['script_train']} script jobs {how}"
    line = f"{c['train']} train, {c['eval']} eval, {c['mix']} mix jobs"
    if sweep.search.kind == "optuna":
        line += f" (optuna: {sweep.search.n} trials per study)"
    return line


def cmd_validate(args: argparse.Namespace) -> int:
    rc = 0
    for path in args.specs:
        sweep = _load(path)
        if sweep is None:
            rc = 2
            continue
        prefix = f"{path}: " if len(args.specs) > 1 else ""
        print(f"{prefix}ok: {_counts_line(sweep)}")
    return rc


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(sweep_schema(), indent=2))
    return 0


# ---------------------------------------------------------------------------------------------
# MLflow: what is already finished


@contextmanager
def _quick_http():
    """MLflow's HTTP client retries for minutes by default; a plan should answer in seconds."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _reachable(uri: str) -> str | None:
    """None when the store can be asked; else why not (one phrase)."""
    u = urlparse(uri)
    if u.scheme in ("http", "https"):
        port = u.port or (443 if u.scheme == "https" else 80)
        try:
            with socket.create_connection((u.hostname or "localhost", port), timeout=2):
                return None
        except OSError as e:
            return f"unreachable ({u.hostname}:{port}: {e.strerror or e})"
    if u.scheme == "sqlite":
        db = uri.split(":///", 1)[-1] if ":///" in uri else ""
        if db and not Path(db).exists():
            return f"no store at {db} yet"
    return None


def _resolve_uri(uri: str | None) -> str:
    """The URI `golf run` would use: orchestrator.tracking's rule when present."""
    try:
        return importlib.import_module("orchestrator.tracking").resolve_tracking_uri(uri)
    except (ImportError, AttributeError):
        return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def finished(tracking_uri: str, experiment: str) -> tuple[set[str], str]:
    """(identities MLflow holds as FINISHED, a one-line status for the user). A store file that
    is not a database is the user's error (TrackingStoreError: exit 2), not "nothing done"."""
    tracking = importlib.import_module("orchestrator.tracking")
    tracking.check_store(tracking_uri)
    shown = tracking.redact(tracking_uri)  # never print the URI's credentials
    why = _reachable(tracking_uri)
    if why:
        return set(), f"MLflow {shown}: {why}, assuming nothing done"
    try:
        query = tracking.finished_identities
    except (ImportError, AttributeError) as e:
        return set(), f"MLflow: orchestrator.tracking.finished_identities unavailable ({e}), assuming nothing done"
    try:
        with _quick_http():
            done = set(query(tracking_uri, experiment))
    except Exception as e:  # noqa: BLE001 - any tracking failure only means "nothing known"
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        return set(), f"MLflow {shown}: unreachable ({tracking.redact(msg)}), assuming nothing done"
    return done, f"MLflow {shown}: {len(done)} finished runs in experiment {experiment!r}"


# ---------------------------------------------------------------------------------------------
# plan


def _mode(job) -> str:
    return kinds.of(job).label(job)


def _hours(h: float) -> str:
    return f"{h:,.2f}" if h >= 0.01 or h == 0 else f"{h:.4f}"


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _gpus(job) -> str:
    """GPUs a job asks for, from the spec (`gpus_per_job`): one per rank. A job whose preset
    pins `device: cpu` runs on CPUs instead: shown as "1 (cpu)", and it costs no GPU-hours."""
    return str(job.gpus) if job.gpus else f"{job.ranks} (cpu)"


def _study_sample(plan) -> list:
    """An optuna script sweep's jobs for one trial at the low end of its space (what one trial
    costs: estimates and the shared env)."""
    st = plan.study
    return st.jobs(0, {k: (d["choices"][0] if "choices" in d else float(d["low"])) for k, d in st.space.items()})


def _study_done(uri: str, experiment: str, study: str) -> int:
    """FINISHED runs of the study in MLflow (0 when the store cannot be asked: `finished` said why)."""
    if _reachable(uri):
        return 0
    try:
        with _quick_http():
            return len(importlib.import_module("orchestrator.tracking").study_runs(uri, experiment, study))
    except Exception:  # noqa: BLE001 - nothing known: assume nothing done
        return 0


def _script_lines(console, plan, staged: bool = False) -> None:
    """A script sweep: what runs, and the env every job shares (the varying part is in the names)."""
    jobs = plan.by_kind("script_train") or (_study_sample(plan) if plan.study is not None else [])
    if not jobs:
        return
    s = jobs[0].script
    envs = [j.env for j in jobs]
    searched = set(plan.study.space) if plan.study is not None else set()
    common = {k: v for k, v in envs[0].items() if all(e.get(k) == v for e in envs) and k != "SEED"
              and k not in searched}
    cap = jobs[0].max_wallclock_seconds
    console.print(f"script {s.path + ('' if s.folder else '/' + s.entry)} ({s.files} file(s), sha256 "
                  f"{s.sha256[:12]}): torchrun --standalone --nproc_per_node={jobs[0].ranks} {s.entry}")
    console.print("env " + " ".join(f"{k}={v}" for k, v in common.items()) +
                  "  (+ SEED, DATA_PATH, TOKENIZER_PATH, RUN_ID per job)")
    if not staged:  # a staged sweep's caps are its stages' (the stages table)
        console.print(f"GPU-hours from the cap: {cap:g} s per job" if cap else
                      "no MAX_WALLCLOCK_SECONDS: estimates assume the rules' 600 s per job")
    st = plan.study
    if st is not None:
        space = ", ".join(f"{k} in {{{', '.join(d['choices'])}}}" if "choices" in d else
                          f"{k} in [{d['low']:g}, {d['high']:g}]{' log' if d.get('log') else ''}"
                          for k, d in st.space.items())
        console.print(f"optuna (TPE, seed {st.seed}, minimizing the parsed val_bpb): {st.n} trials x "
                      f"{len(st.seeds)} seeds = up to {st.n * len(st.seeds)} script_train jobs; {space}; "
                      f"study {st.identity[:12]}")


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from orchestrator.plan.datasets import resolve_data_dir
    from orchestrator.plan.estimate import DEFAULT_GPU_MEM_GIB, GIB, estimate_plan, plan_memory, val_tokens
    from orchestrator.plan.build import KINDS, build_plan, data_dir

    sweep = _load(args.spec)
    if sweep is None:
        return 2
    plan = build_plan(sweep, args.workspace)
    # a data path that leaves the workspace through a symlink: refused here as by `golf run`
    resolve_data_dir(plan.data, Path(args.workspace), sweep.data.external)
    # GPU memory per rank: refuse before anything else a train job that cannot fit the node
    cap_gib = args.gpu_mem_gib or sweep.limits.gpu_mem_gib or DEFAULT_GPU_MEM_GIB
    if args.gpu_mem_gib is not None and args.gpu_mem_gib <= 0:
        print(f"--gpu-mem-gib: must be > 0 (got {args.gpu_mem_gib})", file=sys.stderr)
        return 2
    memory = plan_memory(plan)
    for name, ranks, mem in memory:
        if mem.total > cap_gib * GIB:
            print(f"{args.spec}: {name}: estimated {mem.total / GIB:.1f} GiB per rank does not fit "
                  f"{cap_gib:g} GiB of GPU memory ({mem.line()})", file=sys.stderr)
            return 2
    uri = _resolve_uri(args.tracking_uri)
    done, status = finished(uri, sweep.name)
    tokens = val_tokens(plan, args.workspace)
    est = estimate_plan(plan, args.workspace, tokens)

    console = Console(width=None if sys.stdout.isatty() else 140, highlight=False)
    root = data_dir(plan, args.workspace)
    has_shards = root.is_dir() and any(root.glob("fineweb_val_*.bin"))
    if has_shards:
        data_note = f"{tokens:,} val tokens"
    elif plan.data.source == "fineweb":
        from golf_core.data.fineweb import download_command

        data_note = (f"no shards yet: download them with `{download_command(plan.data.path, plan.data.vocab_size)}`; "
                     f"estimates assume {tokens:,} val tokens")
    else:
        data_note = f"no shards yet: `golf run` makes synthetic data ({tokens:,} val tokens)"
    console.print(f"sweep {plan.sweep_name}  identity {plan.sweep_identity[:12]}  "
                  f"code {golf_core.code_version()}  retries {plan.retries}")
    console.print(f"data {plan.data.path} ({data_note}), identity {plan.data_identity[:12]}")
    console.print(status)
    if sweep.is_script:
        _script_lines(console, plan, staged=bool(sweep.stages))
    if sweep.stages:
        return _staged_plan(console, sweep, args.workspace)

    n_jobs = f"up to {plan.counts()['script_train']}" if plan.study is not None else str(len(plan.jobs))
    table = Table(title=f"{n_jobs} jobs ({sweep.search.kind} search)")
    for col in ("kind", "jobs", "finished", "to run", "ranks", "GPUs", "GPU-h to run", "GPU-h all", "time to run"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    total_todo = total_all = secs_todo = 0.0
    for kind in KINDS:
        jobs = plan.by_kind(kind)
        if not jobs:
            continue
        todo = [j.identity for j in jobs if j.identity not in done]
        h_todo, h_all = est.total_gpu_hours(todo), est.total_gpu_hours([j.identity for j in jobs])
        s_todo = sum(est.seconds[i] for i in todo)
        total_todo, total_all, secs_todo = total_todo + h_todo, total_all + h_all, secs_todo + s_todo
        ranks = sorted({j.ranks for j in jobs})
        gpus = sorted({_gpus(j) for j in jobs})
        table.add_row(kind, str(len(jobs)), str(len(jobs) - len(todo)), str(len(todo)),
                      "/".join(map(str, ranks)), "/".join(gpus), _hours(h_todo), _hours(h_all),
                      _duration(s_todo))
        # a mix row: its modes, which part of the sweep is which (other kinds have one label)
        modes: dict[str, list] = {}
        for j in jobs:
            modes.setdefault(_mode(j), []).append(j)
        for mode, mj in modes.items() if len(modes) > 1 else ():
            n_done = sum(j.identity in done for j in mj)
            table.add_row(f"  {mode}", str(len(mj)), str(n_done), str(len(mj) - n_done), "", "", "", "", "",
                          style="dim")
    if plan.jobs:
        table.add_row("all", str(len(plan.jobs)), str(sum(j.identity in done for j in plan.jobs)),
                      str(sum(j.identity not in done for j in plan.jobs)), "", "", _hours(total_todo),
                      _hours(total_all), _duration(secs_todo), style="bold")
    if plan.study is not None:  # no jobs before it runs: one trial's estimate times the most it runs
        from dataclasses import replace

        sample = _study_sample(plan)
        one = estimate_plan(replace(plan, jobs=tuple(sample)), args.workspace, tokens)
        n_all = plan.study.n * len(plan.study.seeds)
        n_done = min(n_all, _study_done(uri, sweep.name, plan.study.identity))
        s_job, h_job = one.seconds[sample[0].identity], one.gpu_hours[sample[0].identity]
        total_todo, total_all = h_job * (n_all - n_done), h_job * n_all
        table.add_row("script_train (optuna)", f"up to {n_all}", str(n_done), str(n_all - n_done),
                      str(sample[0].ranks), _gpus(sample[0]), _hours(total_todo), _hours(total_all),
                      _duration(s_job * (n_all - n_done)), style="bold")
    console.print(table)
    _spend_lines(console, plan)
    console.print("estimates: FLOP model calibrated on #779 / baseline H100 timings (orchestrator/plan/estimate.py); "
                  "time to run = the jobs one after another")
    for name, ranks, mem in memory:
        console.print(f"GPU memory per rank, {name} ({ranks} ranks, {mem.n_params:,} params): {mem.line()}; "
                      f"fits {cap_gib:g} GiB")

    if args.jobs:
        jt = Table(title="jobs (dependency order)")
        for col in ("kind", "name", "identity", "deps", "ranks", "GPUs", "est.", "done"):
            jt.add_column(col)
        for j in plan.jobs:
            jt.add_row(j.kind, j.name, j.identity[:12], ",".join(d[:8] for d in j.deps), str(j.ranks),
                       _gpus(j), _duration(est.seconds[j.identity]), "yes" if j.identity in done else "")
        console.print(jt)
    return 0


def _staged_plan(console, sweep, workspace) -> int:
    """A staged sweep: per stage what runs (stage 1 exactly; a later stage at most what the one
    before promotes x its seeds) and the worst case against the budget."""
    from rich.table import Table

    from orchestrator.plan.stages import stage_outline

    outline = stage_outline(sweep, workspace)
    table = Table(title=f"{len(outline)} stages (each later stage: at most what the stage before promotes)")
    for col in ("stage", "configurations", "seeds", "jobs", "promotes", "worst GPU-h"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for o, st in zip(outline, sweep.stages):
        at = "" if o.exact else "at most "
        promotes = ("-" if st.promote is None else f"top {st.promote.top}" if st.promote.top is not None
                    else f"fraction {st.promote.fraction:g}")
        table.add_row(o.name + (" (reproduce)" if st.reproduce else ""), f"{at}{o.configurations}", str(o.seeds),
                      f"{at}{o.jobs}", promotes, _hours(o.worst_gpu_hours))
    console.print(table)
    console.print("worst case (every job to its training cap, or its timeout when uncapped): "
                  + _stage_words(outline, sweep.budget).rsplit("; worst case ", 1)[1])
    pr = sweep.prune
    if pr.active:
        console.print(f"pruning: {pr.kind}" + (f" + against {pr.against}" if pr.against else "")
                      + f" at {', '.join(f'{r:g}' for r in pr.rungs_s)} s of train time")
    return 0


def _spend_lines(console, plan) -> None:
    """Worst case (every job to its cap or timeout) against the budget; what pruning may stop."""
    from orchestrator.run.spend import cap_of, gpus_of

    jobs = list(plan.jobs)
    if plan.study is not None:  # up to n trials of the sample's shape
        jobs += _study_sample(plan) * plan.study.n
    worst_h = sum(gpus_of(j) * cap_of(j) for j in jobs) / 3600.0
    line = f"worst case (every job to its training cap, or its timeout when uncapped): {_hours(worst_h)} GPU-h"
    b = getattr(plan, "budget", None)
    if b is not None:
        line += (f"; budget {b.gpu_hours:g} GPU-h: "
                 + ("fits" if worst_h <= b.gpu_hours else "the sweep stops starting jobs when it would pass it"))
    pr = getattr(plan, "prune", None)
    if pr is not None and pr.active:
        line += f"; pruning: {pr.kind}" + (f" + against {pr.against}" if pr.against else "") + \
            f" at {', '.join(f'{r:g}' for r in pr.rungs_s)} s of train time"
    console.print(line)
