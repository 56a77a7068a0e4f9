"""The terminal display: counts by state, best val_bpb, ETA from finished jobs' durations."""
from __future__ import annotations

import io
import time

from rich.console import Console

from orchestrator.driver import JobOutcome, SweepReport
from orchestrator.progress import SweepProgress, estimate_eta
from orchestrator.validity import Verdict
from tests.workers.fakes import small_plan


def _report():
    plan = small_plan("progress", seeds=(1, 2), alphas=(0.1,))
    return SweepReport(plan, {j.identity: JobOutcome(j) for j in plan.jobs}, time.time())


def test_eta_uses_mean_duration_per_kind_and_parallelism():
    r = _report()
    outs = list(r.outcomes.values())
    t1, e1, m1, t2 = outs[0], outs[1], outs[2], outs[3]
    assert estimate_eta(r) is None  # nothing finished: no estimate
    now = time.time()
    t1.state, t1.started, t1.ended = "finished", now - 10, now  # a train took 10 s
    t2.state, t2.started = "running", now - 4  # another is 4 s in
    # left: 6 s of train 2; eval/mix durations unknown yet -> counted as 0; 1 job running
    assert abs(estimate_eta(r) - 6.0) < 0.5
    e1.state, e1.started, e1.ended = "finished", now - 2, now
    m1.state, m1.started, m1.ended = "finished", now - 1, now
    # + eval 2 (2 s) + mix 2 (1 s) once their kinds have a duration
    assert abs(estimate_eta(r) - 9.0) < 0.5


def test_plain_lines_and_best_val_bpb():
    r = _report()
    buf = io.StringIO()
    p = SweepProgress(Console(file=buf, width=200), live=False, line_interval_s=0.0)
    p.start(r)
    outs = list(r.outcomes.values())
    outs[0].state, outs[0].result, outs[0].verdict = "finished", {"val_bpb": 2.5}, Verdict(True)
    outs[3].state, outs[3].result, outs[3].verdict = "finished", {"val_bpb": 1.5}, Verdict(False, "nan")
    p.update(r)
    p.update(r)  # unchanged counts: no new line
    p.stop(r)
    lines = buf.getvalue().splitlines()
    assert lines == ["golf: pending=4 finished=2 best val_bpb=2.5000"]  # the invalid 1.5 is no best
