"""Sweep speed end to end: 1,000 mix configs of one table key, a rerun in a crowded store,
`golf plan` of a 50,000-job spec (issue 21).

    python bench/sweep_speed.py --workspace DIR [--configs 1000] [--unrelated 5000] [--plan-jobs 50000]
                                [--tracking-runs 1000] [--skip sweep,rerun,plan,tracking]

Phases (all on this machine, one process each where memory is measured):
- sweep: a real `golf run`-style sweep (driver on a local Ray, Tracker on a SQLite MLflow in
  DIR): 1 tiny train, 1 eval, N normalized mix configs sharing one table key. Reported from the
  driver's own events: eval end -> last mix result known, -> run_plan returned (results table
  printable), -> Tracker closed (every child run in MLflow); child runs / s into MLflow; the
  driver's own busy time per job. The anchor: `mix_bpb` of the same N configs in-process over
  the eval's token stats (plus one n-gram pass, timed apart).
- rerun: N_unrelated FINISHED golf-like runs (tags, params, metrics) are written into another
  experiment of the same store (straight through MLflow's SQL models, in one session: how they
  got there does not matter to the lookup), then the same spec is run again as `golf run` in a
  subprocess: its wall time and peak RSS (every job is FINISHED, nothing runs).
- tracking: the child runs of a --tracking-runs-config sweep (the plan's real mix jobs: params,
  tags; each logged as the driver records a mix result: one batched op of its metrics, its
  8-point chunk curve and verdict tags, then FINISHED) through a Tracker into a fresh SQLite
  store, call by call (the writer's bulk path off: MLflow's create_run, log_batch,
  set_terminated per run) and in bulk (orchestrator/tracking/bulk.py), side by side in this
  process, twice each, alternating: runs / s from the first start_job to close() delivered.
- plan: CPU seconds of building the plan of a spec with ~plan-jobs mix jobs (in-process, after
  imports), and of `golf plan SPEC` as a subprocess (imports included).
Target figures (issue 21): results <= 3 s + 2x compute; >= 50 runs/s into MLflow; rerun <= 10 s
and <= 600 MB; plan <= 3 s CPU; driver <= 3 ms per job.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXP = "bench_sweep"


def spec_text(n_configs: int, name: str = EXP, max_jobs: int = 1100) -> str:
    """One tiny train, one eval (smoke's), n normalized configs: alpha_base x alpha_range."""
    n_range = 25 if n_configs >= 25 else 1
    n_base = max(1, n_configs // n_range)
    bases = [round(0.001 + 0.3 * i / n_base, 6) for i in range(n_base)]
    ranges = [round(0.02 + 0.6 * j / n_range, 6) for j in range(n_range)]
    return f"""name: {name}
data:
  path: data/bench
  vocab_size: 1024
  synthetic_train_tokens: 300000
  synthetic_val_tokens: 120000
  synthetic_seed: 0
train:
  preset: tiny
  seeds: [1337]
  gpus_per_job: 1
eval:
  seq_len: 128
  stride: 64
  batch_seqs: 16
  chunk_tokens: 16384
  max_eval_seconds: 600
  ttt:
    enabled: false
mixer:
  modes: [normalized]
  orders: [2, 3, 4, 5]
  buckets: 262144
  min_count: 2
  alpha_base: {json.dumps(bases)}
  alpha_range: {json.dumps(ranges)}
  entropy_slope: 2.0
  entropy_center: 4.0
search:
  kind: grid
retries: 1
limits:
  max_jobs: {max_jobs}
"""


def plan_spec_text(jobs: int) -> str:
    """~jobs mix jobs: alpha_base x alpha_range x entropy_slope (1 train, 1 eval)."""
    n_b, n_r = 100, 50
    n_s = max(1, jobs // (n_b * n_r))
    bases = [round(0.001 + 0.3 * i / n_b, 6) for i in range(n_b)]
    ranges = [round(0.02 + 0.6 * j / n_r, 6) for j in range(n_r)]
    slopes = [round(0.5 + 0.25 * k, 4) for k in range(n_s)]
    text = spec_text(0, name="bench_plan", max_jobs=min(n_b * n_r * n_s + 2, 1_000_000))
    text = text.replace("  alpha_base: [0.001]\n", f"  alpha_base: {json.dumps(bases)}\n")
    text = text.replace("  alpha_range: [0.02]\n", f"  alpha_range: {json.dumps(ranges)}\n")
    return text.replace("  entropy_slope: 2.0\n", f"  entropy_slope: {json.dumps(slopes)}\n")


def load() -> str:
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


# ---------------------------------------------------------------- sweep
def run_sweep(ws: Path, n_configs: int) -> dict:
    import numpy as np
    import ray

    from orchestrator.cli.run import results_table
    from orchestrator.plan.build import load_plan
    from orchestrator.run.driver import run_plan
    from orchestrator.run.raycluster import connect
    from orchestrator.run.start import prepare_sweep
    from orchestrator.run.types import DriverOptions

    spec = ws / "sweep.yaml"
    spec.write_text(spec_text(n_configs))
    plan = load_plan(spec, workspace=ws)
    say = lambda msg: print(f"golf: {msg}", flush=True)  # noqa: E731
    run = prepare_sweep(plan, ws, tracking_uri=f"sqlite:///{ws / 'mlflow.db'}", work_dir=ws / ".golf", say=say)
    marks: dict[str, float] = {}
    mix_done = [0]
    n_mix = sum(1 for j in plan.jobs if j.kind == "mix")

    def on_event(what, out):
        if out.job.kind == "eval" and out.state in ("finished", "reused"):
            marks.setdefault("eval_end", time.perf_counter())
        if out.job.kind == "mix" and out.state in ("finished", "failed", "reused"):
            mix_done[0] += 1
            if mix_done[0] == n_mix:
                marks["mix_end"] = time.perf_counter()

    def show(report) -> None:  # what `golf run` prints (to /dev/null here)
        from rich.console import Console

        with open(os.devnull, "w") as null:
            Console(file=null, width=200).print(results_table(report))
        marks.setdefault("printed", time.perf_counter())

    # `golf run` shows its table from on_results where the driver has it (issue 21), else after run_plan
    extra = {"on_results": show} if "on_results" in DriverOptions.__dataclass_fields__ else {}
    opts = DriverOptions(data_dir=str(run.data_dir), work_dir=str(run.work / "jobs"),
                         tokenizer_path=str(run.tokenizer) if run.tokenizer else None,
                         connect=lambda: connect(None, num_cpus=2, log_to_driver=True, state_dir=run.work),
                         say=say, on_event=on_event, **extra)
    try:
        report = run_plan(plan, run.tracker, opts)
        marks["returned"] = time.perf_counter()
        show(report)
    finally:
        ok = run.close(say, timeout=600)
        marks["closed"] = time.perf_counter()
        if ray.is_initialized():
            ray.shutdown()
    c = report.counts()
    # children in MLflow, counted in the store itself
    from orchestrator.tracking.client import make_client, search_all

    client = make_client(run.uri)
    exp = client.get_experiment_by_name(plan.sweep_name)
    runs = search_all(client, exp.experiment_id, "attributes.status = 'FINISHED' and tags.`golf.kind` = 'mix'")
    ev = marks.get("eval_end", marks["returned"])
    mix_end = marks.get("mix_end", marks["returned"])
    out = {"counts": c, "delivered": ok, "mix_runs_in_mlflow": len(runs),
           "results_known_s": mix_end - ev, "results_printed_s": marks["printed"] - ev,
           "run_plan_returned_s": marks["returned"] - ev,
           "all_in_mlflow_s": marks["closed"] - ev,
           "runs_per_s": len(runs) / max(marks["closed"] - ev, 1e-9),
           "driver_busy_s": report.driver_busy_s,
           "driver_ms_per_job": 1e3 * report.driver_busy_s / max(1, len(plan.jobs)),
           # its thread's CPU: the busy time less waits for the GIL (the tracker's writer thread)
           # and for a core (two workers and Ray beside it on a 2-core machine)
           "driver_cpu_ms_per_job": 1e3 * getattr(report, "driver_cpu_s", float("nan")) / max(1, len(plan.jobs)),
           "val_bpb": {o.job.identity: (o.result or {}).get("val_bpb") for o in report.outcomes.values()
                       if o.job.kind == "mix"}}
    # the anchor: the same configs in-process, over the eval's stats
    from golf_core.eval.mix import load_stats, mix_bpb
    from golf_core.data.shards import load_split
    from golf_core.eval.ngram import ngram_pass

    ev_out = next(o for o in report.outcomes.values() if o.job.kind == "eval")
    stats_paths = list((ws / ".golf").rglob("token_stats.npz"))
    stats = load_stats(stats_paths[0])
    cfgs = [j.mixer for j in plan.jobs if j.kind == "mix"]
    val = load_split(run.data_dir, "val", 1024).numpy().astype(np.int64)[: int(stats["pos"].max()) + 1]
    t0 = time.perf_counter()
    ng = ngram_pass(val, stats["pos"], stats["chunk"], cfgs[0], plan_chunk(plan), vocab_size=1024,
                    n_ctx=stats.get("n_ctx"))
    out["ngram_pass_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    anchor = mix_bpb(stats, ng, cfgs)
    out["compute_s"] = time.perf_counter() - t0
    mix_jobs = [j for j in plan.jobs if j.kind == "mix"]
    diffs = [abs(a - out["val_bpb"][j.identity]) for a, j in zip(anchor, mix_jobs)
             if out["val_bpb"][j.identity] is not None]
    out["max_abs_diff_vs_anchor"] = max(diffs) if diffs else None
    out["eval_identity"] = ev_out.job.identity
    return out


def plan_chunk(plan) -> int:
    return int(next(j for j in plan.jobs if j.kind == "eval").eval.chunk_tokens)


# ---------------------------------------------------------------- rerun
def add_unrelated(uri: str, n: int, seed: int = 0) -> float:
    """n FINISHED golf-like runs in experiment 'unrelated', in one SQL session."""
    import random

    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    t0 = time.perf_counter()
    root = Path(uri[len("sqlite:///"):]).parent / "mlruns"
    store = SqlAlchemyStore(uri, str(root))
    try:
        exp_id = store.create_experiment(f"unrelated-{uuid.uuid4().hex[:6]}")
    except Exception:  # noqa: BLE001
        raise
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    with store.ManagedSessionMaker() as s:
        objs = []
        for i in range(n):
            rid = uuid.uuid4().hex
            objs.append(SqlRun(run_uuid=rid, name=f"mix-{i}", source_type="LOCAL", source_name="", entry_point_name="",
                               user_id="bench", status="FINISHED", start_time=now + i, end_time=now + i + 5,
                               source_version="", lifecycle_stage="active",
                               artifact_uri=f"{root}/{exp_id}/{rid}/artifacts", experiment_id=int(exp_id)))
            tags = {"golf.identity": uuid.uuid4().hex + uuid.uuid4().hex, "golf.kind": "mix", "golf.attempt": "1",
                    "golf.valid": "true", "golf.compliant": "true", "golf.sweep": "x" * 64,
                    "golf.job": f"seed1337/eval/mix-{i}", "golf.code_version": "bench", "golf.run_key": rid,
                    "mlflow.runName": f"mix-{i}", "mlflow.user": "bench"}
            objs += [SqlTag(key=k, value=v, run_uuid=rid) for k, v in tags.items()]
            objs += [SqlParam(key=f"mixer.p{k}", value=str(rng.random()), run_uuid=rid) for k in range(20)]
            for k in ("val_bpb", "val_loss", "tokens_scored", "mix_time_s", "ngram_passes", "eval_time_s"):
                v = rng.random()
                objs.append(SqlMetric(key=k, value=v, timestamp=now, step=0, is_nan=False, run_uuid=rid))
                objs.append(SqlLatestMetric(key=k, value=v, timestamp=now, step=0, is_nan=False, run_uuid=rid))
            for step in range(8):  # a per-chunk curve, as mix runs log
                objs.append(SqlMetric(key="chunk_val_bpb", value=rng.random(), timestamp=now, step=step,
                                      is_nan=False, run_uuid=rid))
            objs.append(SqlLatestMetric(key="chunk_val_bpb", value=0.5, timestamp=now, step=7, is_nan=False,
                                        run_uuid=rid))
        s.add_all(objs)
    store.engine.dispose()
    return time.perf_counter() - t0


# `golf` as `python -m orchestrator.cli.main`, writing its own peak RSS (VmHWM of its address space)
# to argv[1] at exit
_HWM_MAIN = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def hwm():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w") as f:
        f.write(kb)
atexit.register(hwm)
sys.argv[0] = "golf"
runpy.run_module("orchestrator.cli.main", run_name="__main__", alter_sys=True)
"""


def golf_cmd(ws: Path, *args: str) -> dict:
    """`golf ARGS` in ws as a subprocess: wall, CPU and peak RSS of that child alone.

    The peak is the child's own VmHWM, read by itself at exit. Neither RUSAGE_CHILDREN (the
    largest child ever waited for: the sweep phase's Ray workers) nor wait4's ru_maxrss will
    do: Linux starts a forked child's maxrss at its parent's high-water mark and keeps it
    through exec, so both reported this >1 GB bench process's own peak (bench/RESULTS.md, part 4)."""
    hwm = ws / f".hwm-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", _HWM_MAIN, str(hwm), *args], cwd=ws, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rss_mb = int(hwm.read_text()) / 1024 if hwm.exists() else float("nan")
    hwm.unlink(missing_ok=True)
    return {"rc": os.waitstatus_to_exitcode(status), "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": rss_mb, "tail": out[-1500:]}


# ---------------------------------------------------------------- tracking
def run_tracking(ws: Path, n_runs: int, rounds: int = 2) -> dict:
    from orchestrator.plan.build import load_plan
    from orchestrator.tracking import Tracker

    spec = ws / "tracking.yaml"
    spec.write_text(spec_text(n_runs, name="bench_tracking"))
    plan = load_plan(spec, workspace=ws)
    jobs = [j for j in plan.jobs if j.kind == "mix"][:n_runs]
    out: dict = {"runs": len(jobs)}
    for i in range(rounds):
        for mode in ("calls", "bulk"):
            d = ws / f"tracking-{mode}-{i}"
            d.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{d / 'mlflow.db'}"
            tr = Tracker(uri, plan.sweep_name, d / "journal")
            tr._writer.bulk = mode == "bulk"
            tr.start_sweep(plan.sweep_identity)
            tr.flush(600)  # the store and experiment exist: what follows is the children
            t0 = time.perf_counter()
            for k, job in enumerate(jobs):
                h = tr.start_job(job)
                with h.batched():  # what orchestrator.run.track records for a mix result
                    h.log_metrics({"val_bpb": 1.2 + k * 1e-6, "val_loss": 2.9, "tokens_scored": 119936.0,
                                   "mix_time_s": 0.007, "ngram_passes": 0.0, "eval_time_s": 0.01})
                    for step in range(8):
                        h.log_metrics({"chunk_val_bpb": 1.2 + step * 1e-3}, step=step)
                    h.set_tags({"golf.compliant": "true", "golf.audit_compliant": "true"})
                    h.set_validity(True)
                h.finish()
            submitted = time.perf_counter() - t0
            ok = tr.close(timeout=3600)
            wall = time.perf_counter() - t0
            calls = dict(tr.stats["calls"])
            out.setdefault(mode, []).append({"submit_s": submitted, "delivered_s": wall, "ok": ok,
                                              "runs_per_s": len(jobs) / wall, "calls": calls, "load": load()})
            print(f"tracking {mode} round {i + 1}: {len(jobs)} runs delivered in {wall:.2f} s "
                  f"({len(jobs) / wall:.1f} runs/s; submitted in {submitted:.2f} s); load {load()}", flush=True)
    return out


# ---------------------------------------------------------------- plan
def run_plan_bench(ws: Path, jobs: int) -> dict:
    from orchestrator.plan.build import load_plan

    spec = ws / "plan50k.yaml"
    spec.write_text(plan_spec_text(jobs))
    load_plan(spec, workspace=ws)  # warm: imports, code version
    c0, t0 = time.process_time(), time.perf_counter()
    plan = load_plan(spec, workspace=ws)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    sub = golf_cmd(ws, "plan", str(spec), "--tracking-uri", f"sqlite:///{ws / 'mlflow.db'}")
    return {"jobs": len(plan.jobs), "build_cpu_s": cpu, "build_wall_s": wall, "golf_plan_wall_s": sub["wall_s"],
            "golf_plan_cpu_s": sub["cpu_s"], "golf_plan_rc": sub["rc"],
            "golf_plan_tail": sub["tail"] if sub["rc"] else ""}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", required=True, help="an empty or earlier bench dir (store, data, work)")
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--unrelated", type=int, default=5000)
    ap.add_argument("--plan-jobs", type=int, default=50000)
    ap.add_argument("--tracking-runs", type=int, default=1000)
    ap.add_argument("--skip", default="", help="comma list of phases to skip: sweep,rerun,plan,tracking")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    ws = Path(args.workspace).resolve()
    ws.mkdir(parents=True, exist_ok=True)
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": load(),
                 "cpus": os.cpu_count()}
    if "sweep" not in skip:
        res["sweep"] = run_sweep(ws, args.configs)
        s = res["sweep"]
        print(f"sweep: {s['counts']}; eval end -> results known {s['results_known_s']:.2f} s, printed "
              f"{s['results_printed_s']:.2f} s, all {s['mix_runs_in_mlflow']} mix runs in MLflow "
              f"{s['all_in_mlflow_s']:.2f} s ({s['runs_per_s']:.1f} runs/s); driver {s['driver_ms_per_job']:.2f} ms/job "
              f"({s['driver_cpu_ms_per_job']:.2f} ms of its thread's CPU); "
              f"compute anchor mix_bpb {s['compute_s']:.3f} s (+ n-gram pass {s['ngram_pass_s']:.2f} s); "
              f"max |dbpb| vs anchor {s['max_abs_diff_vs_anchor']}; load {load()}", flush=True)
    if "rerun" not in skip:
        uri = f"sqlite:///{ws / 'mlflow.db'}"
        add_s = add_unrelated(uri, args.unrelated) if args.unrelated else 0.0
        r = golf_cmd(ws, "run", "sweep.yaml", "--tracking-uri", uri, "--work-dir", ".golf", "--no-progress")
        res["rerun"] = {"unrelated_added": args.unrelated, "add_s": add_s, **r}
        print(f"rerun with {args.unrelated} unrelated runs added: rc {r['rc']} wall {r['wall_s']:.2f} s, "
              f"cpu {r['cpu_s']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB; load {load()}", flush=True)
        if r["rc"]:
            print(r["tail"])
    if "tracking" not in skip:
        res["tracking"] = run_tracking(ws, args.tracking_runs)
    if "plan" not in skip:
        res["plan"] = p = run_plan_bench(ws, args.plan_jobs)
        print(f"plan: {p['jobs']} jobs, build {p['build_cpu_s']:.2f} s CPU ({p['build_wall_s']:.2f} s wall); "
              f"`golf plan` {p['golf_plan_cpu_s']:.2f} s CPU, {p['golf_plan_wall_s']:.2f} s wall (rc {p['golf_plan_rc']}); "
              f"load {load()}", flush=True)
        if p["golf_plan_rc"]:
            print(p["golf_plan_tail"])
    res["load_end"] = load()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
