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
    # eval/mix durations unknown yet: no ETA rather than a made-up one (never 0m00s with jobs pending)
    assert estimate_eta(r) is None
    e1.state, e1.started, e1.ended = "finished", now - 2, now
    m1.state, m1.started, m1.ended = "finished", now - 1, now
    # 6 s of train 2 + eval 2 (2 s) + mix 2 (1 s) once every kind has a duration; 1 job running
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
    assert lines[0].startswith("golf: pending=4 finished=2 best compliant seed val_bpb=2.50000 elapsed=0m0")
    assert "ETA=" not in lines[0]  # pending kinds with no duration yet: no ETA


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
    assert text.startswith("best compliant config val_bpb 2.50000 (1 seed): model") and "non-compliant 1.20000*" in text
    buf = io.StringIO()
    Console(file=buf, width=200).print(results_table(r))
    out = buf.getvalue()
    assert "1.20000*" in out and "model (roundtrip)" in out and "1/2" in out  # 1 of 2 seeds scored


def test_final_table_fits_80_columns_without_losing_the_configuration():
    import dataclasses

    from orchestrator.cli.run import results_table

    long = "alpha_base=0.25,alpha_range=0.4,entropy_slope=2.0,entropy_center=4.0,min_count=2,buckets=4194304"
    r = _report()
    for o in r.outcomes.values():
        if o.job.kind == "mix":
            o.job = dataclasses.replace(o.job, name=o.job.name.replace("a0.1", long))
        o.state, o.result = "finished", {"val_bpb": 1.23456 + o.job.seed / 1000}
        o.verdict = Verdict(True, compliant=True if o.job.kind == "mix" else None)
    buf = io.StringIO()
    Console(file=buf, width=80).print(results_table(r))
    out = buf.getvalue()
    assert max(map(len, out.splitlines())) <= 80 and "…" not in out
    assert "[1] below" in out
    flat = " ".join(out.split())
    assert "[1] normalized: " + long.replace(",", ", ") in flat  # the whole configuration, below
    assert "1.23606 ± 0.00071" in out  # 5 decimals, ± std


def test_piped_output_prints_elapsed_and_eta_every_heartbeat():
    r = _report()
    buf = io.StringIO()
    p = SweepProgress(Console(file=buf, width=200), live=False, line_interval_s=0.0, heartbeat_s=0.05)
    p.start(r)
    p.update(r)
    time.sleep(0.06)
    p.update(r)  # counts unchanged, but a heartbeat is due
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and all("elapsed=" in ln for ln in lines)
