"""The Scheduler's Launcher on Ray: gangs are workers.gang.TrainGang (a placement group and its
rank actors), workers are workers.worker.Worker actors, refs are ObjectRefs.

Ray's errors become the contract's two: WorkerLost (the process running the job went away: a
killed actor, a crashed worker; the scheduler reruns the job) and JobFailed (the job raised:
a rerun would raise again).
"""
from __future__ import annotations

import contextlib
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

from orchestrator import kinds
from orchestrator.run.scheduler import one_line
from workers.contract import Attempt, JobFailed, JobResult, WorkerLost
from workers.worker import Worker
from workers.gang import TrainGang

__all__ = ["RETRYABLE", "RayLauncher"]

# Errors that mean "the process running the job went away", not "the job is wrong".
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


@contextlib.contextmanager
def _translated():
    """Ray's errors as the Scheduler's: a dead worker is WorkerLost (rerun), a job's own error JobFailed."""
    try:
        yield
    except RETRYABLE as e:
        raise WorkerLost(type(e).__name__) from e
    except RayTaskError as e:
        raise JobFailed(one_line(e)) from e


class RayLauncher:
    def __init__(self, runner: Any, *, data_dir: str, work_dir: str | None, vocab_size: int):
        self.runner = runner
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.vocab_size = int(vocab_size)
        self._fetched: dict = {}  # ref -> its value, fetched by prefetch() for the get() that follows

    def start_gang(self, attempt: Attempt, *, ranks: int, gpus: int, use_gpus: bool,
                   cpus_per_rank: float) -> TrainGang:
        return TrainGang(attempt, self.runner, ranks=ranks, gpus=gpus, use_gpus=use_gpus, data_dir=self.data_dir,
                         work_dir=self.work_dir, cpus_per_rank=cpus_per_rank)

    def advance(self, gang: TrainGang, ref: Any) -> JobResult | None:
        with _translated():
            return gang.advance(ref)

    def sibling_died(self, gang: TrainGang, wait_s: float = 5.0) -> bool:
        """Did another rank of this gang die? (Its death reaches us a moment after the error
        its peers raise from the broken collective.)"""
        refs = gang.pending()
        if not refs:
            return False
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
        for r in done:
            try:
                ray.get(r)
            except RETRYABLE:
                return True
            except Exception:  # noqa: BLE001 - another job error: not a death
                pass
        return False

    def start_worker(self, use_gpus: bool) -> Any:
        opts: dict[str, Any] = {"num_cpus": 1}
        if use_gpus:
            opts["num_gpus"] = 1
        return Worker.options(**opts).remote(self.runner, self.work_dir)

    def run_on(self, worker: Any, attempt: Attempt, dep: str | None, inputs: Any, context: Any) -> Any:
        """The job's kind calls its entry point on the worker (orchestrator.kinds)."""
        return kinds.of(attempt.job).submit(worker, attempt, dep, inputs, context, data_dir=self.data_dir,
                                            vocab_size=self.vocab_size)

    def run_batch_on(self, worker: Any, attempts: list[Attempt], dep: str, inputs: Any, context: Any) -> list:
        """Jobs of one batch key in one call: one ref per attempt (orchestrator.run.mix_batch)."""
        return kinds.of(attempts[0].job).submit_batch(worker, attempts, dep, inputs, context,
                                                      data_dir=self.data_dir, vocab_size=self.vocab_size)

    def prefetch(self, refs: list) -> None:
        """The values of a loop turn's done refs (a batch of mix points) in one ray.get: each
        call into Ray gives up the GIL, and getting it back behind the tracker's writer thread
        cost ~0.5 ms a result (issue 21). A turn where one of them failed is fetched ref by ref
        (get() translates each error); values nobody asked for are dropped at the next turn."""
        self._fetched = {}
        if len(refs) < 2:
            return
        try:
            values = ray.get(list(refs), timeout=0)
        except Exception:  # noqa: BLE001 - one ref's error: get() raises it for that ref alone
            return
        self._fetched = dict(zip(refs, values))

    def get(self, ref: Any) -> JobResult:
        if ref in self._fetched:
            return self._fetched.pop(ref)
        with _translated():
            return ray.get(ref)

    def put(self, files: dict[str, bytes]) -> Any:
        return ray.put(files)

    def kill(self, worker: Any) -> None:
        ray.kill(worker, no_restart=True)

    def stop(self, gang: TrainGang) -> None:
        """Stop a script gang's job: its rank actor kills the script's process tree, and the
        train call returns with the partial train.log (not waited on here)."""
        gang.stop()

    def cluster(self, connect: Any) -> tuple[dict[str, float], dict[str, float]]:
        """Connect (through `connect` when not yet) and read the cluster's shape: its total
        resources and the largest node's GPUs and CPUs."""
        if not ray.is_initialized():
            if connect is None:
                raise RuntimeError("run_plan needs a Ray connection (orchestrator.run.raycluster.connect)")
            connect()
        res = ray.cluster_resources()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        return res, {k: max([n.get(k, 0.0) for n in nodes] or [0.0]) for k in ("GPU", "CPU")}

    def progress(self, host: Any) -> Any:
        """A ref of the latest progress event of the training job on a gang or a worker (None: none)."""
        if isinstance(host, TrainGang):
            return host.progress()
        return host.progress.remote()

    def drain(self, gang: TrainGang, since: int) -> Any:
        """A ref of a script gang's parsed log events since `since` (None: its actor is not up)."""
        return gang.actors[0].drain.remote(since) if gang.actors else None

    def ready(self, refs: list) -> list:
        """The refs already done (no wait)."""
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        return list(done)

    def value(self, ref: Any) -> Any:
        """A done ref's value as it is (raises what the call raised)."""
        return ray.get(ref)

    def wait(self, refs: list, timeout: float) -> list:
        """Refs done within `timeout` (at least one unless it ran out), plus any others done by then."""
        done, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if done:  # gather everything else that is already done too
            more, _ = ray.wait([r for r in refs if r not in done], num_returns=len(refs) - len(done), timeout=0)
            done = list(done) + list(more)
        return list(done)
