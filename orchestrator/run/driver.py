"""The Ray driver: runs a Plan's jobs, skipping what MLflow already holds.

One event loop (`ray.wait` over every in-flight ref) drives everything, so nothing blocks:
- resume: a job whose identity has a FINISHED run is reused (its files fetched from the
  MLflow artifact store only if a dependent must run); RUNNING runs a dead driver left are
  closed as KILLED and the job reruns.
- placement and job states (orchestrator.run.scheduler.Scheduler, on Ray through
  orchestrator.run.ray_launcher): multi-rank training jobs run as gangs, 1-rank training, eval and
  mix jobs go to long-lived per-GPU workers, preferring the worker that already holds the job's
  inputs; a job waits for resources, never times out; a job whose actor dies (RayActorError, a
  SIGKILLed worker) is rerun up to `retries` times, each attempt its own MLflow run tagged
  golf.attempt; a job that raises is FAILED (a rerun would raise again) and its dependents are
  skipped. The driver is the Scheduler's Hooks: what lands in MLflow for each attempt.
- invalid results finish with golf.valid=false (orchestrator.run.validity) and the sweep goes on.
- Ctrl-C (KeyboardInterrupt, or SIGTERM turned into one by `golf run`) kills the actors,
  removes the placement groups and closes open runs as KILLED.
- optuna over a script's env (orchestrator.run.trials): the plan holds a study instead of jobs;
  after resume tells the study the trials MLflow has whole, the loop asks a trial whenever the
  Scheduler could take work (its jobs join the Scheduler at once, reused when MLflow has them)
  and tells the study when a trial's jobs are all done, until `n` trials were asked.
- spending (orchestrator.run.spend): each streamed point of a running job goes to the prune
  hook; a decision stops every job of its trial (Scheduler.stop: PRUNED, its GPUs to the next
  job); every attempt is charged GPU-seconds, and a budget holds back jobs that could pass it.
- one driver per sweep (orchestrator.run.lease): the sweep's lease is taken before any run is
  touched (LeaseHeld while another driver is alive, or wait for it), heartbeated while the
  sweep runs, released once the tracker delivered everything (Tracker.close). Only after
  taking it are RUNNING runs closed as stale, and never those of another live sweep.

The records it takes and returns (DriverOptions, JobOutcome, SweepReport) live in
orchestrator.run.types and are importable from here.
"""
from __future__ import annotations

import os
import time
import weakref
from typing import Any

import ray

from orchestrator import kinds
from orchestrator.run.track import TrackingAdapter
from orchestrator.run.types import TERMINAL, DriverOptions, JobOutcome, SweepReport
from orchestrator.run.lease import LeaseLost, SweepLease
from orchestrator.run.ray_launcher import RayLauncher
from orchestrator.run.scheduler import JobState, Scheduler, transition
from orchestrator.run.live import Live
from orchestrator.run.script_live import ScriptLive
from orchestrator.run.spend import Spend
from orchestrator.run.trials import EnvTrials
from orchestrator.run.validity import Verdict, judge
from workers.contract import JobResult
from workers.runner import GolfRunner

__all__ = ["run_plan"]

# tracker -> {sweep identity: SweepLease} held until that tracker closes (a second run_plan on
# the same open tracker is the same driver, not a rival)
_LEASES: "weakref.WeakKeyDictionary[Any, dict[str, SweepLease]]" = weakref.WeakKeyDictionary()


