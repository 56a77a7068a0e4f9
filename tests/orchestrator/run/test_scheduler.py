"""The placement policy and job states of orchestrator.run.scheduler, with a fake Launcher: no Ray,
no MLflow, milliseconds. (The same policy on real Ray: tests/orchestrator/run/test_driver.py.)"""
from __future__ import annotations

import itertools
import time

import pytest

from golf_core.data.config import DataConfig
from orchestrator.run.types import JobOutcome
from orchestrator.plan.build import Plan
from orchestrator.run.scheduler import SHORT_MIX_S, IllegalTransition, JobState, Scheduler, transition
from tests.workers.fakes import small_plan
from workers.contract import JobFailed, JobResult, ScriptRef, ScriptTrainJob, WorkerLost


class Ref:
    _n = itertools.count()

    def __init__(self, what: str):
        self.what, self.n = what, next(Ref._n)

    def __repr__(self) -> str:
        return f"Ref({self.what}#{self.n})"


class FakeGang:
    def __init__(self, attempt, ranks, bundle):
        self.attempt, self.ranks, self.bundle = attempt, ranks, bundle
        self.phase = "placing"  # placing -> training -> done (one ref per phase)
        self.refs = [Ref("placed")]
        self.released = False
        self.runs = [attempt.job.name]

    def pending(self):
        return list(self.refs)

    def reassign(self, attempt):
        self.attempt, self.phase, self.refs = attempt, "training", [Ref("trained")]
        self.runs.append(attempt.job.name)

    def release(self):
        self.released, self.refs, self.phase = True, [], "done"


class FakeLauncher:
    """Records what was started; a test says how each ref ends (default: a result)."""

    def __init__(self):
        self.gangs: list[FakeGang] = []
        self.workers: list[str] = []
        self.killed: list[str] = []
        self.calls: list[dict] = []  # run_on: {"worker", "job", "dep", "chunk", "ref"}
        self.ends: dict[Ref, BaseException | JobResult] = {}
        self.dead_sibling = False

    def start_gang(self, attempt, *, ranks, gpus, use_gpus, cpus_per_rank):
        bundle = {"CPU": cpus_per_rank, **({"GPU": gpus / ranks} if use_gpus and gpus else {})}
        g = FakeGang(attempt, ranks, bundle)
        self.gangs.append(g)
        return g

    def _end(self, ref, name):
        end = self.ends.pop(ref, None)
        if isinstance(end, BaseException):
            raise end
        return end or JobResult(result={"val_bpb": 1.0, "name": name}, wall_s=0.01, files={"f": b"x"})

    def advance(self, gang, ref):
        gang.refs.remove(ref)
        end = self._end(ref, gang.attempt.job.name)
        if gang.phase == "placing":
            gang.phase, gang.refs = "training", [Ref("trained")]
            return None
        gang.phase = "done"
        return end

    def sibling_died(self, gang):
        return self.dead_sibling

    def start_worker(self, use_gpus):
        w = f"w{len(self.workers) + 1}"
        self.workers.append(w)
        return w

    def run_on(self, worker, attempt, dep, inputs, chunk_tokens):
        ref = Ref(attempt.job.name)
        self.calls.append({"worker": worker, "job": attempt.job.name, "attempt": attempt.attempt, "dep": dep,
                           "chunk": chunk_tokens, "ref": ref, "inputs": inputs})
        return ref

    def get(self, ref):
        return self._end(ref, ref.what)

    def put(self, files):
        return ("stored", tuple(sorted(files)))

    def kill(self, worker):
        self.killed.append(worker)


class FakeHooks:
    def __init__(self):
        self.log: list[tuple] = []

    def prepare(self, job):
        return {"tokenizer": "tok.model"}

    def started(self, out):
        out.run_id = f"run-{out.job.name}-{out.attempt}"
        self.log.append(("started", out.job.name, out.attempt))

    def succeeded(self, out, value):
        out.result = value.result
        self.log.append(("succeeded", out.job.name))

    def failed(self, out, reason, value):
        self.log.append(("failed", out.job.name, reason))

    def lost(self, out, reason):
        self.log.append(("lost", out.job.name, reason))

    def cancelled(self, out):
        self.log.append(("cancelled", out.job.name))

    def fetch_files(self, identity):
        self.log.append(("fetch", identity))
        return {"model.ptz": b"m"}

    def event(self, what, out):
        self.log.append(("event", what, out.job.name))


