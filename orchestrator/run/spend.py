"""How a sweep spends GPU time, on the driver's side: the pruning hook, the budget, and what
of both lands in MLflow. A part of the driver (orchestrator.run.driver) kept in one place.

- GPU-seconds: every attempt is charged GPUs x wall clock (from when it got its GPUs: a gang's
  placement, not its wait for one) when it ends, whatever its end
  (finished, failed, lost, pruned, cancelled); a job on CPU charges its ranks (the stand-ins of
  GPUs). Each run gets the metric `gpu_seconds`; the parent gets the sweep's total.
- Budget (`budget.gpu_hours`): a job starts only while the GPU-seconds spent (this run's, plus
  what the sweep's reused and earlier-pruned runs cost) plus what the running jobs may still use
  (GPUs x what is left of their wallclock cap, plus the most start-up and eval time a job of
  this sweep took beyond its train time so far; before any finished, of their timeout: so the
  first job runs alone and teaches the rest) plus the job's own cap and that overhead stays
  within it, and no other job is still waiting for its GPUs (a job is decided on when it can
  run, on what was spent by then). So a sweep passes its budget only by the error of that
  estimate (less than one job); what did not start is SKIPPED and counted in one line, exit 0. A rerun counts the earlier runs again, so the same
  budget starts nothing new and a larger one runs the rest.
- Pruning: each streamed point of a running job goes to `PruneHook.report`
  (orchestrator.run.prune); a decision stops every job of the trial (Scheduler.stop). Recorded
  on each stopped run (KILLED, tags golf.pruned, golf.pruned_at_s, golf.prune_reason,
  golf.prune_trial, golf.prune_identity): a rerun of the same spec marks those trials PRUNED
  without running them; a changed prune section (another prune identity) or `--no-reuse` runs them.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from orchestrator.run.prune import Decision, PruneHook, trial_key
from orchestrator.spec.spend import prune_identity

__all__ = ["Spend", "gpus_of", "cap_of"]


def gpus_of(job: Any) -> int:
    """What a job holds: its GPUs (on CPU its ranks, the processes standing in for GPUs)."""
    return int(job.gpus or job.ranks or 1)


def cap_of(job: Any) -> float:
    """The most wall clock a job may still take: its training cap (a script's
    MAX_WALLCLOCK_SECONDS, golf_core's train.max_wallclock_seconds), else its timeout; 0 for an
    eval or mix job (charged when it ends)."""
    cap = getattr(job, "max_wallclock_seconds", None)
    if cap:
        return float(cap)
    run = getattr(job, "run", None)
    if run is not None and run.train.max_wallclock_seconds:
        return float(run.train.max_wallclock_seconds)
    return float(getattr(job, "timeout_s", 0.0) or 0.0)


class Spend:
    def __init__(self, plan: Any, outcomes: dict[str, Any], *, reuse: bool = True, clock=time.time):
        self.prune = getattr(plan, "prune", None)
        self.budget = getattr(plan, "budget", None)
        self.outcomes = outcomes
        self.reuse = reuse
        self.clock = clock
        active = self.prune is not None and self.prune.active
        self.hook = PruneHook(self.prune, getattr(plan, "reference", None)) if active else None
        self.prune_id = prune_identity(self.prune) if active else None
        self.spent_s = 0.0  # this run's attempts
        self.before_s = 0.0  # the sweep's reused and earlier-pruned runs
        self.pruned_at: Counter = Counter()  # rung (s) -> trials stopped there
        self._counted: set[str] = set()  # trials counted in pruned_at
        # a job's wall beyond its train time (start-up, compile, eval), the most seen so far:
        # a cap bounds training only, so a job's worst case is its cap plus this. None until a
        # job of this run finished: then a running job may take up to its timeout
        self.overhead_s: float | None = None
        self._trials: dict[str, str] = {}

    # ---------------------------------------------------------------- trials
    def trial(self, job: Any) -> str:
        t = self._trials.get(job.identity)
        if t is None:
            t = self._trials[job.identity] = trial_key(job)
        return t

    def jobs_of(self, trial: str) -> list[str]:
        return [i for i, o in self.outcomes.items() if self.trial(o.job) == trial]

    def report(self, ident: str, event: dict) -> Decision | None:
        """A running job's intermediate value; a Decision when its trial must stop."""
        out = self.outcomes.get(ident)
        if self.hook is None or out is None or str(out.state) != "running":
            return None
        return self.hook.report(self.trial(out.job), int(out.job.seed or 0), event)

    def known_curve(self, out: Any, history: Any) -> int:
        """A reused run's curve on the prune board, so the trials still to run are compared with
        the ones a partial earlier run finished (not only with each other): its streamed points
        (the metric at a step beside `curve_train_time_s`, the train time, at the same step),
        never judged themselves. `history(out, key)` -> [(step, value)]. Returns points added."""
        if self.hook is None:
            return 0
        metric = "train_loss" if self.hook.spec.metric == "train_loss" else "val_bpb_step"
        times = dict(history(out, "curve_train_time_s"))
        trial, seed, n = self.trial(out.job), int(out.job.seed or 0), 0
        for step, v in sorted(history(out, metric)):
            if step in times:
                self.hook.board.add(trial, seed, float(times[step]), float(v))
                n += 1
        return n

    def count_pruned(self, trial: str, rung_s: float) -> None:
        """A job of `trial` ended PRUNED: the trial counts once at its rung (a decision that
        landed after every seed had finished stops nothing and counts nothing)."""
        if trial not in self._counted:
            self._counted.add(trial)
            self.pruned_at[rung_s] += 1

    def earlier(self, tracker: Any) -> dict[str, dict]:
        """Trials an earlier run of this sweep pruned under the same prune section: trial ->
        its run's tags. Their gpu_seconds count as spent."""
        if self.prune_id is None or not self.reuse:
            return {}
        uri, exp = getattr(tracker, "tracking_uri", None), getattr(tracker, "experiment_name", None)
        if not (uri and exp):
            return {}
        from orchestrator.tracking.client import make_client, search_all, tag_filter

        client = make_client(uri)
        e = client.get_experiment_by_name(exp)
        if e is None:
            return {}
        filt = f"{tag_filter('golf.prune_identity', self.prune_id)} and {tag_filter('golf.pruned', 'true')}"
        out = {}
        for r in search_all(client, e.experiment_id, filt):
            t = r.data.tags.get("golf.prune_trial")
            if t:
                out[t] = dict(r.data.tags)
                self.before_s += float(r.data.metrics.get("gpu_seconds", 0.0))
        return out

    # ---------------------------------------------------------------- GPU-seconds and the budget
    def charge(self, out: Any) -> float:
        """An attempt ended: its GPU-seconds (added to the sweep's spend)."""
        since = getattr(out, "placed", None)
        if since is None:  # never got its GPUs (a gang still waiting for a placement)
            return 0.0
        wall = max(0.0, self.clock() - since)
        s = gpus_of(out.job) * wall
        self.spent_s += s
        t = (out.result or {}).get("train_time_s")
        if isinstance(t, (int, float)) and cap_of(out.job):
            self.overhead_s = max(self.overhead_s or 0.0, wall - min(float(t), cap_of(out.job)))
        return s

    def reused(self, result: dict | None) -> None:
        v = (result or {}).get("gpu_seconds")
        if isinstance(v, (int, float)):
            self.before_s += float(v)

    def worst_s(self, job: Any) -> float:
        """The most wall clock a job may take: its cap plus the overhead seen so far; before any
        job finished, its timeout (golf kills it then), else its cap."""
        if self.overhead_s is None:
            return float(getattr(job, "timeout_s", 0.0) or cap_of(job))
        return cap_of(job) + self.overhead_s

    def running_worst_s(self) -> float:
        now = self.clock()
        return sum(gpus_of(o.job) * max(0.0, self.worst_s(o.job) - (now - (getattr(o, "placed", None) or now)))
                   for o in self.outcomes.values() if str(o.state) in ("running", "stopping"))

    def total_s(self) -> float:
        return self.before_s + self.spent_s

    def gate(self, job: Any) -> str | None:
        """Why `job` may not start now (None: it may)."""
        if self.budget is None:
            return None
        if any(str(o.state) == "running" and getattr(o, "placed", None) is None for o in self.outcomes.values()):
            # a job still waits for its GPUs: decide when they free up, on what has been spent by then
            return "waiting: the budget is checked when GPUs free up"
        own = gpus_of(job) * (cap_of(job) + (self.overhead_s or 0.0))  # its cap and the overhead seen
        if self.total_s() + self.running_worst_s() + own > self.budget.gpu_seconds:
            return f"not started: budget {self.budget.gpu_hours:g} GPU-hours"
        return None

    def unstarted_trials(self) -> int:
        """Trials with a job the budget kept from starting."""
        return len({self.trial(o.job) for o in self.outcomes.values()
                    if str(o.state) == "skipped" and (o.reason or "").startswith("not started: budget")})

    def full_s(self) -> float:
        """GPU-seconds a full run of every trial would have cost: what each finished job took,
        and for each pruned or unstarted one the mean of the finished jobs (else its worst case)."""
        done = [o for o in self.outcomes.values() if str(o.state) in ("finished", "reused")]
        per = [float((o.result or {}).get("gpu_seconds") or
                     gpus_of(o.job) * float((o.result or {}).get("wall_s") or 0.0)) for o in done]
        mean = sum(per) / len(per) if per else None
        total = sum(per)
        for o in self.outcomes.values():
            if str(o.state) in ("pruned", "skipped"):
                total += mean if mean is not None else gpus_of(o.job) * cap_of(o.job)
        return total

    def parent_metrics(self) -> dict[str, float]:
        m = {"gpu_seconds": self.total_s(), "gpu_hours_spent": self.total_s() / 3600.0,
             "gpu_hours_full": self.full_s() / 3600.0}
        if self.budget is not None:
            m["gpu_hours_budget"] = self.budget.gpu_hours
        if self.hook is not None:
            m["trials_pruned"] = float(sum(self.pruned_at.values()))
            for r in self.hook.spec.rungs_s:
                m[f"trials_pruned.rung_{r:g}s"] = float(self.pruned_at.get(r, 0))
        return m
