"""`golf run SPEC` (a sweep on this machine or the Ray cluster at $RAY_ADDRESS) and
`golf submit|status|logs|cancel` (the same sweep as a Ray job on a remote cluster)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["register", "cmd_run", "results_table"]


def add_execution_args(p) -> None:
    """Where a sweep runs and logs: shared by `golf run` and `golf reproduce`."""
    p.add_argument("--address", default=None, help="join this Ray cluster (default: $RAY_ADDRESS, else start one here)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    p.add_argument("--work-dir", default=".golf", help="scratch for job outputs and the tracking journal")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--num-gpus", type=int, default=None, help="GPUs of the local Ray (default: detected)")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live table")
    p.add_argument("--status-every", type=float, default=30.0, metavar="S",
                   help="plain (piped) output: a status line with elapsed and ETA at least every S seconds")


def register(sub) -> None:
    p = sub.add_parser("run", help="run a sweep: local Ray (or $RAY_ADDRESS), results in MLflow")
    p.add_argument("spec", help="sweep spec YAML (e.g. experiments/smoke.yaml)")
    add_execution_args(p)
    p.add_argument("--no-reuse", action="store_true",
                   help="recompute every job, even those with a FINISHED run in MLflow (any experiment)")
    p.add_argument("--wait", action="store_true",
                   help="if another driver is running this sweep, wait for it, then go on (reusing what it finished)")
    p.add_argument("--lease-timeout", type=_positive_s, default=60.0, metavar="S",
                   help="a sweep whose driver sent no heartbeat for S seconds is taken over (default 60; "
                        "a dead driver on this machine is noticed at once)")
    p.set_defaults(func=cmd_run)

    from orchestrator.run.submit import register_job_commands

    register_job_commands(sub)


def _positive_s(text: str) -> float:
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (math.isfinite(v) and 0 < v <= 86400):
        raise argparse.ArgumentTypeError(f"must be seconds in (0, 86400], got {text!r}")
    return v


def cmd_run(args) -> int:
    from rich.console import Console

    from orchestrator.plan.build import load_plan
    from orchestrator.run.progress import SweepProgress
    from orchestrator.spec.sweep import SpecError
    from orchestrator.run.start import prepare_sweep, ray_runner
    from orchestrator.tracking import redact
    from orchestrator.tracking.links import look_with

    console = Console()
    say = lambda msg: console.print(f"golf: {msg}", highlight=False, markup=False)  # noqa: E731
    t0 = time.time()
    # everything a user can get wrong is checked here, before Ray starts or a job runs
    try:
        plan = load_plan(args.spec, workspace=Path.cwd())
    except SpecError as e:  # the same `SPEC: field: problem` as `golf validate`, on one line
        raise SpecError([f"{args.spec}: {line}" for line in e.lines]) from None
    if plan.sweep.stages:  # stage after stage: orchestrator.run.stages
        return _run_staged(args, console, say, t0)
    run = prepare_sweep(plan, Path.cwd(), tracking_uri=args.tracking_uri, work_dir=args.work_dir, say=say)
    uri = run.uri
    counts = plan.counts()
    if plan.study is not None:  # its jobs come from the study as it runs
        what = (f"optuna: {plan.study.n} trials x {len(plan.study.seeds)} seeds = up to "
                f"{counts['script_train']} script_train jobs")
    else:
        what = f"{len(plan.jobs)} jobs ({', '.join(f'{v} {k}' for k, v in counts.items())})"
    say(f"sweep {plan.sweep_name}: {what}; tracking {redact(uri)}")
    try:
        progress = SweepProgress(console, live=False if args.no_progress else None,
                                 heartbeat_s=getattr(args, "status_every", 30.0))
        shown = []

        def show(report) -> None:  # every job ended: the table now, before the summary and the writer drain
            shown.append(True)
            console.print(results_table(report))

        runner = ray_runner(address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                            progress=progress, say=say, tokenizer=run.tokenizer,
                            reuse=not getattr(args, "no_reuse", False), lease_wait=args.wait,
                            lease_timeout_s=args.lease_timeout, on_results=show)
        report = runner(plan, run.tracker, run.data_dir, run.work)
        if not shown:
            show(report)
    finally:
        delivered = run.close(say)
    c = report.counts()
    say(f"done in {time.time() - t0:.1f} s: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())))
    shown = redact(uri)  # never print credentials of the tracking URI
    if not delivered:  # the store went away (or is full): the records are in the journal, not there
        return 3
    say(f"results: MLflow experiment '{plan.sweep_name}' at {shown}")
    say(f"look: {look_with(uri, _experiment_id(uri, plan.sweep_name))}")
    # jobs the budget kept from starting are not a failure (the driver said how many; a rerun continues)
    return 1 if c.get("failed") or c.get("skipped", 0) > getattr(report, "budget_skipped", 0) else 0


def _run_staged(args, console, say, t0: float) -> int:
    from orchestrator.run.progress import SweepProgress
    from orchestrator.run.stages import run_stages
    from orchestrator.run.start import prepare_sweep, ray_runner
    from orchestrator.spec.sweep import load_sweep

    sweep = load_sweep(args.spec)
    progress = SweepProgress(console, live=False if args.no_progress else None,
                             heartbeat_s=getattr(args, "status_every", 30.0))
    runner = ray_runner(address=args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus, progress=progress,
                        say=say, reuse=not getattr(args, "no_reuse", False), lease_wait=args.wait,
                        lease_timeout_s=args.lease_timeout)
    records: list = []
    done = run_stages(sweep, Path.cwd(), lambda plan: prepare_sweep(plan, Path.cwd(), tracking_uri=args.tracking_uri,
                                                                     work_dir=args.work_dir, say=say),
                      runner, say, records)
    rc = 0
    for _plan, report in done:
        console.print(results_table(report))
        c = report.counts()
        if c.get("failed") or c.get("skipped", 0) > report.budget_skipped:
            rc = 1
    if records:  # `reproduce: true` on the last stage: what `golf reproduce` prints, per configuration
        from orchestrator.cli.reproduce import _script_summary

        for res in records:
            if res is None:
                rc = 1  # the line before said which seeds did not finish
            else:
                _script_summary(console, say, res)
    say(f"done in {time.time() - t0:.1f} s: {len(done)} stage(s)")
    return rc


def _mean_std(g) -> str:
    return f"{g.mean:.5f} ± {g.std:.5f}" if g.n > 1 else f"{g.mean:.5f}"


def _experiment_id(uri: str, name: str) -> str | None:
    """The experiment's id for the printed link (None when the store cannot say)."""
    from orchestrator.tracking.client import make_client

    try:
        exp = make_client(uri).get_experiment_by_name(name)
    except Exception:  # noqa: BLE001 - the link is a convenience; the sweep is done
        return None
    return exp.experiment_id if exp is not None else None


