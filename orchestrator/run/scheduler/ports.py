"""What the Scheduler drives (a Launcher: processes, refs; Gangs of ranks) and calls (the driver's Hooks)."""
from __future__ import annotations

from typing import Any, Protocol

from workers.contract import Attempt, JobResult

__all__ = ["Gang", "Hooks", "Launcher"]


class Gang(Protocol):
    """A training job's group of ranks (workers.gang.TrainGang)."""
    phase: str  # placing -> starting -> training -> done
    ranks: int
    bundle: dict
    attempt: Attempt

    def pending(self) -> list: ...
    def reassign(self, attempt: Attempt) -> None: ...
    def release(self) -> None: ...


class Launcher(Protocol):
    """Starts processes and runs jobs on them; every ref it returns is waited on by the driver's
    loop and handed back to Scheduler.handle. `advance` and `get` raise WorkerLost (the process
    went away) or JobFailed (the job raised)."""

    def start_gang(self, attempt: Attempt, *, ranks: int, gpus: int, use_gpus: bool, cpus_per_rank: float) -> Gang: ...
    def advance(self, gang: Gang, ref: Any) -> JobResult | None: ...
    def sibling_died(self, gang: Gang) -> bool: ...
    def start_worker(self, use_gpus: bool) -> Any: ...
    def run_on(self, worker: Any, attempt: Attempt, dep: str | None, inputs: Any, chunk_tokens: int | None) -> Any: ...
    def get(self, ref: Any) -> JobResult: ...
    # optional: fetch the values of done refs in one call, for the get()s that follow
    # def prefetch(self, refs: list) -> None: ...
    def put(self, files: dict[str, bytes]) -> Any: ...
    def kill(self, worker: Any) -> None: ...
    def stop(self, gang: Gang) -> None: ...  # kill a script gang's process tree; its ref then returns
    def wait(self, refs: list, timeout: float) -> list: ...  # the done refs (at least one unless timed out)
    # the driver's side (orchestrator.run.driver): the cluster's shape, live progress and log events
    def cluster(self, connect: Any) -> tuple[dict[str, float], dict[str, float]]: ...  # (totals, node max)
    def progress(self, host: Any) -> Any: ...  # a ref of a running training job's latest event, or None
    def drain(self, gang: Gang, since: int) -> Any: ...  # a ref of a script gang's log events, or None
    def ready(self, refs: list) -> list: ...  # the refs already done
    def value(self, ref: Any) -> Any: ...  # a done ref's raw value


class Hooks(Protocol):
    """What the driver does around a job's life: its MLflow runs and its events."""

    def prepare(self, job: Any) -> dict: ...  # Attempt fields beyond job/attempt (may raise: cannot start)
    def started(self, out: Any) -> None: ...  # an attempt's run is opened (out.run_id, out.attempts)
    def succeeded(self, out: Any, value: JobResult) -> None: ...  # judged, recorded, its run FINISHED
    def failed(self, out: Any, reason: str, value: JobResult | None) -> None: ...  # its open run FAILED
    def lost(self, out: Any, reason: str) -> None: ...  # its open run FAILED (worker died)
    def cancelled(self, out: Any) -> None: ...  # its open run KILLED
    def pruned(self, out: Any, value: JobResult | None) -> None: ...  # its open run KILLED, tagged pruned
    def fetch_files(self, identity: str) -> dict[str, bytes]: ...  # a reused job's outputs
    def event(self, what: str, out: Any) -> None: ...