class _Driver(ScriptLive, Live):
    """One sweep: resume, the loop, what lands in MLflow for each job (Hooks of the Scheduler),
    cancel. Placement and job states: orchestrator.run.scheduler.Scheduler."""

    def __init__(self, plan, tracker, opts: DriverOptions):
        self.plan = plan
        self.lease: SweepLease | None = None
        self.opts = opts
        self.track = TrackingAdapter(tracker, spool_dir=os.path.join(opts.work_dir, "spool") if opts.work_dir else None,
                                     reuse=opts.reuse)
        self.runner = opts.runner if opts.runner is not None else GolfRunner()
        # decided once, before the driver (orchestrator.run.start.prepare_sweep: the data dir and
        # tokenizer resolved against the workspace; the Sweep: retries), taken here as they are
        self.data_dir = opts.data_dir
        self.tokenizer = opts.tokenizer_path
        retries = opts.retries if opts.retries is not None else plan.retries
        self.jobs = {j.identity: j for j in plan.jobs}
        self.report = SweepReport(plan, {j.identity: JobOutcome(j) for j in plan.jobs}, time.time())
        # where jobs run: Ray (the default), or the caller's Launcher (a test's fake: no Ray at all)
        self.launcher = opts.launcher if opts.launcher is not None else \
            RayLauncher(self.runner, data_dir=self.data_dir, work_dir=opts.work_dir,
                        vocab_size=int(plan.data.vocab_size))
        self.sched = Scheduler(plan, self.report.outcomes, self.launcher, self, retries=retries,
                               actor_depth=opts.actor_depth)
        self.reused_runs: dict[str, Any] = {}  # identity -> tracker record (files fetched lazily)
        self.trials = EnvTrials(plan.study) if getattr(plan, "study", None) is not None else None
        self.report.trials = self.trials
        self.spend = Spend(plan, self.report.outcomes, reuse=opts.reuse)
        self.sched.gate = self.spend.gate
        self.report.spend = self.spend
        self.live: dict[str, dict] = {}  # train identity -> rank 0's latest progress event
        self._live_refs: dict[Any, str] = {}
        self._streamed: dict[str, set[int]] = {}  # golf_core training: steps whose train_loss was logged live
        self.decisions: dict = {}  # identity -> the prune Decision that stopped it
        self._stop_t: dict[str, float] = {}  # identity -> when it was told to stop
        self._live_t = 0.0

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
        # also closes the RUNNING runs a dead driver left as KILLED (never a live sweep's: the lease tells)
        self.report.sweep_run_id = self.track.start_sweep(self.plan, live_sweeps=live)
        for job in self.plan.jobs:
            out = self.report.outcomes[job.identity]
            if self._reuse(out):
                transition(out, JobState.REUSED)
                self.spend.reused(out.result)
                if self.spend.hook is not None and kinds.of(job).trains:  # a partial earlier run's trials
                    self.spend.known_curve(out, self.track.history)
        earlier = self.spend.earlier(self.track.t)  # trials an earlier run pruned: not rerun
        for out in self.report.outcomes.values():
            tags = earlier.get(self.spend.trial(out.job)) if out.state == JobState.PENDING else None
            if tags is not None:
                transition(out, JobState.PRUNED)
                out.reason = f"pruned in an earlier run: {tags.get('golf.prune_reason', '')}"[:500]
        self.sched.refresh_ready()
        if self.trials is not None:
            if self.opts.reuse:  # `--no-reuse` starts the study afresh, as it recomputes every job
                told = self.trials.resume(self.track.study_runs(self.plan.study.identity))
                for t in self.trials.told:  # their jobs are this sweep's too: reused, shown, summarized
                    self._add_jobs(t.jobs)
                if told:
                    self._say(f"optuna: the study was told {told} finished trial(s) from MLflow")
            # trials whose jobs MLflow holds need no Ray: tell them now (a finished sweep never starts it)
            while self.trials.want() and not self._pending():
                self.feed_trials(limit=1)

    def _reuse(self, out: JobOutcome) -> bool:
        """Fill `out` from a FINISHED run of its identity; True when there is one (the caller
        moves it to REUSED)."""
        rec = self.track.find_finished(out.job)
        if rec is None:
            return False
        out.run_id, out.result = rec.run_id, rec.result
        out.verdict = Verdict(valid=rec.valid, reason=rec.reason, compliant=rec.compliant)
        self.reused_runs[out.job.identity] = rec
        return True

    def _pending(self) -> bool:
        return any(o.state not in TERMINAL for o in self.report.outcomes.values())

    def _say(self, msg: str) -> None:
        if self.opts.say is not None:
            self.opts.say(msg)

    # ---------------------------------------------------------------- optuna env trials
    def feed_trials(self, limit: int | None = None) -> int:
        """Tell finished trials; ask new ones while the Scheduler could take work. Returns how
        many were asked."""
        if self.trials is None:
            return 0
        self.tell_trials()
        asked = 0
        while self.trials.want() and self.sched.could_take_work(self.trials.spec.sample_job) and \
                (limit is None or asked < limit):
            number, jobs = self.trials.ask()
            asked += 1
            self._add_jobs(jobs)
            self.tell_trials()  # a trial MLflow held whole is told at once
        return asked

    def _add_jobs(self, jobs) -> None:
        for job in jobs:
            if job.identity in self.report.outcomes:  # the same env as an earlier trial: shared
                continue
            out = JobOutcome(job)
            self.jobs[job.identity] = job
            self.sched.add_job(out, reused=self._reuse(out))

    def tell_trials(self) -> None:
        if self.trials is None:
            return
        for t in self.trials.tell_done(self.report.outcomes):
            shown = ", ".join(f"{k}={v}" for k, v in t.values.items())
            self._say(f"optuna trial {t.number}: {shown} -> " +
                      (f"val_bpb {t.value:.6f}" if t.value is not None else f"FAIL ({t.reason})"))

    def setup_cluster(self) -> None:
        """Connect (only when some job must run: a fully reused sweep never starts Ray)."""
        res, node_max = self.launcher.cluster(self.opts.connect)
        wants_gpu = any((j.gpus or 0) > 0 for j in self.plan.jobs) or getattr(self.plan, "study", None) is not None
        use_gpus = (bool(res.get("GPU", 0)) and wants_gpu) if self.opts.use_gpus is None else self.opts.use_gpus
        max_actors = self.opts.max_workers or max(1, int(res.get("GPU", 0) if use_gpus else res.get("CPU", 1)))
        self.sched.configure(use_gpus=use_gpus, max_actors=max_actors, node_max=node_max,
                             totals={k: float(res.get(k, 0.0)) for k in ("GPU", "CPU")})

    # ---------------------------------------------------------------- Scheduler hooks
    def prepare(self, job) -> dict:
        """What an attempt carries beyond the job: the tokenizer, a script job's files (read
        now and checked against the plan's hash: raises when the script changed)."""
        return {"tokenizer": self.tokenizer, "script_files": kinds.of(job).attempt_files(job)}

    def _charge(self, out: JobOutcome) -> float:
        """The attempt's GPU-seconds: counted against the budget, logged on its run."""
        s = self.spend.charge(out)
        h = self.track.handles.get(out.run_id)
        if h is not None and not h.finished:
            h.log_metrics({"gpu_seconds": s})
        return s

    def started(self, out: JobOutcome) -> None:
        out.run_id = self.track.open(out.job, out.attempt, self.report.sweep_run_id)
        if getattr(out.job, "stage", None):  # a staged sweep's run: golf.stage=<name>
            self.track.handles[out.run_id].set_tags({"golf.stage": out.job.stage})
        out.attempts.append({"attempt": out.attempt, "run_id": out.run_id, "status": "RUNNING"})

    def succeeded(self, out: JobOutcome, value: JobResult) -> None:
        job = out.job
        result = dict(value.result or {})
        upstream = None
        for d in job.deps:
            v = self.report.outcomes[d].verdict if d in self.report.outcomes else None
            if v is not None and (upstream is None or not v.valid):
                upstream = v
        verdict = judge(job, result, upstream)
        files = value.files or {}
        out.result = result  # its train time: how much of its wall was start-up and eval (Spend.charge)
        result["gpu_seconds"] = self._charge(out)
        self.track.record(out.run_id, job, self._unstreamed(job.identity, self.script_result_to_log(out, result)),
                          verdict, files)
        late = self.decisions.pop(job.identity, None)  # the prune decision landed after it ended
        if late is not None:
            self._say(f"{job.name} had finished training when its prune decision landed: kept as finished")
        self.track.close(out.run_id, "FINISHED", {} if late is None else
                         {"golf.prune_late": f"finished before the stop landed ({late.reason})"[:500]})
        out.result, out.verdict, out.output = result, verdict, value.info()
        out.train_log = files.get("train.log") if kinds.of(job).trains else None
        out.reason = verdict.reason
        out.attempts[-1].update(status="FINISHED")

    def failed(self, out: JobOutcome, reason: str, value: JobResult | None) -> None:
        if value is not None:  # a script that exited non-zero: its train.log is still an artifact
            self.log_failed_files(out, value.files or {})
        self._charge(out)
        self.track.close(out.run_id, "FAILED", {"golf.reason": reason})
        out.attempts[-1].update(status="FAILED", reason=reason)

    def lost(self, out: JobOutcome, reason: str) -> None:
        self._charge(out)
        self.track.close(out.run_id, "FAILED", {"golf.reason": reason})
        out.attempts[-1].update(status="FAILED", reason=reason)

    def cancelled(self, out: JobOutcome) -> None:
        self._charge(out)
        self.track.close(out.run_id, "KILLED", {"golf.reason": "cancelled"})
        out.attempts[-1].update(status="KILLED", reason="cancelled")

    def pruned(self, out: JobOutcome, value: JobResult | None) -> None:
        """A job a pruner stopped: its partial train.log and the rest of its curve are logged,
        its run ends KILLED tagged with the decision (a rerun reads it back: Spend.earlier)."""
        d = self.decisions.get(out.job.identity)
        files = (value.files or {}) if value is not None else {}
        self.log_partial(out, files)
        out.result = {"gpu_seconds": self._charge(out)}
        tags = {"golf.pruned": "true", "golf.prune_reason": out.reason or "", "golf.reason": "pruned",
                "golf.prune_trial": self.spend.trial(out.job), "golf.prune_identity": self.spend.prune_id or ""}
        if d is not None:
            tags["golf.pruned_at_s"] = f"{d.rung_s:g}"
            self.spend.count_pruned(d.trial, d.rung_s)
        if out.job.identity in self._stop_t:  # decision -> processes gone -> run closed: seconds
            tags["golf.stop_s"] = f"{time.time() - self._stop_t[out.job.identity]:.2f}"
        self.track.close(out.run_id, "KILLED", tags)
        out.attempts[-1].update(status="KILLED", reason="pruned")

    def intermediate(self, ident: str, events: list[dict]) -> None:
        """A running job's intermediate values (its streamed curve): the prune hook's input."""
        for ev in events:
            d = self.spend.report(ident, ev)
            if d is None:
                continue
            self._say(f"pruned {self.report.outcomes[ident].job.name} (its trial's every seed): {d.reason}")
            for j in self.spend.jobs_of(d.trial):
                self.decisions[j] = d
                self._stop_t[j] = time.time()
                self.sched.stop(j, d.reason)
            return

    def fetch_files(self, ident: str) -> dict[str, bytes]:
        """A reused job's output files, from the MLflow artifact store."""
        names = kinds.of(self.jobs[ident]).output_files
        return self.track.fetch_files(self.reused_runs[ident], names)

    def event(self, what: str, out: JobOutcome) -> None:
        if self.opts.on_event:
            self.opts.on_event(what, out)
        if self.opts.progress is not None:
            self.opts.progress.update(self.report, self._running_progress())

    # ---------------------------------------------------------------- loop
    def loop(self) -> None:
        t_loop, waited, cpu0 = time.perf_counter(), 0.0, time.thread_time()
        sched = self.sched
        while True:
            if self.lease is not None:
                self.lease.check()  # LeaseLost: another driver took this sweep over
            with self.track.held():  # the turn's tracking calls: one journal flush
                asked = self.feed_trials()
                sched.dispatch_ready()
                sched.release_idle_actors()
            if not sched.inflight:  # every ready job was dispatched, so nothing can start any more
                if asked:  # trials whose jobs were reused or could not start: tell them, ask on
                    continue
                break
            t_wait = time.perf_counter()
            done = self.launcher.wait(list(sched.inflight), timeout=self.opts.poll_s)
            waited += time.perf_counter() - t_wait
            prefetch = getattr(self.launcher, "prefetch", None)
            if prefetch is not None:  # the turn's short results (mix points) in one call
                prefetch([r for r in done if sched._short(r)])
            with self.track.held():
                for ref in done:
                    if ref in sched.inflight:  # handling an earlier one may have dropped it (a gang)
                        sched.handle(ref)
            # a script job's log lines as live metrics; with a pruner they are its input, so they
            # are asked for 4x as often: a trial past a rung is stopped ~1.5 s sooner
            self.poll_script_logs(0.5 if self.spend.hook is not None else 2.0)
            self.poll_live()  # golf_core training's latest step: progress, its live curve, the prune hook
            if self.opts.progress is not None:
                self.opts.progress.update(self.report, self._running_progress())
            # the driver's own time (dispatch, bookkeeping, tracker calls), not the jobs'
            self.report.driver_busy_s = time.perf_counter() - t_loop - waited
            self.report.driver_cpu_s = time.thread_time() - cpu0
        sched.skip_unstarted()
        self.tell_trials()

    def end_spend(self) -> None:
        """The sweep's spending on its parent run; the one line when the budget ran out."""
        sp = self.spend
        n = sp.unstarted_trials()
        self.report.budget_skipped = sum(1 for o in self.report.outcomes.values() if str(o.state) == "skipped"
                                         and (o.reason or "").startswith("not started: budget"))
        if n:
            self._say(f"budget: {n} trial(s) not started: {sp.total_s() / 3600:.4g} of {sp.budget.gpu_hours:g} "
                      "GPU-hours spent or committed; rerun with a larger budget.gpu_hours to run them")
        h = self.track.sweep
        if h is None or h.finished:
            return
        h.log_metrics(sp.parent_metrics())
        if sp.hook is not None:
            from orchestrator.tracking.prune_plot import write_prune_plot

            try:
                d = self.track.spool / f"sweep-{h.key[:8]}-prune"
                if write_prune_plot(sp.hook, self.decisions, d / "prune_curves.png"):
                    h.log_artifact(d)
            except Exception as e:  # noqa: BLE001 - a missing plot never fails the sweep
                self._say(f"prune plot not written: {str(e).splitlines()[0] if str(e) else type(e).__name__}")


