"""Scheduling benchmark: 64 simulated jobs of known durations on 8 logical GPUs.

The jobs go through the real driver path (orchestrator.run.driver.run_plan: long-lived per-GPU
workers for 1-rank training, eval and mix, a real Tracker on a SQLite MLflow store); only the
work is replaced by sleeps of known length. Reported:
- makespan vs the lower bound max(total work / 8 GPUs, longest dependency chain);
- makespan is timed from run_plan's call (resume queries included) to its return, on a warm
  MLflow store;
- driver overhead per job: the driver loop's own time (dispatch, bookkeeping, tracking calls,
  i.e. everything but waiting in ray.wait), divided by the number of jobs.
Targets: makespan <= 1.05 x bound, overhead <= 100 ms/job.

    python bench/scheduling.py [--chains 16] [--scale 1.0] [--seed 0] [--detail]

--detail adds, per kind, the first dispatch time and each job's overrun (dispatch to end minus
its sleep: process starts, input fetches, round trips, waits in a worker's queue).

16 chains of train (1 GPU) -> eval -> 2 mix = 64 jobs; durations drawn around
train 8 s, eval 2 s, mix 1 s (x scale).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.runner import GolfRunner  # noqa: E402


class SleepRunner(GolfRunner):
    """Each job sleeps its "sleep" param's seconds (a mix: the seconds `mix_sleep` maps its
    mixer's alpha_base to, the mix functions see only the mixer); outputs are stubs of the real
    shapes."""

    def __init__(self, mix_sleep: dict[float, float]):
        self.mix_sleep = mix_sleep

    def train(self, attempt, data_dir, out_dir, on_progress):
        time.sleep(float(attempt.job.params["sleep"]))
        Path(out_dir, "model.ptz").write_bytes(b"\0" * 16)
        return {"val_bpb": 2.0, "val_loss": 1.4, "artifact_bytes": 16, "train_loss_curve": [[1, 3.0]]}

    def eval(self, attempt, artifact_dir, data_dir, out_dir):
        sleep = float(attempt.job.params["sleep"])
        time.sleep(sleep)
        np.savez(Path(out_dir, "token_stats.npz"), bytes=np.ones(4), p_model=np.full(4, 0.5))
        return {"val_bpb": 1.9, "val_loss": 1.3, "eval_time_s": sleep}

    def mixer_config(self, mixer):
        return mixer

    def table_key(self, mixer):
        return ("sleep",)

    def load_stats(self, path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def load_val(self, data_dir, vocab_size):
        return None

    def ngram(self, val, stats, mixer, chunk_tokens, vocab_size):
        return None

    def mix_nll(self, stats, ngram, mixer):
        time.sleep(self.mix_sleep[mixer["alpha_base"]])
        return -np.log(stats["p_model"])

    def audit_mix(self, stats, ngram, mixer, vocab_size, carried=None, shared=None):
        return {"compliant": True, "checks": {}}


def make_plan(chains: int, scale: float, seed: int):
    from golf_core.data.config import DataConfig
    from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig
    from golf_core.presets import load_preset
    from orchestrator.plan.build import Plan
    from workers.contract import EvalJob, MixJob, TrainJob

    rng = random.Random(seed)
    jobs, chain_len, total, mix_sleep = [], 0.0, 0.0, {}
    tag = f"{time.time_ns()}"  # fresh identities: nothing is reused from an earlier run
    run = load_preset("tiny")
    for c in range(chains):
        dt, de = scale * rng.uniform(6, 10), scale * rng.uniform(1.5, 2.5)
        dm = [scale * rng.uniform(0.5, 1.5) for _ in range(2)]
        t = TrainJob(identity=f"t{c}-{tag}", name=f"train/{c}", run=run, seed=c, gpus=1, params={"sleep": str(dt)})
        e = EvalJob(identity=f"e{c}-{tag}", name=f"eval/{c}", eval=EvalConfig(), ttt=TTTConfig(), deps=(t.identity,),
                    seed=c, gpus=1, params={"sleep": str(de)})
        ms = []
        for k, d in enumerate(dm):
            alpha = round(0.001 * (len(mix_sleep) + 1), 6)  # one alpha_base per mix: its sleep's key
            mix_sleep[alpha] = d
            ms.append(MixJob(identity=f"m{c}.{k}-{tag}", name=f"mix/{c}/{k}", mixer=MixerConfig(alpha_base=alpha),
                             deps=(e.identity,), seed=c, gpus=1, params={"sleep": str(d)}))
        jobs += [t, e, *ms]
        chain_len = max(chain_len, dt + de + max(dm))
        total += dt + de + sum(dm)
    jobs.sort(key=lambda j: ("train", "eval", "mix").index(j.kind))  # like orchestrator.plan.build: by kind
    plan = Plan("bench-scheduling", f"bench-{tag}", tuple(jobs), DataConfig(path="unused", vocab_size=64))
    return plan, total, chain_len, mix_sleep


def _detail(report, t0_wall: float) -> dict:
    """Per kind: the first dispatch (s after the start) and the mean / max overrun of a job
    (dispatch to end minus its sleep: process starts, fetches, round trips)."""
    by: dict[str, list] = {}
    for o in report.outcomes.values():
        sleep = float(o.job.params["sleep"])
        by.setdefault(o.job.kind, []).append((o.started - t0_wall, o.ended - o.started - sleep))
    return {k: {"first_dispatch_s": round(min(d for d, _ in v), 2),
                "overrun_mean_s": round(sum(x for _, x in v) / len(v), 2),
                "overrun_max_s": round(max(x for _, x in v), 2)} for k, v in by.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=16)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--detail", action="store_true", help="per-kind start delay and overrun")
    args = ap.parse_args(argv)

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    from orchestrator.run.types import DriverOptions
    from orchestrator.run.driver import run_plan
    from orchestrator.tracking import Tracker

    plan, total, chain, mix_sleep = make_plan(args.chains, args.scale, args.seed)
    bound = max(total / args.gpus, chain)
    tmp = Path(tempfile.mkdtemp(prefix="golf-bench-"))
    # logical GPUs; CPUs = GPUs so the CPU resource never binds before the GPU one does
    ray.init(address="local", num_cpus=args.gpus, num_gpus=args.gpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    # a warm store, as a sweep normally meets one (creating a fresh SQLite schema takes ~2 s)
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).create_experiment("bench-scheduling")
    tracker = Tracker(uri, "bench-scheduling", tmp / "journal")
    try:
        t0, t0_wall = time.perf_counter(), time.time()
        report = run_plan(plan, tracker, DriverOptions(runner=SleepRunner(mix_sleep), work_dir=str(tmp / "w")))
        makespan = time.perf_counter() - t0
    finally:
        tracker.close(timeout=120)
        ray.shutdown()
    n = len(plan.jobs)
    out = {"jobs": n, "gpus": args.gpus, "total_work_s": round(total, 2), "longest_chain_s": round(chain, 2),
           "bound_s": round(bound, 2), "makespan_s": round(makespan, 2), "ratio": round(makespan / bound, 3),
           "driver_overhead_ms_per_job": round(1000 * report.driver_busy_s / n, 1),
           "states": dict(report.counts())}
    if args.detail:
        out["detail"] = _detail(report, t0_wall)
    print(json.dumps(out, indent=1))
    return 0 if report.counts().get("finished") == n else 1


if __name__ == "__main__":
    sys.exit(main())
