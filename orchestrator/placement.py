"""Where a ready job runs: a training gang, or which long-lived per-GPU worker takes it.

- multi-rank training jobs run as gangs (workers.gang.TrainGang: STRICT_PACK placement group,
  N ranks, torch.distributed); 1-rank training, eval and mix jobs go to long-lived per-GPU
  workers (workers.eval_actor.GpuWorker; per CPU without GPUs), preferring the worker that
  already holds the job's inputs, so a chain train -> eval -> mix on one GPU starts one process.
- a job waits for resources (pending placement groups / actors), never times out; idle
  workers are released when a gang is waiting, so the two kinds cannot starve each other.
- a mix whose worker is busy goes to an idle worker (one more n-gram pass beats an idle GPU);
  it queues behind the busy one only behind other mixes, and only while mixes are short.

`Placement` is a part of the driver (orchestrator.driver._Driver), split off so the loop reads
apart from the choice of worker. It uses the driver's state: plan, opts, jobs, order, report,
runner, data_dir, use_gpus, max_actors, node_max, slots, gangs, inflight, n_slots, mix_s; and
its bookkeeping: _open (start an attempt's run), _files_ref, _event, _refresh_ready.
"""
from __future__ import annotations

import time

import ray

from golf_core.eval.config import EvalConfig
from orchestrator.driver_types import TERMINAL, JobOutcome, one_line
from orchestrator.script_plan import script_payload
from workers.eval_actor import GpuWorker
from workers.gang import TrainGang

__all__ = ["KIND_ORDER", "SHORT_MIX_S", "Placement", "Slot"]

KIND_ORDER = {"train": 0, "script_train": 0, "eval": 1, "mix": 2}
SHORT_MIX_S = 0.2  # mixes shorter than this (mean) queue on the worker holding their n-gram pass


class Slot:
    """One GpuWorker and what the driver knows about it."""

    def __init__(self, actor, index: int):
        self.actor = actor
        self.index = index
        self.inflight: set = set()
        self.keys: set[str] = set()  # identities whose outputs this actor holds
        self.idle_since = time.time()
        self.training: str | None = None  # the identity of the 1-rank training job it runs
        self.train_name: str | None = None


