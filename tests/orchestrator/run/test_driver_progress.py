"""The terminal display: counts by state, best val_bpb, ETA from finished jobs' durations."""
from __future__ import annotations

import io
import time

from rich.console import Console

from orchestrator.run.types import JobOutcome, SweepReport
from orchestrator.run.progress import SweepProgress, estimate_eta
from orchestrator.run.validity import Verdict
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
    assert len(lines) == 1  # the invalid 1.5 is no best
    assert lines[0].startswith("golf: pending=4 finished=2 best compliant val_bpb=2.5000 elapsed=0m0")
    assert "ETA=" in lines[0]


def test_a_non_compliant_score_is_never_the_headline():
    from orchestrator.cli.run import headline, results_table

    r = _report()
    outs = list(r.outcomes.values())
    mix = next(o for o in outs if o.job.kind == "mix")
    train = next(o for o in outs if o.job.kind == "train")
    train.state, train.result, train.verdict = "finished", {"val_bpb": 2.5}, Verdict(True)
    mix.state, mix.result, mix.verdict = "finished", {"val_bpb": 1.2}, Verdict(True, compliant=False)
    assert r.best()["val_bpb"] == 2.5 and r.best(compliant=False)["val_bpb"] == 1.2
    text = headline(r)
    assert text.startswith("best compliant val_bpb 2.5000") and "non-compliant 1.2000*" in text
    buf = io.StringIO()
    Console(file=buf, width=200).print(results_table(r))
    out = buf.getvalue()
    assert "1.2000*" in out and "model (roundtrip)" in out and "1/2" in out  # 1 of 2 seeds scored


def test_piped_output_prints_elapsed_and_eta_every_heartbeat():
    r = _report()
    buf = io.StringIO()
    p = SweepProgress(Console(file=buf, width=200), live=False, line_interval_s=0.0, heartbeat_s=0.05)
    p.start(r)
    p.update(r)
    time.sleep(0.06)
    p.update(r)  # counts unchanged, but a heartbeat is due
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all("elapsed=" in ln and "ETA=" in ln for ln in lines)
