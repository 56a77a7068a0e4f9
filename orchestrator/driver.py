"""The Ray driver: runs a Plan's jobs, skipping what MLflow already holds.

One event loop (`ray.wait` over every in-flight ref) drives everything, so nothing blocks:
- resume: a job whose identity has a FINISHED run is reused (its files fetched from the
  MLflow artifact store only if a dependent must run); RUNNING runs a dead driver left are
  closed as KILLED and the job reruns.
- placement (orchestrator.placement): multi-rank training jobs run as gangs, 1-rank training,
  eval and mix jobs go to long-lived per-GPU workers, preferring the worker that already holds
  the job's inputs; a job waits for resources, never times out.
- a job whose actor dies (RayActorError, a SIGKILLed worker) is rerun up to `retries` times,
  each attempt its own MLflow run tagged golf.attempt; a job that raises is FAILED (a rerun
  would raise again) and its dependents are skipped; invalid results finish with
  golf.valid=false (orchestrator.validity) and the sweep goes on.
- Ctrl-C (KeyboardInterrupt, or SIGTERM turned into one by `golf run`) kills the actors,
  removes the placement groups and closes open runs as KILLED.
- one driver per sweep (orchestrator.lease): the sweep's lease is taken before any run is
  touched (LeaseHeld while another driver is alive, or wait for it), heartbeated while the
  sweep runs, released once the tracker delivered everything (Tracker.close). Only after
  taking it are RUNNING runs closed as stale, and never those of another live sweep.

The records it takes and returns (DriverOptions, JobOutcome, SweepReport) live in
orchestrator.driver_types and are importable from here.
"""
from __future__ import annotations

import os
import time
import weakref
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

from orchestrator.driver_tracking import TrackingAdapter
from orchestrator.driver_types import TERMINAL, DriverOptions, JobOutcome, SweepReport, one_line
from orchestrator.lease import LeaseLost, SweepLease
from orchestrator.placement import Placement, Slot
from orchestrator.script_live import ScriptLive
from orchestrator.validity import Verdict, judge
from workers.eval_actor import EVAL_FILES, TRAIN_FILES
from workers.gang import TrainGang
from workers.runner import GolfRunner

__all__ = ["DriverOptions", "JobOutcome", "SweepReport", "run_plan"]

# tracker -> {sweep identity: SweepLease} held until that tracker closes (a second run_plan on
# the same open tracker is the same driver, not a rival)
_LEASES: "weakref.WeakKeyDictionary[Any, dict[str, SweepLease]]" = weakref.WeakKeyDictionary()

# Errors that mean "the process running the job went away", not "the job is wrong".
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