def make(plan, *, gpus=8.0, cpus=16.0, use_gpus=True, max_actors=8, retries=2, reused=()):
    outcomes = {j.identity: JobOutcome(j) for j in plan.jobs}
    launcher, hooks = FakeLauncher(), FakeHooks()
    s = Scheduler(plan, outcomes, launcher, hooks, retries=retries)
    s.configure(use_gpus=use_gpus, max_actors=max_actors, node_max={"GPU": gpus, "CPU": cpus})
    for ident in reused:  # what the driver's resume does before the first refresh
        transition(outcomes[ident], JobState.REUSED)
    s.refresh_ready()
    return s, launcher, hooks


def by_name(s):
    return {o.job.name: o for o in s.outcomes.values()}


def finish_all(s, launcher, limit=100):
    """The driver's loop without Ray: dispatch, end every in-flight ref, until nothing moves."""
    for _ in range(limit):
        s.dispatch_ready()
        s.release_idle_actors()
        if not s.inflight:
            return
        for ref in list(s.inflight):
            if ref in s.inflight:
                s.handle(ref)
    raise AssertionError("the sweep did not end")


def test_a_chain_runs_on_one_worker_and_a_mix_reads_its_evals_chunk_size():
    plan = small_plan("chain", seeds=(1,), alphas=(0.1, 0.3))
    s, launcher, hooks = make(plan, max_actors=4)
    assert [o.state for o in s.outcomes.values()] == [JobState.READY] + [JobState.PENDING] * 3
    assert s.dispatch_ready() == 1 and launcher.workers == ["w1"]  # only the train can start
    finish_all(s, launcher)
    assert all(o.state == JobState.FINISHED for o in s.outcomes.values())
    assert launcher.workers == ["w1"]  # train -> eval -> mix on one process: no second worker for a pass
    assert {c["worker"] for c in launcher.calls} == {"w1"}
    mixes = [c for c in launcher.calls if c["job"].startswith("mix/")]
    assert [c["chunk"] for c in mixes] == [128, 128]  # EvalJob.eval.chunk_tokens, not a default
    ev = next(c for c in launcher.calls if c["job"] == "eval/s1")
    assert ev["inputs"] == ("stored", ("f",))  # the train's files, as the launcher stored them
    assert ("fetch", plan.jobs[0].identity) not in hooks.log  # computed here: never fetched from MLflow
    assert launcher.killed == ["w1"]  # released once no worker job is left


def test_a_second_mix_waits_for_the_holder_then_queues_behind_short_mixes():
    plan = small_plan("queue", seeds=(1,), alphas=(0.1, 0.3, 0.5))
    s, launcher, _ = make(plan, max_actors=4)
    for _ in range(2):  # train, then eval
        s.dispatch_ready()
        s.handle(next(iter(s.inflight)))
    assert s.dispatch_ready() == 1  # the first mix on the holder; the others never start a process
    assert launcher.workers == ["w1"] and s.mix_s is None
    s.handle(next(iter(s.inflight)))
    assert s.mix_s is not None and s.mix_s < SHORT_MIX_S
    assert s.dispatch_ready() == 2  # short mixes queue actor_depth deep on the holder
    assert len(s.slots[0].inflight) == 2 and launcher.workers == ["w1"]


