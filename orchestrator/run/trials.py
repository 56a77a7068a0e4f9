"""Optuna over a script's env: every trial is real training jobs that the driver schedules.

The driver (orchestrator.run.driver) asks `EnvTrials` for a trial whenever the Scheduler could
take work and fewer than `n` trials were asked; a trial is one ScriptTrainJob per seed
(orchestrator.plan.script.EnvStudy.jobs: the env resolved with the trial's values, tagged
`golf.study` and `golf.trial`), added to the Scheduler while it runs. Once all of a trial's jobs
are terminal the study is told: the mean val_bpb over its seeds, or FAIL when any job failed,
was skipped or cancelled, or finished invalid or without a finite score (never a made-up number).

Resume: before asking, `resume(records)` takes the study's FINISHED runs in MLflow. A trial with
a run for every seed is added to the study (`create_trial`: COMPLETE with its mean, or FAIL)
and counts as told; a trial with only some seeds finished is asked again first with its own
number and values, so its finished jobs are reused by identity and only the rest run.

Determinism: the sampler is TPESampler, reseeded per trial from (seed, trial number). TPE's
first trials are random draws from its seed; a resumed study with a fresh TPESampler(seed)
would repeat the first run's draws (the same env, the same identities: nothing new would run).
Seeded per trial number, trial k's values depend only on the seed, k and the trials told before
it was asked: a sequential run is reproducible, and a resumed one asks what it would have.
Pure bookkeeping (no Ray, no MLflow): tests/orchestrator/run/test_trials.py.
"""
from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from workers.search_space import ask, distribution, new_study

__all__ = ["EnvTrials", "Told", "trial_seed"]

DONE = ("finished", "reused")
TERMINAL = ("finished", "reused", "failed", "skipped", "cancelled", "pruned")


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed when trial `number` is asked (32 bits of sha256)."""
    return int.from_bytes(hashlib.sha256(f"golf-tpe/{seed}/{number}".encode()).digest()[:4], "little")


@dataclass
class Told:
    """A trial the study was told: its number, values, value (None for FAIL) and why it failed."""
    number: int
    values: dict[str, Any]
    value: float | None
    reason: str | None = None
    resumed: bool = False  # told from MLflow's runs before this sweep asked anything
    jobs: list = field(default_factory=list)  # its jobs, one per seed


@dataclass
class _Open:
    number: int
    trial: Any  # optuna.trial.Trial
    values: dict[str, Any]
    jobs: list = field(default_factory=list)


def _score(state: str, result: dict | None, valid: bool) -> tuple[float | None, str | None]:
    v = (result or {}).get("val_bpb")
    if state not in DONE:
        return None, f"a job {state}"
    if not valid:
        return None, "a job finished invalid"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        return None, "a job has no finite val_bpb"
    return float(v), None


class EnvTrials:
    """One optuna env study of a sweep (orchestrator.plan.script.EnvStudy), in memory."""

    def __init__(self, study: Any):
        self.spec = study
        self.dists = self._distributions()
        self.study = new_study(study.seed)
        self.open: dict[int, _Open] = {}
        self.told: list[Told] = []
        self.queued: list[tuple[int, dict[str, Any]]] = []  # partly finished trials, asked again first
        self.asked = 0  # trials asked or resumed as told: at most spec.n
        self.next_number = 0

    def _distributions(self) -> dict[str, Any]:
        return {name: distribution(d) for name, d in self.spec.domains.items()}

    # ---------------------------------------------------------------- resume
    def resume(self, records: list[Any]) -> int:
        """Tell the study the trials MLflow holds whole (RunRecord-likes: tags golf.trial,
        golf.identity, golf.valid; params env.*; metric val_bpb); queue the partly finished
        ones. Returns how many trials were told."""
        import optuna
        from optuna.trial import TrialState

        by_number: dict[int, list[Any]] = {}
        for r in records:
            try:
                by_number.setdefault(int(r.tags["golf.trial"]), []).append(r)
            except (KeyError, ValueError):
                continue
        if by_number:
            self.next_number = max(self.next_number, max(by_number) + 1)
        told = 0
        for number in sorted(by_number):
            runs = by_number[number]
            env = {k.removeprefix("env."): v for k, v in runs[-1].params.items() if k.startswith("env.")}
            values = self.spec.values_of(env)
            if values is None or self.asked >= self.spec.n:
                continue
            newest = {r.tags.get("golf.identity"): r for r in runs}  # oldest first: the newest wins
            jobs = self.spec.jobs(number, values)
            found = [newest.get(j.identity) for j in jobs]
            if not any(found):
                continue
            if not all(found):
                self.queued.append((number, values))
                continue
            scores = [_score("finished", r.metrics, r.tags.get("golf.valid") != "false") for r in found]
            value, reason = self._value(scores)
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
            self.study.add_trial(optuna.trial.create_trial(params=values, distributions=self.dists,
                                                           value=value, state=state))
            self.told.append(Told(number, values, value, reason, resumed=True, jobs=jobs))
            self.asked += 1
            told += 1
        return told

    # ---------------------------------------------------------------- ask / tell
    def want(self) -> bool:
        """Fewer than n trials asked (resumed ones included)?"""
        return self.asked < self.spec.n

    def ask(self) -> tuple[int, list[Any]]:
        """The next trial: its number and its jobs (one per seed)."""
        import optuna

        if not self.want():
            raise RuntimeError(f"all {self.spec.n} trials were asked")
        if self.queued:
            number, values = self.queued.pop(0)
            self.study.enqueue_trial(values)
        else:
            number = self.next_number
            self.next_number += 1
        self.study.sampler = optuna.samplers.TPESampler(seed=trial_seed(int(self.spec.seed), number))
        trial, values = ask(self.study, self.spec.domains)
        jobs = self.spec.jobs(number, values)
        self.open[number] = _Open(number, trial, values, jobs)
        self.asked += 1
        return number, jobs

    def tell_done(self, outcomes: dict[str, Any]) -> list[Told]:
        """Tell every open trial whose jobs are all terminal (outcomes: identity -> JobOutcome).
        Trials are told in number order, so a sequential run tells in the order it asked."""
        from optuna.trial import TrialState

        out = []
        for number in sorted(self.open):
            t = self.open[number]
            outs = [outcomes[j.identity] for j in t.jobs]
            if not all(str(o.state) in TERMINAL for o in outs):
                continue
            scores = [_score(str(o.state), o.result, o.verdict is None or o.verdict.valid) for o in outs]
            value, reason = self._value(scores)
            if any(str(o.state) == "pruned" for o in outs):  # a pruner stopped it: optuna is told PRUNED
                value, reason = None, "pruned"
                self.study.tell(t.trial, state=TrialState.PRUNED)
            elif value is None:
                self.study.tell(t.trial, state=TrialState.FAIL)
            else:
                self.study.tell(t.trial, value)
            del self.open[number]
            told = Told(number, t.values, value, reason, jobs=t.jobs)
            self.told.append(told)
            out.append(told)
        return out

    @staticmethod
    def _value(scores: list[tuple[float | None, str | None]]) -> tuple[float | None, str | None]:
        bad = next((why for v, why in scores if v is None), None)
        if bad is not None:
            return None, bad
        return statistics.fmean(v for v, _ in scores), None

    def best(self) -> Told | None:
        """The told trial with the lowest seed-mean val_bpb (the lower number on a tie)."""
        done = [t for t in self.told if t.value is not None]
        return min(done, key=lambda t: (t.value, t.number)) if done else None
