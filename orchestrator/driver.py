"""The Ray driver: runs a Plan's jobs, skipping what MLflow already holds.

One event loop (`ray.wait` over every in-flight ref) drives everything, so nothing blocks:
- resume: a job whose identity has a FINISHED run is reused (its files fetched from the
  MLflow artifact store only if a dependent must run); RUNNING runs a dead driver left are
  closed as KILLED and the job reruns.
- multi-rank training jobs run as gangs (workers.gang.TrainGang: STRICT_PACK placement group,
  N ranks, torch.distributed); 1-rank training, eval and mix jobs go to long-lived per-GPU
  workers (workers.eval_actor.GpuWorker; per CPU without GPUs), preferring the worker that
  already holds the job's inputs, so a chain train -> eval -> mix on one GPU starts one process.
- a job waits for resources (pending placement groups / actors), never times out; idle
  workers are released when a gang is waiting, so the two kinds cannot starve each other.
- a mix whose worker is busy goes to an idle worker (one more n-gram pass beats an idle GPU);
  it queues behind the busy one only behind other mixes, and only while mixes are short.
- a job whose actor dies (RayActorError, a SIGKILLed worker) is rerun up to `retries` times,
  each attempt its own MLflow run tagged golf.attempt; a job that raises is FAILED (a rerun
  would raise again) and its dependents are skipped; invalid results finish with
  golf.valid=false (orchestrator.validity) and the sweep goes on.
- Ctrl-C (KeyboardInterrupt, or SIGTERM turned into one by `golf run`) kills the actors,
  removes the placement groups and closes open runs as KILLED.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

from orchestrator.driver_tracking import TrackingAdapter
from orchestrator.validity import Verdict, judge
from workers.eval_actor import EVAL_FILES, TRAIN_FILES, GpuWorker
from workers.gang import TrainGang
from workers.runner import GolfRunner

__all__ = ["DriverOptions", "JobOutcome", "SweepReport", "run_plan"]

# Errors that mean "the process running the job went away", not "the job is wrong".
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)
TERMINAL = {"finished", "reused", "failed", "skipped", "cancelled"}
KIND_ORDER = {"train": 0, "eval": 1, "mix": 2}
SHORT_MIX_S = 0.2  # mixes shorter than this (mean) queue on the worker holding their n-gram pass


@dataclass
class DriverOptions:
    data_dir: str | None = None  # default: plan.data.path
    work_dir: str | None = None  # per-node scratch for job outputs (default: a temp dir)
    runner: Any = None  # default GolfRunner(); tests and the benchmark inject stand-ins
    retries: int | None = None  # default: plan.retries, else 2
    use_gpus: bool | None = None  # default: the cluster has GPUs
    max_eval_actors: int | None = None  # default: GPUs (or CPUs) in the cluster
    actor_depth: int = 2  # calls queued per eval actor: hides the driver's round trip
    poll_s: float = 0.5
    progress: Any = None  # orchestrator.progress.SweepProgress-like: .update(report, running)
    on_event: Callable[[str, "JobOutcome"], None] | None = None  # tests: ("dispatch"|"done"|..., outcome)
    connect: Callable[[], None] | None = None  # called when Ray is needed and not connected yet


@dataclass
class JobOutcome:
    job: Any
    state: str = "pending"  # pending ready running finished reused failed skipped cancelled
    attempt: int = 0
    run_id: str | None = None  # the MLflow run id (reused run) or the tracker's run key (ours)
    result: dict | None = None
    verdict: Verdict | None = None
    reason: str | None = None
    output: dict | None = None  # what the worker returned (ranks, placement, actor pid ...)
    started: float | None = None
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

    def counts(self) -> Counter:
        return Counter(o.state for o in self.outcomes.values())

    def best(self) -> dict | None:
        """The lowest valid val_bpb among finished/reused jobs: {"val_bpb", "name", "kind"}."""
        best = None
        for o in self.outcomes.values():
            r = o.result or {}
            if o.state in ("finished", "reused") and isinstance(r.get("val_bpb"), (int, float)) \
                    and (o.verdict is None or o.verdict.valid):
                if best is None or r["val_bpb"] < best["val_bpb"]:
                    best = {"val_bpb": float(r["val_bpb"]), "name": o.job.name, "kind": o.job.kind}
        return best


class _Slot:
    """One GpuWorker and what the driver knows about it."""

    def __init__(self, actor, index: int):
        self.actor = actor
        self.index = index
        self.inflight: set = set()
        self.keys: set[str] = set()  # identities whose outputs this actor holds
        self.idle_since = time.time()
        self.training: str | None = None  # the identity of the 1-rank training job it runs
        self.train_name: str | None = None


class _Driver:
    def __init__(self, plan, tracker, opts: DriverOptions):
        self.plan = plan
        self.opts = opts
        self.track = TrackingAdapter(tracker, spool_dir=os.path.join(opts.work_dir, "spool") if opts.work_dir else None)
        self.runner = opts.runner if opts.runner is not None else GolfRunner()
        self.data_dir = str(opts.data_dir or plan.data.path)
        self.retries = opts.retries if opts.retries is not None else int(getattr(plan, "retries", 2))
        self.use_gpus = False
        self.max_actors = 1
        self.node_max = {"GPU": 0.0, "CPU": 0.0}
        self.jobs = {j.identity: j for j in plan.jobs}
        self.order = {j.identity: i for i, j in enumerate(plan.jobs)}
        self.report = SweepReport(plan, {j.identity: JobOutcome(j) for j in plan.jobs}, time.time())
        self.files: dict[str, Any] = {}  # identity -> ObjectRef of {name: bytes}
        self.reused_runs: dict[str, Any] = {}  # identity -> tracker record (files fetched lazily)
        self.inflight: dict[Any, tuple] = {}  # ref -> ("gang", gang, identity) | ("slot", slot, identity)
        self.gangs: dict[str, TrainGang] = {}
        self.slots: list[_Slot] = []
        self.live: dict[str, dict] = {}  # train identity -> rank 0's latest progress event
        self._live_refs: dict[Any, str] = {}
        self._live_t = 0.0
        self.n_slots = 0
        self.mix_s: float | None = None  # running mean of the mix jobs' wall time (s)
        self._n_mix = 0

    # ---------------------------------------------------------------- setup
    def resume(self) -> None:
        self.report.sweep_run_id = self.track.start_sweep(self.plan)
        for job in self.plan.jobs:
            out = self.report.outcomes[job.identity]
            rec = self.track.find_finished(job)
            if rec is not None:
                out.state, out.run_id = "reused", rec.run_id
                out.result = rec.result
                out.verdict = Verdict(valid=rec.valid, reason=rec.reason, compliant=rec.compliant)
                self.reused_runs[job.identity] = rec
                continue
            self.track.close_stale(job)  # RUNNING runs of a dead driver -> KILLED
        self._refresh_ready()

    def setup_ray(self) -> None:
        """Connect (only when some job must run: a fully reused sweep never starts Ray)."""
        if not ray.is_initialized():
            if self.opts.connect is None:
                raise RuntimeError("run_plan needs a Ray connection (orchestrator.raycluster.connect)")
            self.opts.connect()
        res = ray.cluster_resources()
        wants_gpu = any((j.gpus or 0) > 0 for j in self.plan.jobs)
        self.use_gpus = (bool(res.get("GPU", 0)) and wants_gpu) if self.opts.use_gpus is None else self.opts.use_gpus
        self.max_actors = self.opts.max_eval_actors or max(
            1, int(res.get("GPU", 0) if self.use_gpus else res.get("CPU", 1)))
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        self.node_max = {k: max([n.get(k, 0.0) for n in nodes] or [0.0]) for k in ("GPU", "CPU")}

    # ---------------------------------------------------------------- state
    def _refresh_ready(self) -> None:
        for ident, out in self.report.outcomes.items():
            if out.state != "pending":
                continue
            deps = [self.report.outcomes[d] for d in out.job.deps if d in self.report.outcomes]
            if any(d.state in ("failed", "skipped", "cancelled") or (d.verdict and d.verdict.blocks_dependents)
                   for d in deps):
                bad = next(d for d in deps if d.state in ("failed", "skipped", "cancelled")
                           or (d.verdict and d.verdict.blocks_dependents))
                out.state, out.reason = "skipped", f"dependency {bad.job.name} {bad.state}"
                self._event("skipped", out)
                continue
            if all(d.state in ("finished", "reused") for d in deps):
                out.state = "ready"

    def _event(self, what: str, out: JobOutcome) -> None:
        if self.opts.on_event:
            self.opts.on_event(what, out)
        if self.opts.progress is not None:
            self.opts.progress.update(self.report, self._running_progress())

    def _running_progress(self) -> dict:
        """name -> what a training gang is doing ("placing", "step 120 loss 3.2100", ...)."""
        out = {}
        for ident, g in self.gangs.items():
            ev = self.live.get(ident)
            if g.phase == "training" and ev and ev.get("event") == "step":
                out[g.job["name"]] = f"step {ev.get('step')} train_loss {ev.get('train_loss', float('nan')):.4f}"
            else:
                out[g.job["name"]] = g.phase
        for s in self.slots:
            if s.training is not None:
                ev = self.live.get(s.training)
                out[s.train_name] = (f"step {ev.get('step')} train_loss {ev.get('train_loss', float('nan')):.4f}"
                                     if ev and ev.get("event") == "step" else "training")
        return out

    def poll_live(self, every_s: float = 2.0) -> None:
        """Rank 0's latest on_progress event of each training gang (threaded actor call; never
        waited on: answers are picked up on a later turn of the loop)."""
        if self._live_refs:
            done, _ = ray.wait(list(self._live_refs), num_returns=len(self._live_refs), timeout=0)
            for ref in done:
                ident = self._live_refs.pop(ref)
                try:
                    ev = ray.get(ref)
                except Exception:  # noqa: BLE001 - a dying rank: its job's ref reports that
                    continue
                if ev:
                    self.live[ident] = ev
        if time.time() - self._live_t < every_s or self._live_refs:
            return
        self._live_t = time.time()
        for ident, g in self.gangs.items():
            ref = g.progress()
            if ref is not None:
                self._live_refs[ref] = ident
        for s in self.slots:
            if s.training is not None:
                self._live_refs[s.actor.progress.remote()] = s.training

    def _job_payload(self, job, attempt: int) -> dict:
        return {"kind": job.kind, "identity": job.identity, "name": job.name, "config": job.config,
                "seed": job.seed, "attempt": attempt, "params": dict(job.params or {})}

    def _files_ref(self, ident: str):
        """The output files of a finished or reused job, as an ObjectRef (fetched once)."""
        if ident not in self.files:
            rec = self.reused_runs[ident]
            names = TRAIN_FILES if self.jobs[ident].kind == "train" else EVAL_FILES
            self.files[ident] = ray.put(self.track.fetch_files(rec, names))
        return self.files[ident]

    # ---------------------------------------------------------------- dispatch
    def dispatch_ready(self) -> int:
        """Start what can start, longest remaining chain first: trains, then evals, then mixes
        (a free actor goes to an eval, which unlocks a whole mix grid, before another mix)."""
        n = 0
        ready = [o for o in self.report.outcomes.values() if o.state == "ready"]
        ready.sort(key=lambda o: (KIND_ORDER.get(o.job.kind, 3), self.order[o.job.identity]))
        for out in ready:
            job = out.job
            if job.kind == "train" and not self._on_worker(job):
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

    def _open(self, job, out: JobOutcome) -> dict:
        out.attempt += 1
        out.state, out.started, out.reason = "running", time.time(), None
        out.run_id = self.track.open(job, out.attempt, self.report.sweep_run_id)
        out.attempts.append({"attempt": out.attempt, "run_id": out.run_id, "status": "RUNNING"})
        self._event("dispatch", out)
        return self._job_payload(job, out.attempt)

    def _start_train(self, job, out: JobOutcome) -> None:
        if not self._fits(job, out):  # a STRICT_PACK group larger than any node
            return
        payload = self._open(job, out)
        gang = TrainGang(payload, self.runner, ranks=job.ranks or 1, gpus=job.gpus or 0, use_gpus=self.use_gpus,
                         data_dir=self.data_dir, work_dir=self.opts.work_dir)
        self.gangs[job.identity] = gang
        for ref in gang.pending():
            self.inflight[ref] = ("gang", gang, job.identity)

    def _pick_slot(self, job) -> _Slot | None:
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
            slot = _Slot(GpuWorker.options(**opts).remote(self.runner, self.opts.work_dir), self.n_slots)
            self.slots.append(slot)
            return slot
        return None

    def _kind(self, ref) -> str | None:
        entry = self.inflight.get(ref)
        return self.jobs[entry[2]].kind if entry else None

    def _least_needed(self, idle: list[_Slot]) -> _Slot:
        """The idle worker holding the fewest inputs of waiting jobs (keep the others for them)."""
        needed = {d for o in self.report.outcomes.values() if o.state in ("pending", "ready") for d in o.job.deps}
        return min(idle, key=lambda s: len(s.keys & needed))

    def _start_on_slot(self, job, out: JobOutcome, slot: _Slot) -> None:
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
            out.state, out.reason, out.ended = "failed", f"inputs unavailable: {_one_line(e)}", time.time()
            self._event("failed", out)
            self._refresh_ready()
            return
        payload = self._open(job, out)
        if job.kind == "eval":
            ref = slot.actor.run_eval.remote(payload, dep, holder, self.data_dir)
        elif job.kind == "mix":
            dep_cfg = self.jobs[dep].config if dep in self.jobs else {}
            chunk = int((dep_cfg.get("eval") or {}).get("chunk_tokens", 1_048_576))
            ref = slot.actor.run_mix.remote(payload, dep, holder, self.data_dir, int(self.plan.data.vocab_size), chunk)
        else:
            raise ValueError(f"job {job.name}: unknown kind {job.kind!r}")
        slot.keys.add(dep)
        self._track_slot_ref(slot, ref, job.identity)

    def _track_slot_ref(self, slot: _Slot, ref, ident: str) -> None:
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

    # ---------------------------------------------------------------- completion
    def handle(self, ref) -> None:
        kind, holder, ident = self.inflight.pop(ref)
        out = self.report.outcomes[ident]
        try:
            if kind == "gang":
                value = holder.advance(ref)
                for r in holder.pending():
                    self.inflight.setdefault(r, ("gang", holder, ident))
                if value is None:
                    return
                self.gangs.pop(ident, None)
                if not self._reuse_gang(holder):
                    holder.release()
            else:
                holder.inflight.discard(ref)
                if holder.training == ident:
                    holder.training = holder.train_name = None
                if not holder.inflight:
                    holder.idle_since = time.time()
                value = ray.get(ref)
        except RETRYABLE as e:
            self._lost(out, kind, holder, f"worker died: {type(e).__name__}")
            return
        except RayTaskError as e:
            if kind == "gang" and self._sibling_died(holder):
                # a rank was killed and its peers failed in the collective: a lost worker
                self._lost(out, kind, holder, "worker died: a rank of the gang died")
                return
            self._drop_gang(kind, holder, ident)
            self._finish_failed(out, _one_line(e))
            return
        self._finish_ok(out, value)

    def _reuse_gang(self, gang: TrainGang) -> bool:
        """Hand a waiting gang's job (same shape) to this finished one: its placement group is
        held and its ranks are up, which saves the waiting job a placement and process start."""
        for ident, g in self.gangs.items():
            if g.phase == "placing" and g.ranks == gang.ranks and g.bundle == gang.bundle:
                for r in g.pending():
                    self.inflight.pop(r, None)
                g.release()
                gang.reassign(g.job)
                self.gangs[ident] = gang
                for r in gang.pending():
                    self.inflight[r] = ("gang", gang, ident)
                return True
        return False

    def _sibling_died(self, gang: TrainGang, wait_s: float = 5.0) -> bool:
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

    def _drop_gang(self, kind: str, holder, ident: str) -> None:
        if kind == "gang":
            for r in holder.pending():
                self.inflight.pop(r, None)
            holder.release()
            self.gangs.pop(ident, None)

    def _lost(self, out: JobOutcome, kind: str, holder, reason: str) -> None:
        self._drop_gang(kind, holder, out.job.identity)
        if kind == "slot" and holder in self.slots:
            self.slots.remove(holder)  # the actor is gone; its other calls fail on their own
        self.track.close(out.run_id, "FAILED", {"golf.reason": reason})
        out.attempts[-1].update(status="FAILED", reason=reason)
        if out.attempt <= self.retries:
            out.state, out.reason = "ready", reason
            self._event("retry", out)
        else:
            self._finish_failed(out, f"{reason} (after {out.attempt} attempts)", close=False)

    def _finish_failed(self, out: JobOutcome, reason: str, close: bool = True) -> None:
        if close:
            self.track.close(out.run_id, "FAILED", {"golf.reason": reason})
            out.attempts[-1].update(status="FAILED", reason=reason)
        out.state, out.reason, out.ended = "failed", reason, time.time()
        self._event("failed", out)
        self._refresh_ready()

    def _finish_ok(self, out: JobOutcome, value: dict) -> None:
        job = out.job
        result = dict(value.get("result") or {})
        upstream = None
        for d in job.deps:
            v = self.report.outcomes[d].verdict if d in self.report.outcomes else None
            if v is not None and (upstream is None or not v.valid):
                upstream = v
        verdict = judge(job.kind, job.config, result, upstream)
        if job.kind == "mix" and isinstance(value.get("wall_s"), (int, float)):
            self._n_mix += 1
            self.mix_s = (self.mix_s or 0.0) + (float(value["wall_s"]) - (self.mix_s or 0.0)) / self._n_mix
        files = value.get("files") or {}
        self.files[job.identity] = ray.put(files)
        self.track.record(out.run_id, job, result, verdict, files)
        self.track.close(out.run_id, "FINISHED", {})
        out.result, out.verdict, out.output = result, verdict, {k: v for k, v in value.items() if k != "files"}
        out.state, out.ended = "finished", time.time()
        out.reason = verdict.reason
        out.attempts[-1].update(status="FINISHED")
        self._event("finished", out)
        self._refresh_ready()

    # ---------------------------------------------------------------- loop
    def loop(self) -> None:
        t_loop, waited = time.perf_counter(), 0.0
        while True:
            self.dispatch_ready()
            self.release_idle_actors()
            if not self.inflight:  # every ready job was dispatched, so nothing can start any more
                break
            refs = list(self.inflight)
            t_wait = time.perf_counter()
            done, _ = ray.wait(refs, num_returns=1, timeout=self.opts.poll_s)
            waited += time.perf_counter() - t_wait
            if done:  # gather everything else that is already done too
                more, _ = ray.wait([r for r in refs if r not in done], num_returns=len(refs) - len(done), timeout=0)
                done = list(done) + list(more)
            for ref in done:
                if ref in self.inflight:  # handling an earlier one may have dropped it (a gang)
                    self.handle(ref)
            if self.opts.progress is not None:
                self.poll_live()
                self.opts.progress.update(self.report, self._running_progress())
            # the driver's own time (dispatch, bookkeeping, tracker calls), not the jobs'
            self.report.driver_busy_s = time.perf_counter() - t_loop - waited
        for out in self.report.outcomes.values():  # whatever could not start (a failed chain)
            if out.state in ("pending", "ready"):
                out.state, out.reason = "skipped", out.reason or "dependency did not finish"

    def cancel(self) -> None:
        """Ctrl-C: free every actor and placement group, close open runs as KILLED."""
        for g in list(self.gangs.values()):
            g.release()
        self.gangs.clear()
        self.shutdown_actors()
        self.inflight.clear()
        for out in self.report.outcomes.values():
            if out.state == "running":
                self.track.close(out.run_id, "KILLED", {"golf.reason": "cancelled"})
                out.attempts[-1].update(status="KILLED", reason="cancelled")
            if out.state not in TERMINAL:
                out.state, out.reason = "cancelled", "cancelled"

    def shutdown_actors(self) -> None:
        for s in self.slots:
            try:
                ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001
                pass
        self.slots.clear()


def _one_line(e: BaseException) -> str:
    """The job's own exception, one line: 'ValueError: ...'."""
    cause = getattr(e, "cause", None) or e
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return (text[0] if text else type(cause).__name__)[:500]


