"""Where and when a ready job runs: job states, gangs, per-GPU worker slots, in-flight work.

The Scheduler owns the placement policy and every job state change; the driver
(orchestrator.run.driver) owns MLflow (through `Hooks`) and the event loop; starting processes is
behind `Launcher` (the Ray one: orchestrator.run.ray_launcher), so the policy is unit-tested with a
fake launcher and no Ray (tests/orchestrator/run/test_scheduler.py).

Policy (what the tests pin):
- multi-rank training jobs run as gangs (a STRICT_PACK group of N ranks; a script job is one
  actor holding all its GPUs, torchrun starts the ranks); 1-rank training, eval and mix jobs go
  to long-lived per-GPU workers (per CPU without GPUs), preferring the worker that already holds
  the job's inputs, so a chain train -> eval -> mix on one GPU starts one process.
- ready jobs start longest remaining chain first: trains, then evals, then mixes (a free worker
  goes to an eval, which unlocks a whole mix grid, before another mix), plan order within a kind.
- a job waits for resources, never times out; one larger than any node fails at once. Idle
  workers are released when a gang is waiting, so the two kinds cannot starve each other; a
  finished gang takes a waiting job of the same shape (its group is held, its ranks are up).
- a mix whose worker is busy goes to an idle worker (one more n-gram pass beats an idle GPU); it
  queues behind the busy one only behind other mixes, and only while mixes are short.
- a job whose worker died (WorkerLost, a rank of its gang died) is rerun up to `retries` times,
  each attempt its own run; a job that raised (JobFailed) is FAILED and its dependents skipped.
- one running job can be stopped (`stop`: a pruner's decision): a script job's process tree is
  killed and its partial log comes back, a golf_core gang or worker is released at once; the job
  ends PRUNED and its GPUs go to the next job (a waiting gang of its shape takes its ranks).
- `gate(job)` (the driver's budget, orchestrator.run.spend) may hold a READY job back; what it
  still holds when nothing runs is SKIPPED with the gate's reason.
- jobs may be added while the sweep runs (`add_job`: an optuna env trial's, orchestrator.run.trials);
  `could_take_work` says when one more would start rather than wait: nothing READY is waiting
  and no gang is waiting for its placement.

Job states (`JobState`) change only through `transition`, which refuses an illegal change.
"""
from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Callable, Protocol

from orchestrator import kinds
from orchestrator.run import mix_batch
from workers.contract import Attempt, JobFailed, JobResult, WorkerLost

__all__ = ["IllegalTransition", "JobState", "Gang", "Hooks", "LEGAL", "Launcher", "SHORT_MIX_S",
           "Scheduler", "Slot", "TERMINAL", "one_line", "transition"]

SHORT_MIX_S = 0.2  # mixes shorter than this (mean) queue on the worker holding their n-gram pass


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


class Slot:
    """One per-GPU worker and what the scheduler knows about it."""

    def __init__(self, worker: Any, index: int):
        self.worker = worker
        self.index = index
        self.inflight: set = set()
        self.keys: set[str] = set()  # identities whose outputs this worker holds
        self.idle_since = time.time()
        self.training: str | None = None  # the identity of the 1-rank training job it runs
        self.train_name: str | None = None
        self.call_of: dict = {}  # ref -> the first ref of its batched call (orchestrator.run.mix_batch)

    def calls(self) -> int:
        """Calls queued on the worker (a batch of mix points is one call, many refs)."""
        return len({self.call_of.get(r, r) for r in self.inflight})


