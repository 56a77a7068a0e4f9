"""`golf run SPEC` (a sweep on this machine or the Ray cluster at $RAY_ADDRESS) and
`golf submit|status|logs|cancel` (the same sweep as a Ray job on a remote cluster)."""
from __future__ import annotations

import signal
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


def register(sub) -> None:
    p = sub.add_parser("run", help="run a sweep: local Ray (or $RAY_ADDRESS), results in MLflow")
    p.add_argument("spec", help="sweep spec YAML (e.g. experiments/smoke.yaml)")
    add_execution_args(p)
    p.set_defaults(func=cmd_run)

    from orchestrator.submit import register_job_commands

    register_job_commands(sub)


def _sigterm_to_interrupt(signum, frame):  # `ray job stop` sends SIGTERM: clean up like Ctrl-C
    raise KeyboardInterrupt


def cmd_run(args) -> int:
    from rich.console import Console

    from golf_core.data.shards import check_data_dir
    from orchestrator.datasets import ensure_data
    from orchestrator.plan import data_dir, load_plan
    from orchestrator.tracking import Tracker, resolve_tracking_uri

    console = Console()
    say = lambda msg: console.print(f"golf: {msg}", highlight=False, markup=False)  # noqa: E731
    t0 = time.time()
    # everything a user can get wrong is checked here, before Ray starts or a job runs
    plan = load_plan(args.spec, workspace=Path.cwd())
    ddir = data_dir(plan, Path.cwd()).resolve()
    ensure_data(plan.data, ddir, say)
    check_data_dir(ddir, plan.data.vocab_size)
    work = Path(args.work_dir).resolve()
    uri = resolve_tracking_uri(args.tracking_uri)
    counts = plan.counts()
    say(f"sweep {plan.sweep_name}: {len(plan.jobs)} jobs ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
        f"tracking {uri}")

    import ray

    from orchestrator.driver import DriverOptions, run_plan
    from orchestrator.progress import SweepProgress
    from orchestrator.raycluster import connect

    tracker = Tracker(uri, plan.sweep_name, work / "mlflow-journal")
    started_ray = not ray.is_initialized()
    old_term = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    report = None
    try:
        def connect_ray() -> None:  # only when a job must run: a rerun of a done sweep needs no Ray
            how = connect(args.address, num_cpus=args.num_cpus, num_gpus=args.num_gpus, log_to_driver=True)
            say(f"ray: {how} {dict((k, v) for k, v in ray.cluster_resources().items() if k in ('CPU', 'GPU'))}")

        progress = SweepProgress(console, live=False if args.no_progress else None)
        report = run_plan(plan, tracker, DriverOptions(data_dir=str(ddir), work_dir=str(work / "jobs"),
                                                       progress=progress, connect=connect_ray))
    finally:
        signal.signal(signal.SIGTERM, old_term)
        ok = tracker.close(timeout=60)
        if not ok:
            say(f"some tracking calls were not delivered; they are kept in {work / 'mlflow-journal'} "
                "and replayed by the next `golf run`")
        if started_ray and ray.is_initialized():
            ray.shutdown()
    console.print(results_table(report))
    c = report.counts()
    say(f"done in {time.time() - t0:.1f} s: " + ", ".join(f"{v} {k}" for k, v in sorted(c.items())))
    ui = f"mlflow ui --backend-store-uri {uri}" if not uri.startswith("http") else uri
    say(f"results: MLflow experiment '{plan.sweep_name}' at {uri}; look with: {ui}")
    return 1 if c.get("failed") or c.get("skipped") else 0


def _mode(job) -> str:
    m = job.config.get("mixer") or job.config.get("mixer_base") or {}
    return str(m.get("mode", "none")) + ("/optuna" if job.config.get("optuna") else "")


def results_table(report):
    """Best val_bpb per seed: the trained model (roundtrip), then per mixer mode (* = not compliant,
    ! = invalid)."""
    from rich.table import Table

    best: dict[tuple[int, str], tuple[float, str]] = {}
    seeds, modes = set(), []
    for o in report.outcomes.values():
        r = o.result or {}
        if o.state not in ("finished", "reused") or not isinstance(r.get("val_bpb"), (int, float)):
            continue
        col = {"train": "model (roundtrip)", "eval": "eval (neural)",
               "script_train": "script"}.get(o.job.kind) or _mode(o.job)
        mark = ("!" if o.verdict and not o.verdict.valid else "") + \
            ("*" if o.verdict and o.verdict.compliant is False else "")
        seeds.add(o.job.seed)
        if col not in modes:
            modes.append(col)
        key = (o.job.seed, col)
        if key not in best or r["val_bpb"] < best[key][0]:
            best[key] = (float(r["val_bpb"]), mark)
    t = Table(title=f"best val_bpb, sweep {report.plan.sweep_name}  (* not compliant, ! invalid)",
              title_justify="left")
    t.add_column("seed", justify="right")
    for m in modes:
        t.add_column(m, justify="right")
    for s in sorted(seeds):
        t.add_row(str(s), *[f"{best[(s, m)][0]:.4f}{best[(s, m)][1]}" if (s, m) in best else "-" for m in modes])
    return t


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli import main

    sys.exit(main(["run", *sys.argv[1:]]))
