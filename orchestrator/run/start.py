"""One way to run a plan: `golf run`, `golf reproduce SPEC` and `golf reproduce RECORD_DIR` all
come through here, so a check or an option added once holds for all three.

`prepare_sweep` does everything a user's input can fail before Ray starts or a job runs: the
tracking store (a garbage mlflow.db is one line), the data dir (made only where golf may), every
shard and the tokenizer, the work dir; then it opens the Tracker. `ray_runner` is the default
run function: it connects Ray only when a job must run (a rerun of a finished sweep never
starts it), runs orchestrator.run.driver.run_plan with the sweep's options, turns SIGTERM (`ray job
stop`) into the same clean stop as Ctrl-C, and shuts down the Ray it started.
"""
from __future__ import annotations

import os

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["SweepRun", "prepare_sweep", "ray_runner"]

Say = Callable[[str], None]
RunFn = Callable[[Any, Any, Path, Path], Any]  # (plan, tracker, data_dir, work_dir) -> SweepReport


@dataclass
class SweepRun:
    """A plan whose inputs passed every check, with its open Tracker."""

    plan: Any
    data_dir: Path
    tokenizer: Path | None
    work: Path
    uri: str
    tracker: Any

    def close(self, say: Say | None = None, timeout: float = 60.0) -> bool:
        ok = self.tracker.close(timeout=timeout)
        if not ok and say is not None:
            from orchestrator.tracking import redact

            say(f"tracking calls not delivered to {redact(self.uri)}: every record is kept in "
                f"{self.work / 'mlflow-journal'} and replayed into the store the next `golf run` finds")
        return ok


def prepare_sweep(plan, workspace: str | Path, *, tracking_uri: str | None, work_dir: str | Path, say: Say,
                  artifact_roots: list[Path] | None = None, warn_synthetic: bool = False) -> SweepRun:
    """Check the plan's inputs (one line per problem, ValueError/ConnectionError) and open its Tracker."""
    from orchestrator.plan.datasets import check_plan_data, ensure_data, resolve_data_dir, resolve_work_dir
    from orchestrator.plan.build import tokenizer_file
    from orchestrator.tracking import Tracker, check_store, resolve_tracking_uri

    workspace = Path(workspace).resolve()
    uri = resolve_tracking_uri(tracking_uri)
    check_store(uri)  # a garbage mlflow.db: one line, before the data
    ddir = resolve_data_dir(plan.data, workspace, plan.external)
    work = resolve_work_dir(str(work_dir), workspace)
    if warn_synthetic and plan.data.source == "synthetic":
        say("WARNING: synthetic data: such a run can never be a record")
    ensure_data(plan.data, ddir, say)  # never over files golf did not make
    tok = tokenizer_file(plan, workspace)
    tok = tok.resolve() if tok is not None else None
    check_plan_data(plan, ddir, tokenizer=tok)  # every shard, and enough tokens for a sequence and a window
    roots = [work, *(artifact_roots or [])]
    tracker = Tracker(uri, plan.sweep_name, work / "mlflow-journal", artifact_roots=roots)
    return SweepRun(plan, ddir, tok, work, uri, tracker)


def _sigterm_to_interrupt(signum, frame):  # `ray job stop` sends SIGTERM: clean up like Ctrl-C
    raise KeyboardInterrupt


def ray_runner(*, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
               progress: Any = None, say: Say | None = None, tokenizer: Path | None = None, reuse: bool = True,
               lease_wait: bool = False, lease_timeout_s: float | None = None,
               on_results: Callable[[Any], None] | None = None) -> RunFn:
    """The default run function: the driver on Ray (`address`, $RAY_ADDRESS, else a local Ray)."""
    def run(plan, tracker, data_dir: Path, work_dir: Path, tokenizer: Path | None = tokenizer):
        # `tokenizer`: prepare_sweep's (SweepRun.tokenizer); a staged sweep passes each stage's
        import ray

        from orchestrator.run.types import DriverOptions
        from orchestrator.run.driver import run_plan
        from orchestrator.run.raycluster import connect

        started = not ray.is_initialized()

        def connect_ray() -> None:  # only when a job must run
            how = connect(address, num_cpus=num_cpus, num_gpus=num_gpus, log_to_driver=True, state_dir=work_dir)
            if say is not None:
                auth = " (token-authenticated)" if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else ""
                say(f"ray: {how}{auth} {dict((k, v) for k, v in ray.cluster_resources().items() if k in ('CPU', 'GPU'))}")

        extra = {} if lease_timeout_s is None else {"lease_timeout_s": lease_timeout_s}
        opts = DriverOptions(data_dir=str(data_dir), work_dir=str(work_dir / "jobs"),
                             tokenizer_path=str(tokenizer) if tokenizer else None, progress=progress,
                             connect=connect_ray, say=say, reuse=reuse, lease_wait=lease_wait,
                             on_results=on_results, **extra)
        main = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
        old_term = signal.signal(signal.SIGTERM, _sigterm_to_interrupt) if main else None
        try:
            return run_plan(plan, tracker, opts)
        finally:
            if main:
                signal.signal(signal.SIGTERM, old_term)
            if started and ray.is_initialized():
                ray.shutdown()
    return run