class Placement:
    """Dispatch of ready jobs onto gangs and workers (a mixin of the driver; see the module doc)."""

    def dispatch_ready(self) -> int:
        """Start what can start, longest remaining chain first: trains, then evals, then mixes
        (a free actor goes to an eval, which unlocks a whole mix grid, before another mix)."""
        n = 0
        ready = [o for o in self.report.outcomes.values() if o.state == "ready"]
        ready.sort(key=lambda o: (KIND_ORDER.get(o.job.kind, 3), self.order[o.job.identity]))
        for out in ready:
            job = out.job
            if job.kind in ("train", "script_train") and not self._on_worker(job):
                self._start_train(job, out)
            else:
                if job.kind == "train" and not self._fits(job, out):
                    continue
                slot = self._pick_slot(job)
                if slot is None:
                    continue  # every actor busy: wait for one
                self._start_on_slot(job, out, slot)
            n += 1
        return n

    def _on_worker(self, job) -> bool:
        """Does this job run on a per-GPU worker (not a gang)? Eval, mix, and 1-rank training
        that needs at most one GPU."""
        if job.kind == "script_train":  # one actor holding the job's GPUs runs torchrun
            return False
        if job.kind != "train":
            return True
        return (job.ranks or 1) == 1 and (not self.use_gpus or (job.gpus or 0) <= 1)

    def _fits(self, job, out: JobOutcome) -> bool:
        """A training job larger than any node would wait forever: fail it now."""
        need_gpu = self.use_gpus and (job.gpus or 0) > 0
        need = (job.gpus or 0) if need_gpu else (job.ranks or 1)
        have = self.node_max["GPU" if need_gpu else "CPU"]
        if need <= have:
            return True
        out.state = "failed"
        out.reason = f"needs {need} {'GPUs' if need_gpu else 'CPUs'} on one node; the largest node has {have:g}"
        self._event("failed", out)
        self._refresh_ready()
        return False

    def _start_train(self, job, out: JobOutcome) -> None:
        if not self._fits(job, out):  # a STRICT_PACK group larger than any node
            return
        try:
            extra = script_payload(job)  # a script job carries its files (checked against the plan)
        except Exception as e:  # noqa: BLE001 - the job cannot start; the sweep goes on
            out.state, out.reason, out.ended = "failed", one_line(e), time.time()
            self._event("failed", out)
            self._refresh_ready()
            return
        payload = {**self._open(job, out), **extra}
        # a script job is ONE actor with all its GPUs: torchrun starts the ranks
        ranks = 1 if job.kind == "script_train" else (job.ranks or 1)
        cpus = float(job.ranks or 1) if job.kind == "script_train" and not self.use_gpus else 1.0  # N gloo ranks
        gang = TrainGang(payload, self.runner, ranks=ranks, gpus=job.gpus or 0, use_gpus=self.use_gpus,
                         data_dir=self.data_dir, work_dir=self.opts.work_dir, cpus_per_rank=cpus)
        self.gangs[job.identity] = gang
        for ref in gang.pending():
            self.inflight[ref] = ("gang", gang, job.identity)

    def _pick_slot(self, job) -> Slot | None:
        want = set(job.deps)
        # mixes (milliseconds each) may queue behind one another on the actor holding their
        # inputs; a training or eval job (minutes) only goes to an actor with nothing queued
        depth = self.opts.actor_depth if job.kind == "mix" else 1
        open_slots = [s for s in self.slots if len(s.inflight) < depth]
        holders = [s for s in open_slots if s.keys & want]  # the actors that already hold the inputs
        idle = [s for s in open_slots if not s.inflight]
        for s in holders:
            if not s.inflight:
                return s
        if job.kind == "mix" and any(s.keys & want for s in self.slots):
            # its holder is busy: an idle worker takes the mix (an idle GPU is worth one more
            # n-gram pass); else queue behind the holder, never start a process to redo the pass
            if idle:
                return self._least_needed(idle)
            # queue behind other mixes only while mixes are short (then the queue hides the
            # driver's round trip); never behind minutes of eval or training
            if self.mix_s is None or self.mix_s > SHORT_MIX_S:
                return None
            return next((s for s in holders if all(self._kind(r) == "mix" for r in s.inflight)), None)
        if idle:  # an eval's artifact is cheap to fetch: it does not wait for the busy holder
            return self._least_needed(idle)
        if any(g.phase == "placing" for g in self.gangs.values()):
            # trains first: a free GPU goes to the waiting gang (it heads the longest chain)
            return None
        if len(self.slots) < self.max_actors:
            opts = {"num_cpus": 1}
            if self.use_gpus:
                opts["num_gpus"] = 1
            self.n_slots += 1
            slot = Slot(GpuWorker.options(**opts).remote(self.runner, self.opts.work_dir), self.n_slots)
            self.slots.append(slot)
            return slot
        return None

    def _kind(self, ref) -> str | None:
        entry = self.inflight.get(ref)
        return self.jobs[entry[2]].kind if entry else None

    def _least_needed(self, idle: list[Slot]) -> Slot:
        """The idle worker holding the fewest inputs of waiting jobs (keep the others for them)."""
        needed = {d for o in self.report.outcomes.values() if o.state in ("pending", "ready") for d in o.job.deps}
        return min(idle, key=lambda s: len(s.keys & needed))

    def _start_on_slot(self, job, out: JobOutcome, slot: Slot) -> None:
        if job.kind == "train":
            ref = slot.actor.train.remote(self._open(job, out), self.data_dir)
            slot.training, slot.train_name = job.identity, job.name
            self._track_slot_ref(slot, ref, job.identity)
            return
        dep = job.deps[0] if job.deps else None
        try:
            if dep is None:
                raise ValueError(f"{job.kind} job without an input")
            holder = [self._files_ref(dep)]  # a reused input comes from the MLflow artifact store
        except Exception as e:  # noqa: BLE001 - the job cannot start; the sweep goes on
            out.state, out.reason, out.ended = "failed", f"inputs unavailable: {one_line(e)}", time.time()
            self._event("failed", out)
            self._refresh_ready()
            return
        payload = self._open(job, out)
        if job.kind == "eval":
            ref = slot.actor.run_eval.remote(payload, dep, holder, self.data_dir)
        elif job.kind == "mix":
            dep_cfg = self.jobs[dep].config if dep in self.jobs else {}
            chunk = int((dep_cfg.get("eval") or {}).get("chunk_tokens", EvalConfig.model_fields["chunk_tokens"].default))
            ref = slot.actor.run_mix.remote(payload, dep, holder, self.data_dir, int(self.plan.data.vocab_size), chunk)
        else:
            raise ValueError(f"job {job.name}: unknown kind {job.kind!r}")
        slot.keys.add(dep)
        self._track_slot_ref(slot, ref, job.identity)

    def _track_slot_ref(self, slot: Slot, ref, ident: str) -> None:
        slot.inflight.add(ref)
        slot.keys.add(ident)  # the worker keeps the job's outputs (artifact, token stats)
        self.inflight[ref] = ("slot", slot, ident)

    def release_idle_actors(self) -> None:
        """Free workers nobody needs: a waiting gang, or no worker job left."""
        gang_waiting = any(g.phase == "placing" for g in self.gangs.values())
        work_left = any(self._on_worker(o.job) and o.state not in TERMINAL for o in self.report.outcomes.values())
        if not gang_waiting and work_left:
            return
        for s in list(self.slots):
            if not s.inflight:  # ready jobs were offered to it just before: nobody needs it now
                ray.kill(s.actor, no_restart=True)
                self.slots.remove(s)