def test_slot_accounting_one_worker_takes_jobs_in_turn():
    plan = small_plan("slots", seeds=(1, 2), alphas=())
    s, launcher, _ = make(plan, max_actors=1)
    assert s.dispatch_ready() == 1  # two trains ready, one worker allowed
    trains = [o for o in s.outcomes.values() if o.job.kind == "train"]
    assert [o.state for o in trains] == [JobState.RUNNING, JobState.READY]
    assert s.slots[0].training == trains[0].job.identity
    s.handle(next(iter(s.inflight)))
    assert s.slots[0].training is None and not s.slots[0].inflight
    # trains head the longest chains: the free worker takes train/s2 before eval/s1
    assert s.dispatch_ready() == 1 and trains[1].state == JobState.RUNNING
    finish_all(s, launcher)
    assert launcher.workers == ["w1"] and all(o.state == JobState.FINISHED for o in s.outcomes.values())


def test_gang_sizing_and_a_job_larger_than_any_node():
    plan = small_plan("gang", seeds=(1, 2), ranks=2, gpus=2, alphas=())
    big = small_plan("gang-big", seeds=(3,), ranks=4, gpus=4, alphas=())
    plan = Plan("g", "g", plan.jobs + big.jobs, plan.data)
    s, launcher, hooks = make(plan, gpus=2)
    s.dispatch_ready()
    assert [(g.ranks, g.bundle) for g in launcher.gangs] == [(2, {"CPU": 1.0, "GPU": 1.0})] * 2
    o = by_name(s)
    assert o["train/s3"].state == JobState.FAILED
    assert o["train/s3"].reason == "needs 4 GPUs on one node; the largest node has 2"
    assert o["eval/s3"].state == JobState.SKIPPED and o["eval/s3"].reason == "dependency train/s3 failed"
    assert ("started", "train/s3", 1) not in hooks.log  # no run was opened for it
    finish_all(s, launcher)
    assert all(o[n].state == JobState.FINISHED for n in ("train/s1", "eval/s1", "train/s2", "eval/s2"))
    assert all(g.released for g in launcher.gangs)


def test_a_script_job_is_one_actor_holding_all_its_ranks():
    ref = ScriptRef(path=".", entry="train_gpt.py", sha256="x", files=1, folder=False)
    job = ScriptTrainJob(identity="s" * 64, name="script/s1", script=ref, env={"SEED": "1"}, nproc=4, seed=1,
                         gpus=4, ranks=4)
    plan = Plan("script", "script", (job,), DataConfig(path="unused"))
    s, launcher, _ = make(plan, use_gpus=False, cpus=8)
    s.dispatch_ready()
    (g,) = launcher.gangs
    assert g.ranks == 1 and g.bundle == {"CPU": 4.0}  # torchrun starts the 4 ranks inside it (gloo on CPU)
    assert g.attempt.tokenizer == "tok.model"  # what Hooks.prepare adds travels in the Attempt


def test_a_finished_gang_takes_a_waiting_job_of_its_shape():
    plan = small_plan("reuse-gang", seeds=(1, 2), ranks=2, gpus=2, alphas=())
    s, launcher, _ = make(plan, gpus=2)
    s.dispatch_ready()
    first, second = launcher.gangs
    s.handle(first.pending()[0])  # the first group is placed; the second waits for resources
    s.handle(first.pending()[0])  # train/s1 done: its ranks take train/s2
    assert second.released and first.runs == ["train/s1", "train/s2"]
    assert s.gangs == {plan.jobs[2].identity: first}
    s.handle(first.pending()[0])
    assert by_name(s)["train/s2"].state == JobState.FINISHED and first.released


def test_idle_workers_are_released_while_a_gang_waits():
    solo = small_plan("wait-solo", seeds=(1,), ranks=1, gpus=1, alphas=())
    gang = small_plan("wait-gang", seeds=(2,), ranks=2, gpus=2, alphas=())
    plan = Plan("w", "w", (solo.jobs[0], gang.jobs[0], solo.jobs[1], gang.jobs[1]), gang.data)
    s, launcher, _ = make(plan, gpus=2)
    s.dispatch_ready()
    assert launcher.workers == ["w1"] and launcher.gangs[0].phase == "placing"
    s.handle(next(r for r, (k, _, _) in s.inflight.items() if k == "slot"))  # the 1-rank train ends
    s.release_idle_actors()  # the gang is still placing: the idle worker gives its GPU back
    assert launcher.killed == ["w1"] and not s.slots
    assert s.dispatch_ready() == 0  # trains first: eval/s1 starts no worker while the gang waits
    assert by_name(s)["eval/s1"].state == JobState.READY and launcher.workers == ["w1"]
    finish_all(s, launcher)
    assert all(o.state == JobState.FINISHED for o in s.outcomes.values())


