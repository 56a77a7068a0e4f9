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
from typing import Any, Callable

from orchestrator import kinds
from orchestrator.run import mix_batch
from orchestrator.run.scheduler.gangs import Gangs
from orchestrator.run.scheduler.placement import Placement, Slot
from orchestrator.run.scheduler.ports import Gang, Hooks, Launcher
from orchestrator.run.scheduler.states import TERMINAL, JobState, one_line, transition
from orchestrator.run.scheduler.stopping import Stopping
from workers.contract import Attempt, JobFailed, JobResult, WorkerLost

__all__ = ["Scheduler"]


class Scheduler(Placement, Gangs, Stopping):
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
        self._pending: list | None = None  # refresh_ready's PENDING jobs (rebuilt when jobs are added)
        self._pending_of = 0

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
        # only PENDING jobs can change here, and no job becomes PENDING again (states.py): the
        # scan covers the ones still waiting, not every job, once per finished job (issue 21)
        if self._pending is None or self._pending_of != len(self.outcomes):
            self._pending = [o for o in self.outcomes.values() if o.state == JobState.PENDING]
            self._pending_of = len(self.outcomes)
        waiting = self._pending
        self._pending = [o for o in waiting if o.state == JobState.PENDING]
        for out in waiting:
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
        n, no_slot = 0, set()
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
            # _pick_slot's answer depends on the job's kind and inputs only, until a job starts:
            # a thousand READY mixes of one eval ask once per turn, not once each (issue 21)
            like = (kinds.of(job).name, job.deps)
            if like in no_slot:
                continue
            slot = self._pick_slot(job)
            if slot is None:
                no_slot.add(like)
                continue  # every worker busy: wait for one
            no_slot.clear()
            if self._start_on_slot(out, slot):
                n += 1
        return n

    def _attempt(self, out: Any, extra: dict) -> Attempt:
        transition(out, JobState.RUNNING)
        out.attempt += 1
        out.started, out.reason, out.placed = self.clock(), None, None
        self.hooks.started(out)
        self.hooks.event("dispatch", out)
        return Attempt(job=out.job, attempt=out.attempt, **extra)

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
