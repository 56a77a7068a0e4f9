"""The driver's records: the options it takes, what it learns about each job, the sweep's report.

Kept apart from the loop (orchestrator.run.driver) and the placement (orchestrator.run.scheduler) so
both read the same records, and so that callers (`golf run`, reproduce, the benchmark, the
progress display) see the shapes in one short file. orchestrator.run.driver re-exports them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from orchestrator.run.scheduler import TERMINAL, JobState, one_line
from orchestrator.run.validity import Verdict

__all__ = ["DriverOptions", "JobOutcome", "JobState", "SweepReport", "TERMINAL", "one_line"]


@dataclass
class DriverOptions:
    # the data dir and tokenizer prepare_sweep resolved (orchestrator.run.start); None: the runner
    # reads no data (tests' stand-ins) / the tokenizer is found from the data dir
    data_dir: str | None = None
    tokenizer_path: str | None = None
    work_dir: str | None = None  # per-node scratch for job outputs (default: a temp dir)
    runner: Any = None  # default GolfRunner(); tests and the benchmark inject stand-ins
    # where jobs run (orchestrator.run.scheduler.Launcher); default: Ray (orchestrator.run.ray_launcher)
    launcher: Any = None
    retries: int | None = None  # None: plan.retries (the Sweep's `retries`, default 1)
    use_gpus: bool | None = None  # default: the cluster has GPUs
    max_workers: int | None = None  # default: GPUs (or CPUs) in the cluster
    actor_depth: int = 2  # calls queued per eval actor: hides the driver's round trip
    poll_s: float = 0.5
    progress: Any = None  # orchestrator.run.progress.SweepProgress-like: .update(report, running)
    on_event: Callable[[str, "JobOutcome"], None] | None = None  # tests: ("dispatch"|"done"|..., outcome)
    connect: Callable[[], None] | None = None  # called when Ray is needed and not connected yet
    reuse: bool = True  # False (`golf run --no-reuse`): recompute jobs MLflow already has
    # one driver per sweep (orchestrator.run.lease): wait for a live one instead of refusing;
    # a lease whose heartbeat is older than this is taken over (0: no lease); claim settle time
    lease_wait: bool = False
    lease_timeout_s: float = 60.0
    lease_settle_s: float = 0.5
    say: Callable[[str], None] | None = None  # one-line notices (waiting, taking over)
    # called with the report once every job ended, before the sweep's summary and before the
    # tracker drains: `golf run` prints its results table here (issue 21)
    on_results: Callable[["SweepReport"], None] | None = None


@dataclass
class JobOutcome:
    job: Any
    state: JobState = JobState.PENDING  # changed by orchestrator.run.scheduler.transition only
    attempt: int = 0
    run_id: str | None = None  # the MLflow run id (reused run) or the tracker's run key (ours)
    result: dict | None = None
    verdict: Verdict | None = None
    reason: str | None = None
    output: dict | None = None  # JobResult.info(): where and how it ran (ranks, placement, actor pid ...)
    train_log: bytes | None = None  # a finished train job's own train.log (record folders ship it)
    started: float | None = None
    placed: float | None = None  # when its attempt got its GPUs (a gang may wait for a placement first)
    ended: float | None = None
    attempts: list[dict] = field(default_factory=list)  # {"attempt", "run_id", "status", "reason"}


@dataclass
class SweepReport:
    plan: Any
    outcomes: dict[str, JobOutcome]
    started: float
    ended: float | None = None
    sweep_run_id: str | None = None
    status: str = "RUNNING"
    driver_busy_s: float = 0.0  # time the driver loop spent outside ray.wait
    driver_cpu_s: float = 0.0  # CPU time of the driver loop's thread (busy less GIL and core contention)
    trials: Any = None  # an optuna env study's bookkeeping (orchestrator.run.trials.EnvTrials)
    spend: Any = None  # GPU-seconds, budget, prune decisions (orchestrator.run.spend.Spend)
    budget_skipped: int = 0  # jobs the budget kept from starting (SKIPPED, but the sweep ends exit 0)

    def counts(self) -> Counter:
        return Counter(str(o.state) for o in self.outcomes.values())

    def best(self, compliant: bool | None = True) -> dict | None:
        """The lowest valid val_bpb among finished/reused jobs: {"val_bpb", "name", "kind"}.
        compliant=True (the headline) skips runs judged non-compliant; False takes only those;
        None takes all."""
        best = None
        for o in self.outcomes.values():
            r = o.result or {}
            bad = o.verdict is not None and o.verdict.compliant is False
            if compliant is not None and bad == compliant:
                continue
            if o.state in ("finished", "reused") and isinstance(r.get("val_bpb"), (int, float)) \
                    and (o.verdict is None or o.verdict.valid):
                if best is None or r["val_bpb"] < best["val_bpb"]:
                    best = {"val_bpb": float(r["val_bpb"]), "name": o.job.name, "kind": o.job.kind}
        return best