def run_plan(plan, tracker, options: DriverOptions | None = None, **kwargs) -> SweepReport:
    """Run `plan` on the connected Ray cluster, recording into `tracker`. Returns the report.

    Needs `ray.init()` done by the caller, or `options.connect` to do it once a job must run.
    Keyword arguments are DriverOptions fields."""
    opts = options or DriverOptions(**kwargs)
    if not ray.is_initialized() and opts.connect is None:
        raise RuntimeError("run_plan needs a Ray connection (orchestrator.raycluster.connect)")
    drv = _Driver(plan, tracker, opts)
    try:
        drv.resume()
        if any(o.state not in TERMINAL for o in drv.report.outcomes.values()):
            drv.setup_ray()
        if opts.progress is not None:
            opts.progress.start(drv.report)
        drv.loop()
    except KeyboardInterrupt:
        drv.cancel()
        drv.report.status = "KILLED"
        drv.track.end_sweep(drv.report)
        raise
    finally:
        drv.shutdown_actors()
        drv.report.ended = time.time()
        if opts.progress is not None:
            opts.progress.stop(drv.report)
    for out in drv.report.outcomes.values():  # tracker run keys -> MLflow run ids (when created)
        for att in out.attempts:
            att["run_id"] = drv.track.run_id(att["run_id"]) or att["run_id"]
        if out.attempts and out.state != "reused":
            out.run_id = out.attempts[-1]["run_id"]
    counts = drv.report.counts()
    drv.report.status = "FAILED" if counts.get("failed") else "FINISHED"
    drv.track.end_sweep(drv.report)
    return drv.report