class Scheduler:
    """One sweep's job states, gangs, worker slots and in-flight refs (see the module doc)."""

    def __init__(self, plan: Any, outcomes: dict[str, Any], launcher: Launcher, hooks: Hooks, *, retries: int,
                 actor_depth: int = 2, clock: Callable[[], float] = time.time):
        self.plan = plan
        self.outcomes = outcomes
        self.launcher = launcher
        self.hooks = hooks
        self.retries = retries
        self.actor_depth = actor_depth  # calls queued per worker: hides the driver's round trip
        self.clock = clock
        self.jobs = {j.identity: j for j in plan.jobs}
        self.order = {j.identity: i for i, j in enumerate(plan.jobs)}
        self.use_gpus = False
        self.max_actors = 1
        self.node_max = {"GPU": 0.0, "CPU": 0.0}
        self.totals: dict[str, float] = {}  # the cluster's GPUs / CPUs in all (empty: unknown)
        # ref -> (where, host, identity): ("gang", its Gang, id) or ("slot", its Slot, id)
        self.inflight: dict[Any, tuple[str, Any, str]] = {}
        self.gangs: dict[str, Gang] = {}
        self.slots: list[Slot] = []
        self.files: dict[str, Any] = {}  # identity -> the launcher's handle of its output files
        self.n_slots = 0
        self.mix_s: float | None = None  # running mean of the mix jobs' wall time (s)
        self._n_mix = 0
        self.gate: Callable[[Any], str | None] | None = None  # job -> why it may not start now (a budget)

    def configure(self, *, use_gpus: bool, max_actors: int, node_max: dict[str, float],
                  totals: dict[str, float] | None = None) -> None:
        """The cluster's shape (known once connected): totals = its GPUs and CPUs in all."""
        self.use_gpus, self.max_actors, self.node_max = use_gpus, max(1, int(max_actors)), dict(node_max)
        self.totals = dict(totals or {})

    # ---------------------------------------------------------------- jobs added while running
    def add_job(self, out: Any, reused: bool = False) -> None:
        """Take a new job (a PENDING JobOutcome) while the sweep runs: REUSED when MLflow has it
        (the caller filled in its result), else READY once its dependencies are done."""
        job = out.job
        if job.identity in self.outcomes:
            raise ValueError(f"job {job.name}: identity {job.identity[:12]} is already scheduled")
        self.outcomes[job.identity] = out
        self.jobs[job.identity] = job
        self.order[job.identity] = len(self.order)
        if reused:
            transition(out, JobState.REUSED)
        self.refresh_ready()

    def could_take_work(self, job: Any = None) -> bool:
        """Would a new gang job (like `job`) start now rather than wait? No job is READY, no gang
        is still waiting for its resources, and the cluster's total (`configure(totals=)`) has
        room for `job` beside the gangs running."""
        if any(o.state == JobState.READY for o in self.outcomes.values()):
            return False
        if any(g.phase == "placing" for g in self.gangs.values()):
            return False
        if job is None or not self.totals:
            return True
        res = "GPU" if self.use_gpus and (job.gpus or 0) > 0 else "CPU"
        need = lambda j: (j.gpus or 0) if res == "GPU" else (j.ranks or 1)  # noqa: E731 - one CPU per rank
        busy = sum(need(self.jobs[i]) for i in self.gangs)
        return busy + need(job) <= self.totals.get(res, 0.0)

    # ---------------------------------------------------------------- states
    def set_state(self, out: Any, new: JobState, reason: str | None = None, event: str | None = None) -> None:
        transition(out, new)
        if reason is not None:
            out.reason = reason
        if new in (JobState.FINISHED, JobState.FAILED, JobState.PRUNED):
            out.ended = self.clock()
        if event:
            self.hooks.event(event, out)

    def refresh_ready(self) -> None:
        """PENDING jobs whose dependencies all finished become READY; those with a failed,
        skipped or cancelled dependency (or one whose output is unusable) are SKIPPED."""
        for out in self.outcomes.values():
            if out.state != JobState.PENDING:
                continue
            deps = [self.outcomes[d] for d in out.job.deps if d in self.outcomes]
            bad = next((d for d in deps if d.state in (JobState.FAILED, JobState.SKIPPED, JobState.CANCELLED,
                                                       JobState.PRUNED)
                        or (d.verdict and d.verdict.blocks_dependents)), None)
            if bad is not None:
                self.set_state(out, JobState.SKIPPED, f"dependency {bad.job.name} {bad.state}", event="skipped")
            elif all(d.state in (JobState.FINISHED, JobState.REUSED) for d in deps):
                transition(out, JobState.READY)

    def skip_unstarted(self) -> None:
        """The loop ended: whatever could not start (a failed chain) is SKIPPED."""
        for out in self.outcomes.values():
            if out.state in (JobState.PENDING, JobState.READY):
                self.set_state(out, JobState.SKIPPED, out.reason or "dependency did not finish")

    def _cannot_start(self, out: Any, reason: str) -> None:
        self.set_state(out, JobState.FAILED, reason, event="failed")
        self.refresh_ready()

    # ---------------------------------------------------------------- dispatch
    def dispatch_ready(self) -> int:
        """Start what can start (see the module doc for the order). Returns how many started."""
        n = 0
        ready = [o for o in self.outcomes.values() if o.state == JobState.READY]
        ready.sort(key=lambda o: (kinds.of(o.job).order, self.order[o.job.identity]))
        for out in ready:
            if out.state != JobState.READY:  # a failure above skipped it
                continue
            job = out.job
            if self.gate is not None:
                held = self.gate(job)
                if held:  # the loop ends with it READY if nothing frees room: SKIPPED with this reason
                    out.reason = held
                    continue
            if not self.on_worker(job):
                if self._start_gang(out):
                    n += 1
                continue
            if kinds.of(job).trains and not self._fits(out):
                continue
            slot = self._pick_slot(job)
            if slot is None:
                continue  # every worker busy: wait for one
            if self._start_on_slot(out, slot):
                n += 1
        return n

    def on_worker(self, job: Any) -> bool:
        """Does this job run on a per-GPU worker (not a gang)? Its kind says (orchestrator.kinds):
        eval, mix, and 1-rank training that needs at most one GPU."""
        return kinds.of(job).placement(job, self.use_gpus) == "worker"

    def _fits(self, out: Any) -> bool:
        """A training job larger than any node would wait forever: fail it now."""
        job = out.job
        need_gpu = self.use_gpus and (job.gpus or 0) > 0
        need = (job.gpus or 0) if need_gpu else (job.ranks or 1)
        have = self.node_max["GPU" if need_gpu else "CPU"]
        if need <= have:
            return True
        self._cannot_start(out, f"needs {need} {'GPUs' if need_gpu else 'CPUs'} on one node; "
                                f"the largest node has {have:g}")
        return False

    def _attempt(self, out: Any, extra: dict) -> Attempt:
        transition(out, JobState.RUNNING)
        out.attempt += 1
        out.started, out.reason, out.placed = self.clock(), None, None
        self.hooks.started(out)
        self.hooks.event("dispatch", out)
        return Attempt(job=out.job, attempt=out.attempt, **extra)

    def _start_gang(self, out: Any) -> bool:
        job = out.job
        if not self._fits(out):  # a STRICT_PACK group larger than any node
            return False
        try:
            extra = self.hooks.prepare(job)  # a script job carries its files (checked against the plan)
        except Exception as e:  # noqa: BLE001 - the job cannot start; the sweep goes on
            self._cannot_start(out, one_line(e))
            return False
        attempt = self._attempt(out, extra)
        # its kind's shape: a script job is ONE actor with all its GPUs (torchrun starts the ranks)
        ranks, cpus = kinds.of(job).gang_shape(job, self.use_gpus)
        gang = self.launcher.start_gang(attempt, ranks=ranks, gpus=job.gpus or 0, use_gpus=self.use_gpus,
                                        cpus_per_rank=cpus)
        self.gangs[job.identity] = gang
        for ref in gang.pending():
            self.inflight[ref] = ("gang", gang, job.identity)
        return True

    def _pick_slot(self, job: Any) -> Slot | None:
        want = set(job.deps)
        # mixes (milliseconds each) may queue behind one another on the worker holding their
        # inputs; a training or eval job (minutes) only goes to a worker with nothing queued
        short = kinds.of(job).short
        depth = self.actor_depth if short else 1
        open_slots = [s for s in self.slots if s.calls() < depth]
        holders = [s for s in open_slots if s.keys & want]  # the workers that already hold the inputs
        idle = [s for s in open_slots if not s.inflight]
        for s in holders:
            if not s.inflight:
                return s
        if short and any(s.keys & want for s in self.slots):
            # its holder is busy: an idle worker takes the mix (an idle GPU is worth one more
            # n-gram pass); else queue behind the holder, never start a process to redo the pass
            if idle:
                return self._least_needed(idle)
            # queue behind other mixes only while mixes are short (then the queue hides the
            # driver's round trip); never behind minutes of eval or training
            if self.mix_s is None or self.mix_s > SHORT_MIX_S:
                return None
            return next((s for s in holders if all(self._short(r) for r in s.inflight)), None)
        if idle:  # an eval's artifact is cheap to fetch: it does not wait for the busy holder
            return self._least_needed(idle)
        if any(g.phase == "placing" for g in self.gangs.values()):
            # trains first: a free GPU goes to the waiting gang (it heads the longest chain)
            return None
        if len(self.slots) < self.max_actors:
            self.n_slots += 1
            slot = Slot(self.launcher.start_worker(self.use_gpus), self.n_slots)
            self.slots.append(slot)
            return slot
        return None

    def _short(self, ref: Any) -> bool:
        """Is the call behind `ref` a short job's (a mix point)?"""
        entry = self.inflight.get(ref)
        return bool(entry) and kinds.of(self.jobs[entry[2]]).short

    def _least_needed(self, idle: list[Slot]) -> Slot:
        """The idle worker holding the fewest inputs of waiting jobs (keep the others for them)."""
        needed = {d for o in self.outcomes.values() if o.state in (JobState.PENDING, JobState.READY)
                  for d in o.job.deps}
        return min(idle, key=lambda s: len(s.keys & needed))

    def inputs(self, identity: str) -> Any:
        """The output files of a finished or reused job, as the launcher's handle (fetched once)."""
        if identity not in self.files:
            self.files[identity] = self.launcher.put(self.hooks.fetch_files(identity))
        return self.files[identity]

    def _start_on_slot(self, out: Any, slot: Slot) -> bool:
        job = out.job
        kind = kinds.of(job)
        dep, inputs = None, None
        try:
            extra = self.hooks.prepare(job)
            if kind.needs_input:
                dep = job.deps[0] if job.deps else None
                if dep is None:
                    raise ValueError(f"{kind.name} job without an input")
                inputs = self.inputs(dep)  # a reused input comes from the MLflow artifact store
        except Exception as e:  # noqa: BLE001 - the job cannot start; the sweep goes on
            self._cannot_start(out, f"inputs unavailable: {one_line(e)}")
            return False
        context = kind.worker_context(job, self.jobs)  # a mix: the chunk size its eval scored with
        if mix_batch.batchable(self, out):  # with the READY mixes of the same eval and table key
            return mix_batch.start(self, out, slot, dep, inputs, context, extra)
        ref = self.launcher.run_on(slot.worker, self._attempt(out, extra), dep, inputs, context)
        out.placed = out.started  # a worker's GPU is held from the call on
        if kind.trains:
            slot.training, slot.train_name = job.identity, job.name
        if dep is not None:
            slot.keys.add(dep)
        slot.inflight.add(ref)
        slot.keys.add(job.identity)  # the worker keeps the job's outputs (artifact, token stats)
        self.inflight[ref] = ("slot", slot, job.identity)
        return True

    def release_idle_actors(self) -> None:
        """Free workers nobody needs: a waiting gang, or no worker job left."""
        gang_waiting = any(g.phase == "placing" for g in self.gangs.values())
        work_left = any(self.on_worker(o.job) and o.state not in TERMINAL for o in self.outcomes.values())
        if not gang_waiting and work_left:
            return
        for s in list(self.slots):
            if not s.inflight:  # ready jobs were offered to it just before: nobody needs it now
                self.launcher.kill(s.worker)
                self.slots.remove(s)

    # ---------------------------------------------------------------- completion
    def handle(self, ref: Any) -> None:
        """A ref of the launcher is done: move its gang on, or end its job."""
        where, host, ident = self.inflight.pop(ref)
        out = self.outcomes[ident]
        if out.state == JobState.STOPPING:
            self._stopped(out, where, host, ref)
            return
        try:
            if where == "gang":
                value = self.launcher.advance(host, ref)
                if getattr(out, "placed", None) is None and host.phase != "placing":
                    out.placed = self.clock()  # its resources are held from now: GPU-seconds count
                for r in host.pending():
                    self.inflight.setdefault(r, ("gang", host, ident))
                if value is None:
                    return
                self.gangs.pop(ident, None)
                if not self._reuse_gang(host):
                    host.release()
            else:
                host.inflight.discard(ref)
                host.call_of.pop(ref, None)
                if host.training == ident:
                    host.training = host.train_name = None
                if not host.inflight:
                    host.idle_since = self.clock()
                value = self.launcher.get(ref)
        except WorkerLost as e:
            self._lost(out, where, host, f"worker died: {e}")
            return
        except JobFailed as e:
            if where == "gang" and self.launcher.sibling_died(host):
                # a rank was killed and its peers failed in the collective: a lost worker
                self._lost(out, where, host, "worker died: a rank of the gang died")
                return
            self._drop_gang(where, host, ident)
            self._failed(out, str(e))
            return
        self._done(out, value)

    def _reuse_gang(self, gang: Gang) -> bool:
        """Hand a waiting gang's job (same shape) to this finished one: its placement group is
        held and its ranks are up, which saves the waiting job a placement and process start."""
        for ident, g in self.gangs.items():
            if g.phase == "placing" and g.ranks == gang.ranks and g.bundle == gang.bundle:
                for r in g.pending():
                    self.inflight.pop(r, None)
                g.release()
                gang.reassign(g.attempt)
                self.outcomes[ident].placed = self.clock()  # it takes held resources: no placement
                self.gangs[ident] = gang
                for r in gang.pending():
                    self.inflight[r] = ("gang", gang, ident)
                return True
        return False

    def _drop_gang(self, where: str, host: Any, ident: str) -> None:
        if where == "gang":
            for r in host.pending():
                self.inflight.pop(r, None)
            host.release()
            self.gangs.pop(ident, None)

    def _lost(self, out: Any, where: str, host: Any, reason: str) -> None:
        self._drop_gang(where, host, out.job.identity)
        if where == "slot" and host in self.slots:
            self.slots.remove(host)  # the worker is gone; its other calls fail on their own
        self.hooks.lost(out, reason)
        if out.attempt <= self.retries:
            self.set_state(out, JobState.READY, reason, event="retry")
        else:
            self.set_state(out, JobState.FAILED, f"{reason} (after {out.attempt} attempts)", event="failed")
            self.refresh_ready()

    def _failed(self, out: Any, reason: str, value: JobResult | None = None) -> None:
        self.hooks.failed(out, reason, value)
        self.set_state(out, JobState.FAILED, reason, event="failed")
        self.refresh_ready()

    def _done(self, out: Any, value: JobResult) -> None:
        if value.failed:  # a script that exited non-zero / timed out: not retried, it would fail again
            self._failed(out, str(value.failed)[:500], value)
            return
        short = kinds.of(out.job).short
        if short and isinstance(value.wall_s, (int, float)):
            self._n_mix += 1
            self.mix_s = (self.mix_s or 0.0) + (float(value.wall_s) - (self.mix_s or 0.0)) / self._n_mix
        if value.files or not short:  # no job reads a short job's (a mix's) outputs: no empty object put
            self.files[out.job.identity] = self.launcher.put(value.files)
        self.hooks.succeeded(out, value)
        self.set_state(out, JobState.FINISHED, event="finished")
        self.refresh_ready()

    # ---------------------------------------------------------------- stopping one job
    def stop(self, ident: str, reason: str) -> bool:
        """Stop one job (a pruner's decision). Not started yet: PRUNED at once. Running: a script
        gang's process tree is killed and the job ends PRUNED when its attempt returns (with its
        partial train.log); a golf_core gang or a per-GPU worker is released now (its GPUs free
        at once) and the job ends PRUNED. Returns whether the job was stopped."""
        out = self.outcomes[ident]
        if out.state in (JobState.PENDING, JobState.READY):
            self.set_state(out, JobState.PRUNED, reason, event="pruned")
            return True
        if out.state != JobState.RUNNING:
            return False
        self.set_state(out, JobState.STOPPING, reason, event="stopping")
        gang = self.gangs.get(ident)
        if gang is not None and kinds.of(out.job).stops_gracefully and gang.phase == "training":
            self.launcher.stop(gang)  # its train ref returns soon: handle() ends it PRUNED
            return True
        if gang is not None:
            self._drop_gang("gang", gang, ident)
        else:
            for ref, (where, slot, i) in list(self.inflight.items()):
                if i == ident and where == "slot":
                    self.inflight.pop(ref)
                    if slot in self.slots:  # its other queued calls fail on their own
                        self.slots.remove(slot)
                    self.launcher.kill(slot.worker)
        self._prune(out, None)
        return True

    def _stopped(self, out: Any, where: str, host: Any, ref: Any) -> None:
        """A stopped job's attempt came back (its partial files, an error, or a dead worker)."""
        value = None
        try:
            if where == "gang":
                value = self.launcher.advance(host, ref)
                if value is None and host.pending():  # another rank still to return
                    for r in host.pending():
                        self.inflight.setdefault(r, ("gang", host, out.job.identity))
                    return
                self.gangs.pop(out.job.identity, None)
                if not self._reuse_gang(host):  # its ranks go to a waiting gang of its shape
                    host.release()
            else:
                host.inflight.discard(ref)
                value = self.launcher.get(ref)
        except (WorkerLost, JobFailed):
            self._drop_gang(where, host, out.job.identity)
        if (value is not None and not value.failed and kinds.of(out.job).stops_gracefully
                and isinstance((value.result or {}).get("val_bpb"), (int, float))):
            # a late decision: the script had exited 0 with its score line before its processes
            # could be killed, so it trained to its end; it is FINISHED (hooks.succeeded notes the
            # decision), not PRUNED with a full run's score hidden
            self._done(out, value)
            return
        self._prune(out, value)

    def _prune(self, out: Any, value: JobResult | None) -> None:
        self.hooks.pruned(out, value)
        self.set_state(out, JobState.PRUNED, event="pruned")
        self.refresh_ready()

    # ---------------------------------------------------------------- the end
    def cancel(self) -> None:
        """Ctrl-C: free every gang and worker; open runs KILLED, every unfinished job CANCELLED."""
        for g in list(self.gangs.values()):
            g.release()
        self.gangs.clear()
        self.shutdown()
        self.inflight.clear()
        for out in self.outcomes.values():
            if out.state in (JobState.RUNNING, JobState.STOPPING):
                self.hooks.cancelled(out)
            if out.state not in TERMINAL:
                self.set_state(out, JobState.CANCELLED, "cancelled")

    def shutdown(self) -> None:
        for s in self.slots:
            try:
                self.launcher.kill(s.worker)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.slots.clear()
