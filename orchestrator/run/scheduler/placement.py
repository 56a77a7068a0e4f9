"""Where a ready job runs: per-GPU worker slots (preferring the one holding the job's inputs), the
node-size check, and releasing idle workers (a mixin of orchestrator.run.scheduler.Scheduler)."""
from __future__ import annotations

import time
from typing import Any

from orchestrator import kinds
from orchestrator.run.scheduler.states import TERMINAL, JobState

__all__ = ["Placement", "SHORT_MIX_S", "Slot"]

SHORT_MIX_S = 0.2  # mixes shorter than this (mean) queue on the worker holding their n-gram pass


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


class Placement:
    """The placement policy (the Scheduler's module doc): which slot, or none yet."""

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
