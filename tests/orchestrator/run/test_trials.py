"""The ask/tell bookkeeping of an optuna env study (orchestrator.run.trials), without Ray or
MLflow: a trial's value is its seeds' mean, a failed or invalid job makes it FAIL, and a resumed
study is told MLflow's whole trials before it asks (and then asks what a sequential run would)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
import pytest

from orchestrator.plan.build import build_plan
from orchestrator.run.trials import EnvTrials
from orchestrator.run.validity import Verdict
from orchestrator.spec.sweep import sweep_from_dict
from orchestrator.tracking.client import RunRecord

FAIL, COMPLETE = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE


def _study(tmp_path, n=3, seed=7, seeds=(1, 2), env=None):
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    env = env or {"MATRIX_LR": {"low": 0.01, "high": 0.2, "log": True}, "NUM_LAYERS": [9, 11], "ITERATIONS": 4}
    spec = {"name": "opt", "data": {"path": "data/syn"}, "search": {"kind": "optuna", "n": n, "seed": seed},
            "train": {"script": "train_gpt.py", "seeds": list(seeds), "env": env}}
    plan = build_plan(sweep_from_dict(spec), tmp_path)
    assert plan.jobs == () and plan.study is not None
    return plan.study


@dataclass
class Out:  # the JobOutcome fields EnvTrials reads
    state: str
    result: dict | None = None
    verdict: Verdict | None = None


def _finish(trials, jobs, bpb, outcomes, state="finished", valid=True):
    for job, v in zip(jobs, bpb):
        outcomes[job.identity] = Out(state, {"val_bpb": v}, Verdict(valid=valid))


def _record(job, bpb, valid=True) -> RunRecord:
    return RunRecord(run_id=job.identity[:8], status="FINISHED", artifact_uri="",
                     tags={"golf.identity": job.identity, "golf.trial": str(job.trial), "golf.study": job.study,
                           "golf.valid": str(valid).lower(), "golf.seed": str(job.seed)},
                     metrics={"val_bpb": bpb}, params={f"env.{k}": v for k, v in job.env.items()})


def test_a_trial_is_one_job_per_seed_and_its_value_is_the_seed_mean(tmp_path):
    st = _study(tmp_path)
    trials, outcomes = EnvTrials(st), {}
    number, jobs = trials.ask()
    assert number == 0 and [j.seed for j in jobs] == [1, 2] and len({j.identity for j in jobs}) == 2
    lr = float(jobs[0].env["MATRIX_LR"])
    assert 0.01 <= lr <= 0.2 and jobs[0].env["NUM_LAYERS"] in ("9", "11") and jobs[0].env["ITERATIONS"] == "4"
    assert all(j.trial == 0 and j.study == st.identity and j.env["MATRIX_LR"] == repr(lr) for j in jobs)
    assert jobs[0].name.startswith("script/s1/trial0/MATRIX_LR=")
    outcomes[jobs[0].identity] = Out("running")
    _finish(trials, jobs[1:], [2.0], outcomes)
    assert trials.tell_done(outcomes) == [] and trials.study.trials[0].state == optuna.trial.TrialState.RUNNING
    _finish(trials, jobs, [1.0, 2.0], outcomes)
    (told,) = trials.tell_done(outcomes)
    assert told.value == 1.5 and trials.study.trials[0].state == COMPLETE and trials.study.trials[0].value == 1.5
    assert trials.study.trials[0].params == told.values and trials.best().number == 0


@pytest.mark.parametrize("how", ["failed", "skipped", "invalid", "nan"])
def test_a_failed_or_invalid_job_makes_the_trial_FAIL_never_a_number(tmp_path, how):
    trials, outcomes = EnvTrials(_study(tmp_path)), {}
    _, jobs = trials.ask()
    _finish(trials, jobs, [1.0, 1.0], outcomes)
    bad = outcomes[jobs[1].identity]
    if how == "invalid":
        bad.verdict = Verdict(valid=False, reason="artifact over the limit")
    elif how == "nan":
        bad.result = {"val_bpb": math.nan}
    else:
        bad.state, bad.result = how, None
    (told,) = trials.tell_done(outcomes)
    assert told.value is None and told.reason and trials.study.trials[0].state == FAIL
    assert trials.study.trials[0].value is None and trials.best() is None


def test_a_pruned_job_makes_the_study_record_the_trial_PRUNED(tmp_path):
    trials, outcomes = EnvTrials(_study(tmp_path)), {}
    _, jobs = trials.ask()
    outcomes[jobs[0].identity] = Out("pruned", {"gpu_seconds": 3.0})
    outcomes[jobs[1].identity] = Out("pruned")  # its trial was stopped before this seed started
    (told,) = trials.tell_done(outcomes)
    assert told.value is None and told.reason == "pruned"
    assert trials.study.trials[0].state == optuna.trial.TrialState.PRUNED


def test_the_same_seed_and_tell_order_asks_the_same_values(tmp_path):
    def run(seed):
        trials, outcomes, seen = EnvTrials(_study(tmp_path, n=12, seed=seed)), {}, []
        while trials.want():  # sequential: ask, finish, tell (12 > TPE's 10 random start-up trials)
            _, jobs = trials.ask()
            lr = float(jobs[0].env["MATRIX_LR"])
            _finish(trials, jobs, [abs(math.log(lr / 0.05)), abs(math.log(lr / 0.05)) + 0.1], outcomes)
            trials.tell_done(outcomes)
            seen.append(jobs[0].env["MATRIX_LR"] + "/" + jobs[0].env["NUM_LAYERS"])
        return seen

    a = run(7)
    assert a == run(7) and len(set(a)) == 12
    assert a != run(8)


def test_resume_tells_the_whole_trials_first_then_asks_what_a_sequential_run_would(tmp_path):
    seq, outcomes, records, told_jobs = EnvTrials(_study(tmp_path, n=4)), {}, [], []
    for i in range(4):  # the first driver: 4 trials one after another
        _, jobs = seq.ask()
        if i < 3:
            _finish(seq, jobs, [1.0 + i, 1.2 + i], outcomes)
            seq.tell_done(outcomes)
            records += [_record(j, 1.0 + i + 0.2 * k) for k, j in enumerate(jobs)]
            told_jobs.append(jobs)
    fourth = jobs
    fresh = EnvTrials(_study(tmp_path, n=3))  # the same study with n=3: everything is told
    assert fresh.resume(records) == 3 and not fresh.want()
    assert [t.state for t in fresh.study.trials] == [COMPLETE] * 3
    assert [t.value for t in fresh.study.trials] == pytest.approx([1.1, 2.1, 3.1])
    assert [t.params for t in fresh.study.trials] == [t.params for t in seq.study.trials[:3]]
    assert [j.identity for t in fresh.told for j in t.jobs] == [j.identity for js in told_jobs for j in js]

    more = EnvTrials(_study(tmp_path, n=4))
    assert more.resume(records) == 3 and more.want()
    number, jobs = more.ask()  # trial 3, after the study heard of 0..2: the values seq asked for
    assert number == 3 and [j.identity for j in jobs] == [j.identity for j in fourth]
    assert not more.want()


def test_resume_tells_an_invalid_trial_FAIL_and_asks_a_partly_finished_one_again(tmp_path):
    seq = EnvTrials(_study(tmp_path, n=3))
    asked = [seq.ask()[1] for _ in range(3)]
    records = [_record(asked[0][0], 1.0), _record(asked[0][1], 1.0, valid=False),  # whole, invalid
               _record(asked[2][0], 2.0)]  # trial 2: one seed of two finished
    trials = EnvTrials(_study(tmp_path, n=3))
    assert trials.resume(records) == 1
    assert [t.state for t in trials.study.trials] == [FAIL]
    number, jobs = trials.ask()  # the partly finished trial first, with its number and values
    assert number == 2 and [j.identity for j in jobs] == [j.identity for j in asked[2]]
    number, jobs = trials.ask()  # then a new number past every trial MLflow has
    assert number == 3 and not trials.want()
    other = _record(asked[1][0], 1.0)
    other.params["env.MATRIX_LR"] = "5.0"  # outside the space: not a run of this study
    assert EnvTrials(_study(tmp_path, n=3)).resume([other]) == 0