def headline(report) -> str:
    """The winner: the best compliant configuration's seed-mean val_bpb ("best" means that
    everywhere: the parent run's val_bpb, the leaderboard) and, when lower, the best
    non-compliant configuration, marked: a hashed_target score is never the headline."""
    from orchestrator.tracking.summary import overall_winner, winners

    top = overall_winner(report)
    text = (f"best compliant config val_bpb {_mean_std(top)} ({top.n} seed{'s' * (top.n != 1)}): "
            f"{top.column} {top.label}".rstrip() if top else "best compliant config val_bpb -")
    bad = [g for g in winners(report).values() if not g.compliant]
    worst = min(bad, key=lambda g: g.mean) if bad else None
    if worst is not None and (top is None or worst.mean < top.mean):
        text += f"; non-compliant {worst.mean:.5f}* ({worst.column}, not a legal score)"
    return text


_WHAT = {"model": "model (roundtrip)", "neural": "eval (neural)"}


_CONFIG_CELL = 24  # a longer configuration goes below the table, whole, on lines of its own


def results_table(report):
    """Per column (the trained model's roundtrip score, the neural eval, each mixer mode): the
    winning config (the fields that vary), its mean ± std over seeds and the seed count
    (* = not compliant, ! = some seed invalid). Fits 80 columns, piped or not: a configuration
    longer than a cell is written in full below the table (`[1] normalized: alpha_base=...`)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from orchestrator.tracking.summary import best_runs, best_trial, winners

    bt = best_trial(report)
    caption = None if bt is None else (
        f"optuna: {bt['told']} trials told ({bt['failed']} failed); best trial {bt['number']}: "
        + " ".join(f"{k}={v}" for k, v in bt["values"].items()) + f"  val_bpb {bt['val_bpb']:.6f}")
    t = Table(title=f"sweep {report.plan.sweep_name}: {headline(report)}\n"
                    "winner per column = lowest seed-mean val_bpb  (* not compliant, ! invalid seeds)",
              title_justify="left", caption=caption, caption_justify="left")
    t.add_column("what", justify="left", overflow="fold", max_width=18)
    t.add_column("winning config", justify="left", overflow="fold", max_width=_CONFIG_CELL)
    t.add_column("val_bpb mean ± std", justify="right", no_wrap=True)
    t.add_column("seeds", justify="right", no_wrap=True)
    t.add_column("best seed", justify="right", overflow="fold")
    best = best_runs(report)
    notes = []
    for col, g in winners(report).items():
        mark = "" if g.compliant else "*"
        n_all = len(g.outcomes)
        if g.n < n_all:
            mark += "!"
        bs = best.get(col)
        config = (g.label or "-").replace(",", ", ")
        if len(config) > _CONFIG_CELL:
            notes.append(f"[{len(notes) + 1}] {_WHAT.get(col, col)}: {config}")
            config = f"[{len(notes)}] below"
        t.add_row(_WHAT.get(col, col), config, f"{_mean_std(g)}{mark}",
                  f"{g.n}/{n_all}", f"{bs[0]:.5f} (s{bs[1].job.seed})" if bs else "-")
    return Group(t, Text("\n".join(notes))) if notes else t


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli.main import main

    sys.exit(main(["run", *sys.argv[1:]]))
