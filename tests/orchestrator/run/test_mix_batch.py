"""Mix points of one eval and table key go to a worker as one call (orchestrator.run.mix_batch):
grouped, split across idle workers, bounded, one ref and one result per job (issue 21)."""
from __future__ import annotations

from collections import Counter

from orchestrator.run import mix_batch
from orchestrator.run.scheduler import JobState
from tests.orchestrator.run.test_scheduler import FakeLauncher, Ref, by_name, finish_all, make
from tests.workers.fakes import small_plan


class BatchLauncher(FakeLauncher):
    def __init__(self):
        super().__init__()
        self.batches: list[dict] = []

    def run_batch_on(self, worker, attempts, dep, inputs, chunk_tokens):
        refs = [Ref(a.job.name) for a in attempts]
        self.batches.append({"worker": worker, "jobs": [a.job.name for a in attempts], "dep": dep,
                             "chunk": chunk_tokens})
        return refs


def _make(plan, **kw):
    s, _, hooks = make(plan, **kw)
    s.launcher = launcher = BatchLauncher()
    return s, launcher, hooks


def test_mixes_of_one_eval_and_table_key_run_as_batches_each_its_own_result():
    alphas = tuple(round(0.01 * i, 2) for i in range(1, 41))
    plan = small_plan("batch", seeds=(1,), alphas=alphas, modes=("normalized", "hashed_target"))
    s, launcher, hooks = _make(plan, max_actors=1)
    finish_all(s, launcher)
    assert all(o.state == JobState.FINISHED for o in s.outcomes.values())
    assert sum(len(b["jobs"]) for b in launcher.batches) == 80
    for b in launcher.batches:  # one table key per call, never more than MAX_BATCH points
        assert len({n.split("/")[2] for n in b["jobs"]}) == 1 and len(b["jobs"]) <= mix_batch.MAX_BATCH
        assert b["chunk"] == 128
    assert len(launcher.batches) < 10  # not one call per point
    started = Counter(e[1] for e in hooks.log if e[0] == "started")
    assert all(v == 1 for v in started.values()) and len(started) == len(plan.jobs)  # one attempt (run) each
    assert all(by_name(s)[f"mix/s1/normalized/a{a}"].result["name"] == f"mix/s1/normalized/a{a}" for a in alphas)


def test_a_batch_is_split_across_idle_workers_and_counts_as_one_call():
    alphas = tuple(round(0.005 * i, 3) for i in range(1, 61))
    plan = small_plan("split", seeds=(1,), alphas=alphas)
    s, launcher, _ = _make(plan, max_actors=2)
    s.dispatch_ready()
    for ref in list(s.inflight):  # the train
        s.handle(ref)
    s.slots.append(type(s.slots[0])(launcher.start_worker(False), 2))  # a second, idle worker
    s.dispatch_ready()  # the eval goes to the holder
    for ref in list(s.inflight):
        s.handle(ref)
    s.dispatch_ready()
    workers = [b["worker"] for b in launcher.batches]
    assert sorted(set(workers)) == ["w1", "w2"]  # both workers got a share
    assert all(len(b["jobs"]) == 30 for b in launcher.batches)
    holder = next(sl for sl in s.slots if sl.worker == "w1")
    assert len(holder.inflight) == 30 and holder.calls() == 1
    finish_all(s, launcher)
    assert all(o.state == JobState.FINISHED for o in s.outcomes.values())