def run_plan(plan, tracker, options: DriverOptions | None = None, **kwargs) -> SweepReport:
    """Run `plan` on the connected Ray cluster, recording into `tracker`. Returns the report.

    Needs `ray.init()` done by the caller, or `options.connect` to do it once a job must run.
    Keyword arguments are DriverOptions fields."""
    opts = options or DriverOptions(**kwargs)
    if opts.launcher is None and not ray.is_initialized() and opts.connect is None:
        raise RuntimeError("run_plan needs a Ray connection (orchestrator.run.raycluster.connect)")
    drv = _Driver(plan, tracker, opts)
    drv.take_lease(tracker)  # LeaseHeld: another driver runs this sweep; nothing was touched
    try:
        drv.resume()
        if drv._pending() or (drv.trials is not None and drv.trials.want()):
            drv.setup_cluster()
        if opts.progress is not None:
            opts.progress.start(drv.report)
        drv.loop()
    except KeyboardInterrupt:
        drv.sched.cancel()
        drv.report.status = "KILLED"
        drv.track.end_sweep(drv.report)
        raise
    except LeaseLost:  # the sweep (and its parent run) belong to the other driver now
        drv.sched.cancel()
        drv.report.status = "KILLED"
        drv.track.abandon_sweep()
        raise
    finally:
        drv.sched.shutdown()
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
    drv.end_spend()
    if opts.on_results is not None:
        opts.on_results(drv.report)
    drv.track.end_sweep(drv.report)
    return drv.report