def test_dependency_order_and_a_failed_job_skips_its_dependents():
    plan = small_plan("deps", seeds=(1,), alphas=(0.1,))
    s, launcher, hooks = make(plan)
    s.dispatch_ready()
    (ref,) = s.inflight
    launcher.ends[ref] = JobFailed("ValueError: bad config")
    s.handle(ref)
    o = by_name(s)
    assert o["train/s1"].state == JobState.FAILED and o["train/s1"].reason == "ValueError: bad config"
    assert ("failed", "train/s1", "ValueError: bad config") in hooks.log  # its run closed FAILED
    assert o["eval/s1"].state == JobState.SKIPPED and o["mix/s1/normalized/a0.1"].state == JobState.SKIPPED
    assert o["mix/s1/normalized/a0.1"].reason == "dependency eval/s1 skipped"
    assert s.dispatch_ready() == 0 and not s.inflight


def test_a_dead_worker_is_retried_then_failed_after_the_last_attempt():
    plan = small_plan("retry", seeds=(1,), alphas=())
    s, launcher, hooks = make(plan, retries=1)
    s.dispatch_ready()
    (ref,) = s.inflight
    launcher.ends[ref] = WorkerLost("RayActorError")
    s.handle(ref)
    train = by_name(s)["train/s1"]
    assert train.state == JobState.READY and train.reason == "worker died: RayActorError"
    assert not s.slots and ("lost", "train/s1", "worker died: RayActorError") in hooks.log
    s.dispatch_ready()  # a fresh worker for attempt 2
    assert launcher.workers == ["w1", "w2"] and launcher.calls[-1]["attempt"] == 2
    (ref,) = s.inflight
    launcher.ends[ref] = WorkerLost("RayActorError")
    s.handle(ref)
    assert train.state == JobState.FAILED and train.reason == "worker died: RayActorError (after 2 attempts)"
    assert by_name(s)["eval/s1"].state == JobState.SKIPPED


def test_a_gang_error_after_a_rank_died_is_a_lost_worker_not_a_job_error():
    plan = small_plan("sibling", seeds=(1,), ranks=2, gpus=2, alphas=())
    s, launcher, hooks = make(plan)
    s.dispatch_ready()
    (g,) = launcher.gangs
    s.handle(g.pending()[0])  # placed
    launcher.ends[g.pending()[0]] = JobFailed("RuntimeError: gloo connection closed")
    launcher.dead_sibling = True
    s.handle(g.pending()[0])
    train = by_name(s)["train/s1"]
    assert train.state == JobState.READY and train.reason == "worker died: a rank of the gang died"
    assert g.released and not s.gangs and not s.inflight
    s.dispatch_ready()
    assert len(launcher.gangs) == 2 and train.attempt == 2


def test_a_script_that_exited_non_zero_is_failed_not_retried():
    plan = small_plan("script-fail", seeds=(1,), ranks=2, gpus=2, alphas=())
    s, launcher, hooks = make(plan)
    s.dispatch_ready()
    (g,) = launcher.gangs
    s.handle(g.pending()[0])
    launcher.ends[g.pending()[0]] = JobResult(result={}, files={"train.log": b"boom"}, failed="exited with 1")
    s.handle(g.pending()[0])
    assert by_name(s)["train/s1"].state == JobState.FAILED and ("failed", "train/s1", "exited with 1") in hooks.log


