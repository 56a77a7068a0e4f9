"""How long the sweep's summary plots take at thousands of configurations (issue 19 / 21: the
seed spread is bounded to the best legal configurations, the heatmap stops writing numbers in
cells it cannot show). No GPU, no Ray, no MLflow: a synthetic report of fake mix jobs.

    python bench/plots.py [--alphas 2500]   # 2 modes x 2500 alphas = 5,000 configs, 2 seeds
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alphas", type=int, default=2500)
    args = ap.parse_args()
    from orchestrator.run.types import JobOutcome, SweepReport
    from orchestrator.run.validity import Verdict
    from orchestrator.tracking import plots
    from orchestrator.tracking.summary import plot_data
    from tests.workers.fakes import small_plan

    alphas = tuple(round(1e-4 * i, 4) for i in range(1, args.alphas + 1))
    plan = small_plan("bench-plots", seeds=(1, 2), alphas=alphas, modes=("normalized", "hashed_target"))
    report = SweepReport(plan, {j.identity: JobOutcome(j) for j in plan.jobs}, time.time())
    for i, o in enumerate(report.outcomes.values()):
        bad = o.job.kind == "mix" and o.job.mode == "hashed_target"
        o.state, o.result = "finished", {"val_bpb": 2.0 + (i * 7919 % 1000) / 1e4, "chunk_bpb": [2.1, 2.0]}
        o.verdict = Verdict(True, compliant=False if bad else (True if o.job.kind == "mix" else None))
    t0 = time.perf_counter()
    data = plot_data(report, lambda o, key: [(0, 3.0), (1, 2.0)])
    t1 = time.perf_counter()
    plots.write_all(data, Path(tempfile.mkdtemp(prefix="golf-bench-plots-")), "bench")
    t2 = time.perf_counter()
    n = len(data["spread"]) + data["spread_hidden"]
    print(f"{platform.machine()}: {len(plan.jobs)} jobs, {n} configs: plot_data {t1 - t0:.2f} s, "
          f"write_all {t2 - t1:.2f} s ({len(data['spread'])} spread rows)")


if __name__ == "__main__":
    main()
