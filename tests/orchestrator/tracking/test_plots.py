"""The sweep's plots read by a person: the seed spread horizontal, configurations in full, the
best legal ones first and bounded, each seed its own marker, non-compliant rows, panels and
lines marked."""
from __future__ import annotations

import time

from orchestrator.run.types import JobOutcome, SweepReport
from orchestrator.run.validity import Verdict
from orchestrator.tracking import plots
from orchestrator.tracking.summary import plot_data
from tests.workers.fakes import small_plan

PNG = b"\x89PNG\r\n\x1a\n"


def _report(alphas=(0.1, 0.3, 0.5)):
    plan = small_plan("plots", seeds=(1337, 42, 2024), alphas=alphas, modes=("normalized", "hashed_target"))
    r = SweepReport(plan, {j.identity: JobOutcome(j) for j in plan.jobs}, time.time())
    for o in r.outcomes.values():
        bad = o.job.kind == "mix" and o.job.mode == "hashed_target"
        alpha = float(getattr(getattr(o.job, "mixer", None), "alpha_base", 0) or 0)
        v = (0.5 if bad else 2.0) + alpha + o.job.seed / 1e5
        o.state, o.result = "finished", {"val_bpb": v, "chunk_bpb": [v + 0.1, v]}
        o.verdict = Verdict(True, compliant=False if bad else (True if o.job.kind == "mix" else None))
    return r


def test_plot_data_puts_the_best_legal_configs_first_and_marks_the_rest():
    data = plot_data(_report(), lambda o, key: [(0, 1.0)])
    rows = data["spread"]
    legal = [r for r in rows if r[2]]
    assert rows[:len(legal)] == legal  # legal first
    means = [sum(v for _, v in pts) / len(pts) for _, pts, _ in legal]
    assert means == sorted(means)  # best first
    assert all(lbl.startswith("hashed_target") for lbl, _, ok in rows if not ok)
    assert "normalized a0.1" in [lbl for lbl, _, _ in rows]  # the plan path's varying part, in full
    assert all(len(pts) == 3 for _, pts, _ in rows)  # every seed
    assert data["alpha_compliant"] == {"normalized": True, "hashed_target": False}
    assert any("hashed_target" in n for n in data["chunks_noncompliant"])


def test_the_spread_is_bounded_however_many_configs():
    alphas = tuple(round(0.01 * i, 2) for i in range(1, 60))
    data = plot_data(_report(alphas), lambda o, key: [])
    assert len([r for r in data["spread"] if r[2]]) == plots.SPREAD_TOP_LEGAL
    assert len([r for r in data["spread"] if not r[2]]) == plots.SPREAD_TOP_NONCOMPLIANT
    assert data["spread_hidden"] > 0


def test_pngs_are_written(tmp_path):
    data = plot_data(_report(), lambda o, key: [(0, 3.0), (1, 2.5)])
    paths = plots.write_all(data, tmp_path, title="plots")
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5000, p