def test_a_reused_input_is_fetched_once_and_cancel_closes_running_runs():
    plan = small_plan("reused", seeds=(1,), alphas=(0.1,))
    train, ev = plan.jobs[0], plan.jobs[1]
    s, launcher, hooks = make(plan, reused=(train.identity,))
    assert s.outcomes[ev.identity].state == JobState.READY
    s.dispatch_ready()
    assert hooks.log.count(("fetch", train.identity)) == 1  # from MLflow, once
    s.cancel()
    assert s.outcomes[ev.identity].state == JobState.CANCELLED and ("cancelled", "eval/s1") in hooks.log
    assert s.outcomes[plan.jobs[2].identity].state == JobState.CANCELLED  # never started: no run to close
    assert ("cancelled", plan.jobs[2].name) not in hooks.log
    assert s.outcomes[train.identity].state == JobState.REUSED  # terminal states stay
    assert not s.inflight and not s.slots and launcher.killed == ["w1"]


@pytest.mark.parametrize("old,new", [
    (JobState.FINISHED, JobState.RUNNING), (JobState.REUSED, JobState.READY), (JobState.PENDING, JobState.FINISHED),
    (JobState.PENDING, JobState.RUNNING), (JobState.FAILED, JobState.READY), (JobState.SKIPPED, JobState.PENDING),
    (JobState.CANCELLED, JobState.FINISHED), (JobState.READY, JobState.FINISHED),
])
def test_illegal_transitions_are_refused(old, new):
    out = JobOutcome(small_plan("illegal", seeds=(1,), alphas=()).jobs[0], state=old)
    with pytest.raises(IllegalTransition, match=f"job train/s1: {old.value} -> {new.value} is not a legal"):
        transition(out, new)
    assert out.state == old


def test_legal_transitions_and_states_read_as_their_names():
    out = JobOutcome(small_plan("legal", seeds=(1,), alphas=()).jobs[0])
    for new in (JobState.READY, JobState.RUNNING, JobState.READY, JobState.RUNNING, JobState.FINISHED):
        transition(out, new)
    assert out.state == "finished" and f"{out.state}" == "finished"  # reports and the display read strings


def test_the_policy_is_fast_without_ray():
    plan = small_plan("fast", seeds=tuple(range(20)), alphas=(0.1, 0.3))
    s, launcher, _ = make(plan, max_actors=8)
    t0 = time.perf_counter()
    finish_all(s, launcher, limit=1000)
    assert all(o.state == JobState.FINISHED for o in s.outcomes.values())
    assert len(launcher.workers) <= 8 and time.perf_counter() - t0 < 5.0


def _script_job(i: int, gpus: int = 1) -> ScriptTrainJob:
    ref = ScriptRef(path=".", entry="train_gpt.py", sha256="x", files=1, folder=False)
    return ScriptTrainJob(identity=f"{i:064d}", name=f"script/s1/trial{i}", script=ref, env={"SEED": "1"},
                          nproc=gpus, seed=1, gpus=gpus, ranks=gpus, trial=i, study="st")


def test_jobs_added_while_running_start_as_capacity_frees():
    plan = Plan("opt", "opt", (), DataConfig(path="unused"))
    s, launcher, _ = make(plan, gpus=2)
    s.configure(use_gpus=True, max_actors=2, node_max={"GPU": 2, "CPU": 16}, totals={"GPU": 2, "CPU": 16})
    first, second, third = (_script_job(i) for i in range(3))
    assert s.could_take_work(first)
    s.add_job(JobOutcome(first))
    assert by_name(s)[first.name].state == JobState.READY and not s.could_take_work(first)  # READY waits
    s.dispatch_ready()
    assert not s.could_take_work(first)  # its gang is still placing
    s.handle(launcher.gangs[0].pending()[0])  # placed: one GPU of two is taken
    assert s.could_take_work(first) and not s.could_take_work(_script_job(9, gpus=2))
    s.add_job(JobOutcome(second))
    s.dispatch_ready()
    s.handle(launcher.gangs[1].pending()[0])
    assert not s.could_take_work(third)  # both GPUs train
    s.handle(launcher.gangs[0].pending()[0])  # the first trial's job ends: a GPU is free again
    assert by_name(s)[first.name].state == JobState.FINISHED and s.could_take_work(third)
    done = JobOutcome(third)
    s.add_job(done, reused=True)  # MLflow had it: nothing to run
    assert done.state == JobState.REUSED and not launcher.gangs[2:]
    with pytest.raises(ValueError, match="already scheduled"):
        s.add_job(JobOutcome(first))