class _Driver(Placement, ScriptLive):
    """One sweep's state: resume, the loop, completion, cancel (dispatch: Placement)."""

    def __init__(self, plan, tracker, opts: DriverOptions):
        self.plan = plan
        self.lease: SweepLease | None = None
        self.opts = opts
        self.track = TrackingAdapter(tracker, spool_dir=os.path.join(opts.work_dir, "spool") if opts.work_dir else None,
                                     reuse=opts.reuse)
        self.runner = opts.runner if opts.runner is not None else GolfRunner()
        self.data_dir = str(opts.data_dir or plan.data.path)
        self.tokenizer = opts.tokenizer_path or getattr(plan.data, "tokenizer_path", None)
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
        self.slots: list[Slot] = []
        self.live: dict[str, dict] = {}  # train identity -> rank 0's latest progress event
        self._live_refs: dict[Any, str] = {}
        self._live_t = 0.0
        self.n_slots = 0
        self.mix_s: float | None = None  # running mean of the mix jobs' wall time (s)
        self._n_mix = 0

    # ---------------------------------------------------------------- setup
    def take_lease(self, tracker) -> None:
        """Hold the sweep's lease (raises LeaseHeld unless opts.lease_wait). Trackers without a
        store (test stand-ins) run unleased."""
        uri, exp = getattr(tracker, "tracking_uri", None), getattr(tracker, "experiment_name", None)
        if not (uri and exp and self.opts.lease_timeout_s):
            return
        held = _LEASES.setdefault(tracker, {})
        prev = held.get(self.plan.sweep_identity)
        if prev is not None and prev.held and prev.lost is None:  # run_plan again on one open tracker
            self.lease = prev
            return
        lease = SweepLease(uri, exp, self.plan.sweep_identity, self.plan.sweep_name, work_dir=self.opts.work_dir,
                           timeout_s=self.opts.lease_timeout_s, settle_s=self.opts.lease_settle_s)
        say = self.opts.say or (lambda msg: None)
        stale = lease.acquire(wait=self.opts.lease_wait, on_wait=say)
        self.lease = held[self.plan.sweep_identity] = lease
        if stale is not None:
            say(f"took over sweep {self.plan.sweep_name!r} from a dead driver ({stale.describe()})")
        if hasattr(tracker, "after_close"):  # released once every call reached the store
            tracker.after_close(lambda delivered: lease.release(keep=not delivered))

    def resume(self) -> None:
        live = self.lease.live_sweeps if self.lease is not None else None
        self.report.sweep_run_id = self.track.start_sweep(self.plan, live_sweeps=live)
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
                "seed": job.seed, "attempt": attempt, "params": dict(job.params or {}), "tokenizer": self.tokenizer}

    def _open(self, job, out: JobOutcome) -> dict:
        out.attempt += 1
        out.state, out.started, out.reason = "running", time.time(), None
        out.run_id = self.track.open(job, out.attempt, self.report.sweep_run_id)
        out.attempts.append({"attempt": out.attempt, "run_id": out.run_id, "status": "RUNNING"})
        self._event("dispatch", out)
        return self._job_payload(job, out.attempt)

    def _files_ref(self, ident: str):
        """The output files of a finished or reused job, as an ObjectRef (fetched once)."""
        if ident not in self.files:
            rec = self.reused_runs[ident]
            names = TRAIN_FILES if self.jobs[ident].kind == "train" else EVAL_FILES
            self.files[ident] = ray.put(self.track.fetch_files(rec, names))
        return self.files[ident]

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
            self._finish_failed(out, one_line(e))
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
        if (value.get("result") or {}).get("script_failed"):  # exited non-zero / timed out
            self.script_failed(out, value)
            return
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
        self.track.record(out.run_id, job, self.script_result_to_log(out, result), verdict, files)
        self.track.close(out.run_id, "FINISHED", {})
        out.result, out.verdict, out.output = result, verdict, {k: v for k, v in value.items() if k != "files"}
        out.train_log = files.get("train.log") if job.kind in ("train", "script_train") else None
        out.state, out.ended = "finished", time.time()
        out.reason = verdict.reason
        out.attempts[-1].update(status="FINISHED")
        self._event("finished", out)
        self._refresh_ready()

    # ---------------------------------------------------------------- loop
    def loop(self) -> None:
        t_loop, waited = time.perf_counter(), 0.0
        while True:
            if self.lease is not None:
                self.lease.check()  # LeaseLost: another driver took this sweep over
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
            self.poll_script_logs()  # a script job's log lines as live metrics
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


def run_plan(plan, tracker, options: DriverOptions | None = None, **kwargs) -> SweepReport:
    """Run `plan` on the connected Ray cluster, recording into `tracker`. Returns the report.

    Needs `ray.init()` done by the caller, or `options.connect` to do it once a job must run.
    Keyword arguments are DriverOptions fields."""
    opts = options or DriverOptions(**kwargs)
    if not ray.is_initialized() and opts.connect is None:
        raise RuntimeError("run_plan needs a Ray connection (orchestrator.raycluster.connect)")
    drv = _Driver(plan, tracker, opts)
    drv.take_lease(tracker)  # LeaseHeld: another driver runs this sweep; nothing was touched
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
    except LeaseLost:  # the sweep (and its parent run) belong to the other driver now
        drv.cancel()
        drv.report.status = "KILLED"
        drv.track.abandon_sweep()
        raise
    finally:
        drv.shutdown_actors()
        if drv.lease is not None and not hasattr(tracker, "after_close"):
            drv.lease.release()
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
