"""What golf costs a user's own train_gpt.py: the same script bare under torchrun and as a
one-job `golf run`, same machine, same run, alternating, N times each.

Two figures:
- the script's own time (its last `train_time:` plus the wall time of the torchrun process as
  golf's worker measured it), golf vs bare: streaming train.log line by line, parsing each
  line and shipping metrics must not slow the user's run (target ratio <= 1.02);
- golf's fixed start cost: `golf run` wall minus the bare torchrun wall (plan, Ray start,
  MLflow, artifact upload).

    python bench/script_overhead.py [--script PATH] [--reps 3] [--iterations 300] [--work DIR] [--results FILE]

The default script is golf's own test fixture in upstream's conventions
(tests/fixtures/scripts/train_gpt_tiny.py); the data are synthetic shards made in the work dir.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from golf_core.logparse import summarize  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "scripts" / "train_gpt_tiny.py"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1", **(extra or {}))
    return env


def bare(ws: Path, script: Path, env: dict[str, str], rep: int) -> dict:
    run = ws / f"bare{rep}"
    run.mkdir()
    shutil.copy(script, run / "train_gpt.py")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                        "train_gpt.py"], cwd=run, env=_env({**env, "RUN_ID": f"bare{rep}"}),
                       capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"bare run failed: {p.stderr.strip().splitlines()[-1:]}")
    s = summarize(p.stdout.splitlines())
    return {"wall_s": wall, "script_s": wall, "train_time_s": s.train_time_s, "val_bpb": s.val_bpb}


def golf(ws: Path, env: dict[str, str], rep: int) -> dict:
    from mlflow.tracking import MlflowClient

    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "run", "overhead.yaml", "--no-progress",
                        "--no-reuse"], cwd=ws, env=_env(), capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"golf run failed: {(p.stdout + p.stderr).strip().splitlines()[-3:]}")
    c = MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")
    exp = c.get_experiment_by_name("overhead")
    (run,) = c.search_runs([exp.experiment_id], "tags.`golf.kind` = 'script_train'",
                           order_by=["attributes.start_time DESC"], max_results=1)
    log = Path(c.download_artifacts(run.info.run_id, "train.log", tempfile.mkdtemp(dir=ws)))
    s = summarize(log.read_text().splitlines())
    res = Path(c.download_artifacts(run.info.run_id, "result.json", tempfile.mkdtemp(dir=ws)))
    script_s = json.loads(res.read_text()).get("wall_s") if res.is_file() else None
    return {"wall_s": wall, "script_s": script_s, "train_time_s": s.train_time_s, "val_bpb": s.val_bpb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--script", type=Path, default=FIXTURE)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--work", type=Path, default=None, help="work dir (default: a fresh temp dir, removed after)")
    ap.add_argument("--results", type=Path, default=None, help="append the markdown table to this file")
    args = ap.parse_args()
    ws = args.work or Path(tempfile.mkdtemp(prefix="golf-overhead-"))
    ws.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.script, ws / "train_gpt.py")
    subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "data", "synthetic", "--out", "data/syn",
                    "--train-tokens", "400000", "--val-tokens", "60000", "--seed", "0"],
                   cwd=ws, env=_env(), check=True, capture_output=True)
    knobs = {"ITERATIONS": str(args.iterations), "VAL_LOSS_EVERY": "100", "TRAIN_BATCH_TOKENS": "4096"}
    (ws / "overhead.yaml").write_text(
        "name: overhead\ndata: {path: data/syn}\ntrain:\n  script: train_gpt.py\n  seeds: [1]\n"
        f"  env: {json.dumps(knobs)}\n")
    tok = next((ws / "data" / "syn").glob("*.model"))
    env = {"DATA_PATH": str(ws / "data" / "syn"), "TOKENIZER_PATH": str(tok), "VOCAB_SIZE": "1024",
           "SEED": "1", **knobs}
    rows = {"bare": [], "golf": []}
    for rep in range(args.reps):  # alternate, so drift in machine load hits both sides alike
        rows["bare"].append(bare(ws, args.script, env, rep))
        rows["golf"].append(golf(ws, env, rep))
        print(f"rep {rep}: bare {rows['bare'][-1]}  golf {rows['golf'][-1]}", flush=True)

    def med(side, key):
        vals = [r[key] for r in rows[side] if r[key] is not None]
        return statistics.median(vals) if vals else float("nan")

    ratio_train = med("golf", "train_time_s") / med("bare", "train_time_s")
    ratio_script = med("golf", "script_s") / med("bare", "script_s")
    start = med("golf", "wall_s") - med("bare", "wall_s")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    dev = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    md = (f"\n## script jobs: golf's overhead on a user's train_gpt.py\n\n"
          f"Seen {when} on {dev} (CPU, no GPU), `bench/script_overhead.py --reps {args.reps} "
          f"--iterations {args.iterations}` (the tiny fixture script, 1 rank), medians of {args.reps} "
          f"alternating runs:\n\n"
          f"| | bare torchrun | one-job `golf run` | ratio |\n|---|---|---|---|\n"
          f"| script's own train_time | {med('bare', 'train_time_s'):.2f} s | {med('golf', 'train_time_s'):.2f} s "
          f"| {ratio_train:.3f} |\n"
          f"| torchrun process wall | {med('bare', 'script_s'):.2f} s | {med('golf', 'script_s'):.2f} s "
          f"| {ratio_script:.3f} |\n"
          f"| whole command wall | {med('bare', 'wall_s'):.2f} s | {med('golf', 'wall_s'):.2f} s | "
          f"golf's fixed start cost {start:.1f} s |\n"
          f"\nval_bpb bare {rows['bare'][0]['val_bpb']} vs golf {rows['golf'][0]['val_bpb']} (same seed, same env).\n")
    print(md)
    if args.results:
        with open(args.results, "a") as f:
            f.write(md)
    if args.work is None:
        shutil.rmtree(ws, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
