"""The job-kind registry (orchestrator.kinds, issue 16): a kind registered in this test only runs
end to end through a plan, the scheduler (a fake launcher: no Ray) and tracking (a real
`mlflow server`) without any other module edited; and no module outside the registry compares
job kind strings."""
from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

from golf_core.data.config import DataConfig
from orchestrator import kinds
from orchestrator.kinds.identity import identity_of
from orchestrator.plan.build import Plan, sweep_identity
from orchestrator.run.driver import run_plan
from orchestrator.run.types import DriverOptions
from orchestrator.tracking import Tracker
from tests.orchestrator.tracking.helpers import runs_of
from workers.contract import JobBase, JobResult, job_class

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- the toy kind
@job_class
class CountJob(JobBase):
    """Counts to `n` (a negative `n` is a result the kind's own rule refuses)."""
    kind: ClassVar[str] = "count"
    n: int


class Count(kinds.JobKind):
    name = "count"
    job_type = CountJob
    order = 0
    needs_input = False
    metric_keys = ("count_total",)

    def submit(self, worker, attempt, dep, inputs, context, *, data_dir, vocab_size):
        return worker.count.remote(attempt)

    def score_column(self, job: Any) -> str:
        return "count"

    def judge_kind(self, job, result, compliant, reasons, upstream):
        if result["count_total"] < 0:
            reasons.append("count_total is negative")
        return True

    def estimate_s(self, job: Any, ctx: Any) -> float:
        return 1.0


class _Ref:
    _n = itertools.count()

    def __init__(self, value: JobResult):
        self.value, self.n = value, next(_Ref._n)

    def __hash__(self) -> int:
        return self.n


class _Method:
    def __init__(self, fn):
        self.remote = fn


class CountWorker:
    """What a Ray actor would be: `count.remote(attempt)` returns a ref of its JobResult."""

    def __init__(self, calls: list):
        self.count = _Method(lambda attempt: (calls.append(attempt.job.name),
                                              _Ref(JobResult(result={"count_total": sum(range(attempt.job.n + 1))
                                                                     if attempt.job.n >= 0 else attempt.job.n},
                                                             wall_s=0.0)))[1])


class FakeLauncher:
    """A Launcher with no processes: workers are CountWorkers, every call is done at once."""

    def __init__(self):
        self.calls: list[str] = []

    def cluster(self, connect):
        return {"CPU": 2.0}, {"CPU": 2.0, "GPU": 0.0}

    def start_worker(self, use_gpus):
        return CountWorker(self.calls)

    def run_on(self, worker, attempt, dep, inputs, context):
        return kinds.of(attempt.job).submit(worker, attempt, dep, inputs, context, data_dir="", vocab_size=0)

    def wait(self, refs, timeout):
        return list(refs)

    def get(self, ref):
        return ref.value

    def put(self, files):
        return files

    def kill(self, worker):
        pass

    def ready(self, refs):
        return list(refs)

    def progress(self, host):
        return None


@pytest.fixture
def count_kind():
    kind = kinds.register(Count())
    try:
        yield kind
    finally:
        kinds.unregister(kind.name)


def _plan(name: str) -> Plan:
    jobs = tuple(CountJob(identity=identity_of("count", {"n": n}, "toy"), name=f"count/n{n}", n=n,
                          params={"count.n": str(n)}) for n in (3, 10, -1))
    return Plan(name, sweep_identity(name, [j.identity for j in jobs]), jobs, DataConfig(path="unused"))


def test_a_toy_kind_runs_through_plan_scheduler_and_tracking(count_kind, mlflow_server, tmp_path):
    plan = _plan("toy-kind")
    assert plan.by_kind("count") == plan.jobs and plan.counts()["count"] == 3
    launcher = FakeLauncher()

    def run():
        tracker = Tracker(mlflow_server.uri, plan.sweep_name, tmp_path / "journal")
        try:
            return run_plan(plan, tracker, DriverOptions(launcher=launcher, work_dir=str(tmp_path / "w")))
        finally:
            assert tracker.close(timeout=60)

    report = run()
    assert report.counts() == Counter(finished=3)
    assert sorted(launcher.calls) == ["count/n-1", "count/n10", "count/n3"]  # through the kind's submit
    runs = {r.data.tags["golf.job"]: r for r in runs_of(mlflow_server.uri, plan.sweep_name, "tags.golf.kind = 'count'")}
    assert set(runs) == {"count/n3", "count/n10", "count/n-1"}
    assert runs["count/n10"].data.metrics["count_total"] == 55.0  # the kind's own metric key
    assert runs["count/n10"].data.params["count.n"] == "10"
    assert runs["count/n10"].info.status == "FINISHED" and runs["count/n10"].data.tags["golf.valid"] == "true"
    bad = runs["count/n-1"]  # the kind's own rule judged it
    assert bad.data.tags["golf.valid"] == "false" and "count_total is negative" in bad.data.tags["golf.reason"]
    # the sweep's summary groups its scores under the kind's column
    from orchestrator.tracking.summary import column_of

    assert {column_of(o.job) for o in report.outcomes.values()} == {"count"}

    launcher.calls.clear()  # a rerun finds every identity FINISHED in MLflow: nothing runs
    again = run()
    assert again.counts() == Counter(reused=3) and launcher.calls == []


def test_an_unregistered_job_class_is_one_clear_error():
    @job_class
    class Stray(JobBase):
        kind: ClassVar[str] = "stray"

    with pytest.raises(ValueError, match="Stray is not a registered job kind"):
        kinds.of(Stray(identity="x", name="stray/1"))


def test_every_contract_job_class_has_its_kind():
    from workers import contract

    for cls in (contract.TrainJob, contract.ScriptTrainJob, contract.EvalJob, contract.MixJob, contract.OptunaMixJob):
        assert any(k.job_type is cls for k in kinds.all_kinds()), cls


# ------------------------------------------------------------------------- no kind strings outside
_JOB_KINDS = ("train", "script_train", "eval", "mix", "optuna_mix")
_PATTERNS = (
    # job.kind / out.job.kind / self.jobs[i].kind / attempt.job.kind / j.kind compared with anything
    re.compile(r"\b(job\w*(\.\w+|\[[^\]]*\])*|j)\.kind\s*(==|!=|\bin\b|\bnot in\b)"),
    # a `kind` variable compared with a job kind literal (a log event's `ev.kind == "train"` is
    # golf_core.logparse's event kind: left alone)
    re.compile(r"(?<!ev\.)(?<!for )\b\w*kind\s*(==|!=|\bin\b|\bnot in\b)\s*\(?\s*[\"'](train|script_train|eval|mix|optuna_mix)[\"']"),
    re.compile(r"KIND_ORDER"),
)


def test_no_kind_string_comparisons_outside_the_registry():
    hits = []
    for pkg in ("orchestrator", "workers"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("orchestrator/kinds/"):
                continue
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if any(p.search(code) for p in _PATTERNS):
                    hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "kind-string dispatch outside orchestrator/kinds (ask kinds.of(job)):\n" + "\n".join(hits)


def test_the_grep_finds_what_it_must():
    """The patterns above catch the shapes issue 16 removed (so the test can fail)."""
    caught = ['if job.kind == "train":', 'if out.job.kind in ("train", "script_train"):',
              'names = X if self.jobs[ident].kind == "train" else Y', 'if kind == "mix":',
              'KIND_ORDER = {"train": 0}', 'elif j.kind != "eval":']
    for line in caught:
        assert any(p.search(line) for p in _PATTERNS), line
    assert not any(p.search('if ev.kind == "train" and ev.step is not None:') for p in _PATTERNS)
