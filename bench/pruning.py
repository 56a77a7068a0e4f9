"""How much GPU time pruning and stages save, and whether they still find the best configuration.

A CPU stand-in of a train_gpt.py in upstream's conventions (env vars in, `step:N/M
train_loss:X train_time:Tms` lines and a final score line out) whose loss falls with train time
toward a floor set by its env values, with per-step and per-seed noise; it sleeps each step, so
its train time is real. 27 configurations (3 x 3 x 3 env values) x 2 seeds, searched 5 times
(search seeds: the noise, and the order trials start in, differ):

- grid: every job to its cap;
- asha / median (rungs at 1/27, 1/9, 1/3 of the cap): golf's own pruners (orchestrator.run.prune.PruneHook, the hook the driver
  feeds) on the streamed lines, a pruned trial's processes killed (its seeds both);
- two-stage: screen every configuration on one seed at a third of the cap, promote the top 3
  (orchestrator.spec.spend.PromoteSpec), confirm them on both seeds at the full cap.

GPU-seconds = wall clock of every process (pruned ones included) x 1 "GPU"; `--slots` processes
run at once, as on that many GPUs. The scheduling here is a small process pool, not Ray and
MLflow (those add a fixed cost per job: bench/script_overhead.py); the pruning decisions are
golf's. Found = the method's best finished configuration (lowest seed-mean val_bpb over both
seeds) is the true best (lowest noise-free final loss).

    python bench/pruning.py [--slots 16] [--cap 3] [--searches 5] [--append]
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from golf_core.logparse import parse_line  # noqa: E402
from orchestrator.run.prune import PruneHook  # noqa: E402
from orchestrator.spec.spend import PromoteSpec, PruneSpec  # noqa: E402
from workers.script_runner import _event  # noqa: E402

LRS, WDS, DEPTHS = (0.01, 0.03, 0.1), (0.0, 0.05, 0.1), (4, 8, 12)
SEEDS = (1337, 42)

# the stand-in: stdlib only, so a process starts in milliseconds
STANDIN = r'''
import math, os, random, sys, time
lr, wd, depth = float(os.environ["LR"]), float(os.environ["WD"]), int(os.environ["DEPTH"])
seed, search = int(os.environ["SEED"]), int(os.environ["SEARCH"])
cap, step_s = float(os.environ["MAX_WALLCLOCK_SECONDS"]), float(os.environ["STEP_S"])
rng = random.Random(hash((seed, search, lr, wd, depth)) & 0xFFFFFFFF)
# seed noise: an offset shared by every config of a (seed, search) and one of its own
floor = float(os.environ["FLOOR"]) + random.Random(hash((seed, search)) & 0xFFFF).gauss(0, 0.004) + rng.gauss(0, 0.002)
tau = 0.5
total = int(cap / step_s)
t0 = time.perf_counter()
for step in range(1, total + 1):
    time.sleep(step_s)
    t = time.perf_counter() - t0
    loss = floor + 3.0 * math.exp(-t / tau) + rng.gauss(0, 0.01)
    print(f"step:{step}/{total} train_loss:{loss:.4f} train_time:{1000 * t:.0f}ms step_avg:{1000 * t / step:.2f}ms",
          flush=True)
    if t >= cap:
        break
final = floor + 3.0 * math.exp(-min(time.perf_counter() - t0, cap) / tau)  # the model as of its cap
print(f"final_standin_roundtrip val_loss:{final * 0.7:.6f} val_bpb:{final:.6f}", flush=True)
'''


def floor_of(lr: float, wd: float, depth: int) -> float:
    """The noise-free floor: best at lr 0.03, wd 0.05, depth 8 (the runner-up 0.0096 behind)."""
    return 1.0 + 50 * (lr - 0.03) ** 2 + 4 * (wd - 0.05) ** 2 + 0.0006 * (depth - 8) ** 2


CONFIGS = list(itertools.product(LRS, WDS, DEPTHS))


def true_final(cfg, cap: float) -> float:
    return floor_of(*cfg)  # every curve has the same time constant: the floor decides


def run_jobs(jobs: list[tuple], *, slots: int, cap_of, search: int, step_s: float, script: Path,
             hook: PruneHook | None = None) -> tuple[float, dict]:
    """Run (trial, cfg, seed) jobs, `slots` at a time; returns (GPU-seconds, {(trial, seed): val_bpb})."""
    todo = list(jobs)
    lines: queue.Queue = queue.Queue()
    running: dict = {}  # proc -> (trial, seed, t_start)
    results: dict = {}
    pruned: set = set()
    gpu_s = 0.0

    def pump(proc, trial, seed):
        for raw in proc.stdout:
            lines.put((proc, trial, seed, raw.rstrip("\n")))
        lines.put((proc, trial, seed, None))

    while todo or running:
        while todo and len(running) < slots:
            trial, cfg, seed = todo.pop(0)
            if trial in pruned:
                continue
            env = {**os.environ, "LR": str(cfg[0]), "WD": str(cfg[1]), "DEPTH": str(cfg[2]), "SEED": str(seed),
                   "SEARCH": str(search), "MAX_WALLCLOCK_SECONDS": str(cap_of(trial)), "STEP_S": str(step_s),
                   "FLOOR": repr(floor_of(*cfg))}
            p = subprocess.Popen([sys.executable, "-S", str(script)], env=env, stdout=subprocess.PIPE, text=True)
            running[p] = (trial, seed, time.perf_counter())
            threading.Thread(target=pump, args=(p, trial, seed), daemon=True).start()
        proc, trial, seed, line = lines.get()
        if line is None:  # that process ended (finished, or killed by a decision)
            proc.wait()
            gpu_s += time.perf_counter() - running.pop(proc)[2]
            continue
        ev = parse_line(line)
        if ev is not None and ev.kind == "score" and trial not in pruned:
            results[(trial, seed)] = ev.values["val_bpb"]
        e = _event(ev, 0.0) if ev is not None else None
        if hook is not None and e is not None and trial not in pruned:
            d = hook.report(trial, seed, e)
            if d is not None:
                pruned.add(trial)
                for p, (t, _s, _t0) in running.items():
                    if t == trial:
                        p.kill()
    return gpu_s, results


def best_of(results: dict, seeds=SEEDS) -> str | None:
    by: dict = {}
    for (trial, seed), v in results.items():
        by.setdefault(trial, {})[seed] = v
    full = {t: statistics.fmean(v.values()) for t, v in by.items() if set(v) == set(seeds)}
    return min(full, key=full.get) if full else None


def search(method: str, s: int, args, script: Path) -> tuple[float, str | None]:
    rng = random.Random(s)
    order = list(range(len(CONFIGS)))
    rng.shuffle(order)  # the order trials start in
    cfg = {f"c{i}": CONFIGS[i] for i in order}
    jobs = [(t, c, seed) for t, c in cfg.items() for seed in SEEDS]
    rungs = (args.cap / 27, args.cap / 9, args.cap / 3)
    common = dict(slots=args.slots, search=s, step_s=args.step_s, script=script)
    if method == "grid":
        g, res = run_jobs(jobs, cap_of=lambda t: args.cap, **common)
    elif method in ("asha", "median"):
        hook = PruneHook(PruneSpec(kind=method, rungs_s=rungs, eta=3, min_trials=3, margin=args.margin))
        g, res = run_jobs(jobs, cap_of=lambda t: args.cap, hook=hook, **common)
    else:  # two-stage: screen on one seed at a third of the cap, confirm the top 3 on both seeds
        g1, r1 = run_jobs([(t, c, SEEDS[0]) for t, c in cfg.items()], cap_of=lambda t: args.cap / 3, **common)
        k = PromoteSpec(top=3).count(len(cfg))
        top = sorted((v, t) for (t, _s), v in r1.items())[:k]
        g2, res = run_jobs([(t, cfg[t], seed) for _v, t in top for seed in SEEDS], cap_of=lambda t: args.cap,
                           **common)
        g = g1 + g2
    b = best_of(res)
    return g, (cfg[b] if b is not None else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slots", type=int, default=16, help="processes at once (stand-in GPUs)")
    ap.add_argument("--cap", type=float, default=4.0, help="train seconds per job (the wallclock cap)")
    ap.add_argument("--step-s", type=float, default=0.05)
    ap.add_argument("--searches", type=int, default=5)
    ap.add_argument("--margin", type=float, default=0.01, help="prune.margin: about the stand-in's step noise")
    ap.add_argument("--append", action="store_true", help="append the table to bench/RESULTS.md")
    args = ap.parse_args()
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"golf_bench_standin_{os.getpid()}.py"
    script.write_text(STANDIN)
    truth = min(CONFIGS, key=lambda c: true_final(c, args.cap))
    t0 = time.time()
    rows = {}
    try:
        for method in ("grid", "asha", "median", "two-stage"):
            runs = [search(method, s, args, script) for s in range(args.searches)]
            rows[method] = runs
            print(method, [(round(g, 1), c == truth) for g, c in runs], flush=True)
    finally:
        script.unlink(missing_ok=True)
    grid = statistics.fmean(g for g, _ in rows["grid"])
    table = ["| method | GPU-seconds (mean of searches) | vs full grid | true best found |", "|---|---:|---:|---:|"]
    for m, runs in rows.items():
        g = statistics.fmean(x for x, _ in runs)
        table.append(f"| {m} | {g:.1f} | {g / grid:.2f} | {sum(c == truth for _, c in runs)} of {len(runs)} |")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"\n## pruning, stages: GPU-seconds and the best configuration found\n\n"
            f"Seen {when} on {platform.machine()}, {os.cpu_count()} cores (CPU, no GPU), "
            f"`python bench/pruning.py --slots {args.slots} --cap {args.cap:g} --searches {args.searches} "
            f"--margin {args.margin:g}`: "
            f"{len(CONFIGS)} configurations x {len(SEEDS)} seeds of a stdlib stand-in script sleeping "
            f"{args.step_s:g} s per step up to {args.cap:g} s of train time; asha/median rungs at "
            f"{args.cap / 27:.2f}, {args.cap / 9:.2f} and {args.cap / 3:.2f} s (eta 3, min_trials 3, margin {args.margin:g}: the stand-in's per-step noise); two-stage = one seed at "
            f"a third of the cap, top 3 on both seeds at the full cap. GPU-seconds = every process's wall "
            f"(pruned ones included); a process pool, not Ray/MLflow. True best: {truth}. "
            f"Whole run {time.time() - t0:.0f} s.\n\n" + "\n".join(table) + "\n")
    print(text)
    if args.append:
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
