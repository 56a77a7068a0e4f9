"""Job states and the one function that changes them (`transition`, which refuses an illegal change)."""
from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = ["IllegalTransition", "JobState", "LEGAL", "TERMINAL", "one_line", "transition"]


class JobState(StrEnum):
    """A job's state; the values are what reports, tests and the progress display read."""
    PENDING = "pending"  # waiting for its dependencies
    READY = "ready"  # dependencies done: waiting for a worker or a gang's resources
    RUNNING = "running"  # an attempt is in flight
    FINISHED = "finished"  # this sweep ran it (valid or not: see its verdict)
    REUSED = "reused"  # MLflow already held a FINISHED run of its identity
    FAILED = "failed"
    SKIPPED = "skipped"  # a dependency failed (or never ran): nothing to run it on
    CANCELLED = "cancelled"  # Ctrl-C, or the sweep's lease was lost
    STOPPING = "stopping"  # a pruner stopped it: its processes are being killed
    PRUNED = "pruned"  # stopped by a pruner (or its trial was, before it started)


TERMINAL = frozenset({JobState.FINISHED, JobState.REUSED, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED,
                      JobState.PRUNED})
LEGAL: dict[JobState, frozenset[JobState]] = {
    # PRUNED before it ran: its trial was stopped (now, or in an earlier run of the sweep)
    JobState.PENDING: frozenset({JobState.READY, JobState.REUSED, JobState.SKIPPED, JobState.CANCELLED,
                                 JobState.PRUNED}),
    # FAILED from READY: it cannot start (larger than any node, inputs or script files unreadable)
    JobState.READY: frozenset({JobState.RUNNING, JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED,
                               JobState.PRUNED}),
    # READY from RUNNING: its worker died and it has retries left
    JobState.RUNNING: frozenset({JobState.FINISHED, JobState.FAILED, JobState.READY, JobState.CANCELLED,
                                 JobState.STOPPING}),
    # whatever its attempt returns now (a partial log, an error, a dead worker), it ends PRUNED
    # FINISHED: the script had already ended, score line printed, when the stop landed
    JobState.STOPPING: frozenset({JobState.PRUNED, JobState.FINISHED, JobState.CANCELLED}),
}


class IllegalTransition(RuntimeError):
    pass


def transition(out: Any, new: JobState) -> None:
    """Move a JobOutcome to `new`; IllegalTransition (one line) when its state cannot go there."""
    old = JobState(out.state)
    if new not in LEGAL.get(old, frozenset()):
        raise IllegalTransition(f"job {out.job.name}: {old.value} -> {JobState(new).value} is not a legal transition")
    out.state = JobState(new)


def one_line(e: BaseException) -> str:
    """The job's own exception, one line: 'ValueError: ...'."""
    cause = getattr(e, "cause", None) or e
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:500]