class StopHooks(FakeHooks):
    def pruned(self, out, value):
        self.log.append(("pruned", out.job.name, out.reason, value is not None))


def test_stopping_one_job_prunes_it_and_hands_its_gang_to_the_next_trial():
    """The seam a pruner uses: one running script job stopped (its launcher asked to kill its
    tree), STOPPING until its attempt returns, then PRUNED with its partial files; its ranks go
    to a waiting gang of the same shape; an unstarted job is PRUNED at once; the rest run."""
    plan = Plan("stop", "stop", (), DataConfig(path="unused"))
    outcomes: dict = {}
    launcher, hooks = FakeLauncher(), StopHooks()
    stopped = []
    launcher.stop = lambda gang: stopped.append(gang.attempt.job.name)
    s = Scheduler(plan, outcomes, launcher, hooks, retries=0)
    s.configure(use_gpus=True, max_actors=1, node_max={"GPU": 1, "CPU": 16}, totals={"GPU": 1, "CPU": 16})
    for i in range(3):
        s.add_job(JobOutcome(_script_job(i)))
    s.dispatch_ready()
    first, second, third = (outcomes[f"{i:064d}"] for i in range(3))
    s.handle(next(r for r, e in s.inflight.items() if e[2] == first.job.identity))  # placed: training
    gang = s.gangs[first.job.identity]
    assert gang.phase == "training" and first.placed is not None
    assert s.stop(third.job.identity, "asha: its trial was stopped")  # a gang still placing
    assert third.state == JobState.PRUNED
    assert s.stop(first.job.identity, "asha: outside the best 1 of 2") and first.state == JobState.STOPPING
    assert stopped == [first.job.name] and not s.stop(first.job.identity, "again")
    launcher.ends[gang.refs[0]] = JobResult(result={}, files={"train.log": b"step:1/9"}, failed="exited -15")
    s.handle(gang.refs[0])  # the killed script's attempt returns
    assert first.state == JobState.PRUNED and first.reason == "asha: outside the best 1 of 2"
    assert ("pruned", first.job.name, "asha: outside the best 1 of 2", True) in hooks.log
    assert gang.runs[-1] == second.job.name and not gang.released  # its ranks went to the waiting trial
    finish_all(s, launcher)
    assert second.state == JobState.FINISHED
    with pytest.raises(IllegalTransition):
        transition(first, JobState.RUNNING)


def test_a_stop_that_lands_after_the_script_ended_with_its_score_leaves_it_finished():
    """A late prune decision: the script had exited 0 and printed its score line before its tree
    could be killed, so it trained to its end: FINISHED with its result, not PRUNED."""
    plan = Plan("late", "late", (), DataConfig(path="unused"))
    outcomes: dict = {}
    launcher, hooks = FakeLauncher(), StopHooks()
    launcher.stop = lambda gang: None
    s = Scheduler(plan, outcomes, launcher, hooks, retries=0)
    s.configure(use_gpus=True, max_actors=1, node_max={"GPU": 1, "CPU": 16}, totals={"GPU": 1, "CPU": 16})
    s.add_job(JobOutcome(_script_job(0)))
    s.dispatch_ready()
    out = outcomes[f"{0:064d}"]
    s.handle(next(iter(s.inflight)))  # placed: training
    gang = s.gangs[out.job.identity]
    assert s.stop(out.job.identity, "asha: outside the best 1 of 2") and out.state == JobState.STOPPING
    launcher.ends[gang.refs[0]] = JobResult(result={"val_bpb": 1.5, "val_loss": 2.5}, files={"train.log": b"x"})
    s.handle(gang.refs[0])
    assert out.state == JobState.FINISHED and not [e for e in hooks.log if e[0] == "pruned"]
