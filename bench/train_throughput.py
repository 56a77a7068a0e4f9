"""Training throughput: our loop vs upstream's scripts, same GPU, same data, same run.

Pairs (each side run as its own process, one after the other, on the same synthetic shards):
- `baseline` preset  vs upstream train_gpt.py            at 524,288 tokens/step
- `pr779` preset     vs PR #779's train_gpt.py (c58742a3e) at 786,432 tokens/step
Both sides get the same hyperparameters (upstream's via its environment variables, derived from
our preset), `--steps` iterations after 20 compile warm-up steps, and a constant LR
(WARMDOWN_ITERS=0): the wallclock-driven warmdown depends on the measured speed, so with it the
two sides would not follow the same LR and their losses would not compare. Reported per side:
steady ms/step (train time from step 10 to the last step), the loss at `--loss-step`, peak memory.
Upstream processes are stopped once training ends (their final evaluations are not timed here).

Written for one H100 (it says so and exits 2 when there is no CUDA GPU). The upstream scripts
are copied at run time into the git-ignored bench/_upstream/, never committed. By default they
come from $GOLF_REFERENCE_DIR/parameter-golf/ (train_gpt.py, pr779/train_gpt.py):

    GOLF_REFERENCE_DIR=path/to/reference python bench/train_throughput.py
    python bench/train_throughput.py --upstream path/to/parameter-golf   # a git clone (git show)
    python bench/train_throughput.py --upstream path/to/train_gpt.py --pr779-script path/to/pr779.py
    python bench/train_throughput.py --upstream ... --dry-run     # print the plan, run nothing

Output: OUT/train_throughput.json (all numbers, logs' tails) and a row per pair appended to
OUT/train_throughput.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PR779_REF = "c58742a3e"
PR779_PATH = "records/track_10min_16mb/2026-03-25_BackoffNgramMixer_DriftFreeTTT_0.6683/train_gpt.py"
PAIRS = ("baseline", "pr779")
STEP_RE = re.compile(r"^step:(\d+)/(\d+) train_loss:([-\d.naif]+) train_time:(\d+)ms step_avg:([\d.]+)ms")
PEAK_RE = re.compile(r"peak memory allocated: (\d+) MiB")


REFERENCE_ENV = "GOLF_REFERENCE_DIR"  # the folder holding parameter-golf/ (tests/fixtures/reference.py)


class BenchError(ValueError):
    pass


def reference_file(*parts: str) -> Path | None:
    """$GOLF_REFERENCE_DIR/parameter-golf/<parts> when the variable is set and the file exists."""
    root = os.environ.get(REFERENCE_ENV)
    if not root:
        return None
    path = Path(root).expanduser().joinpath("parameter-golf", *parts)
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- upstream scripts
def fetch_script(source: Path, ref: str, path_in_repo: str, dest: Path) -> Path:
    """Copy a script into `dest`: `source` is the file itself, or a git dir read with `git show`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        shutil.copyfile(source, dest)
        return dest
    if not source.is_dir():
        raise BenchError(f"{source}: neither a script file nor a git repository")
    proc = subprocess.run(["git", f"--git-dir={_git_dir(source)}", "show", f"{ref}:{path_in_repo}"],
                          capture_output=True, check=False)
    if proc.returncode:
        raise BenchError(f"{source}: git show {ref}:{path_in_repo} failed: {proc.stderr.decode().strip()[:200]}")
    dest.write_bytes(proc.stdout)
    return dest


def _git_dir(source: Path) -> Path:
    return source / ".git" if (source / ".git").exists() else source


# ----------------------------------------------------------------------------- configs
def preset_cfg(name: str, steps: int, extra_sets: list[str]):
    from golf_core.presets import load_preset

    return load_preset(name, bench_sets(steps) + list(extra_sets))


def bench_sets(steps: int) -> list[str]:
    return [f"train.iterations={steps}", "train.warmdown_iters=0", "train.warmup_steps=20",
            "train.max_wallclock_seconds=600", "train.val_loss_every=0", "train.train_log_every=10",
            "train.device=cuda"]


def upstream_env(cfg, pair: str) -> dict[str, str]:
    """Our RunConfig as the upstream script's environment variables (same run, both sides)."""
    m, t = cfg.model, cfg.train
    env = {
        "SEED": t.seed, "ITERATIONS": t.iterations, "WARMDOWN_ITERS": t.warmdown_iters,
        "WARMUP_STEPS": t.warmup_steps, "TRAIN_BATCH_TOKENS": t.train_batch_tokens,
        "TRAIN_SEQ_LEN": t.train_seq_len, "MAX_WALLCLOCK_SECONDS": t.max_wallclock_seconds,
        "VAL_LOSS_EVERY": 0, "TRAIN_LOG_EVERY": t.train_log_every, "VOCAB_SIZE": m.vocab_size,
        "NUM_LAYERS": m.num_layers, "MODEL_DIM": m.model_dim, "NUM_HEADS": m.num_heads,
        "NUM_KV_HEADS": m.num_kv_heads, "TIE_EMBEDDINGS": int(m.tie_embeddings),
        "ROPE_BASE": m.rope_base, "LOGIT_SOFTCAP": m.logit_softcap, "QK_GAIN_INIT": m.qk_gain_init,
        "TIED_EMBED_INIT_STD": m.tied_embed_init_std, "EMBED_LR": t.embed_lr, "HEAD_LR": t.head_lr,
        "TIED_EMBED_LR": t.tied_embed_lr, "MATRIX_LR": t.matrix_lr, "SCALAR_LR": t.scalar_lr,
        "MUON_MOMENTUM": t.muon_momentum, "MUON_BACKEND_STEPS": t.muon_backend_steps,
        "MUON_MOMENTUM_WARMUP_START": t.muon_momentum_warmup_start,
        "MUON_MOMENTUM_WARMUP_STEPS": t.muon_momentum_warmup_steps, "BETA1": t.beta1, "BETA2": t.beta2,
        "ADAM_EPS": t.adam_eps, "GRAD_CLIP_NORM": t.grad_clip_norm,
    }
    if pair == "baseline":
        if m.mlp_mult != int(m.mlp_mult):
            raise BenchError(f"upstream baseline needs an integer mlp_mult (got {m.mlp_mult})")
        env["MLP_MULT"] = int(m.mlp_mult)
    else:  # PR #779's extra knobs
        env.update({
            "MLP_MULT": m.mlp_mult, "XSA_LAST_N": m.xsa_last_n, "BIGRAM_VOCAB_SIZE": m.bigram_vocab_size,
            "BIGRAM_DIM": m.bigram_dim, "ROPE_DIMS": m.rope_dims, "LN_SCALE": int(m.ln_scale),
            "DTG_ENABLED": int(m.gated_attention), "VE_ENABLED": int(m.value_embed), "VE_DIM": m.ve_dim,
            "VE_LAYERS": ",".join(str(i) for i in m.ve_layers), "MUON_WD": t.muon_wd, "ADAM_WD": t.adam_wd,
            "EMA_DECAY": t.ema_decay, "SWA_ENABLED": int(t.swa_every > 0), "SWA_EVERY": max(t.swa_every, 1),
            "LATE_QAT_THRESHOLD": t.late_qat_threshold, "CROWN_Q_LAMBDA": t.crownq_lambda,
            "EVAL_SEQ_LEN": cfg.eval.seq_len, "EVAL_STRIDE": cfg.eval.stride,
            "INT6_LAST_N": cfg.quant.int6_last_n, "PRUNE_PCT": cfg.quant.prune_frac,
        })
    return {k: str(v) for k, v in env.items()}


# ----------------------------------------------------------------------------- runs
def parse_log(lines: list[str]) -> dict:
    steps: dict[int, tuple[float, float]] = {}  # step -> (train_loss, train_time_ms)
    peak = None
    for line in lines:
        mt = STEP_RE.match(line.strip())
        if mt:
            steps[int(mt.group(1))] = (float(mt.group(3)), float(mt.group(4)))
        mp = PEAK_RE.search(line)
        if mp:
            peak = int(mp.group(1)) * 2**20
    return {"steps": steps, "peak_mem_bytes": peak}


def summarize(parsed: dict, loss_step: int, from_step: int = 10) -> dict:
    steps = parsed["steps"]
    if not steps:
        return {"ms_per_step": None, "loss_at_step": None, "last_step": 0}
    last = max(steps)
    ms = None
    if from_step in steps and last > from_step:
        ms = (steps[last][1] - steps[from_step][1]) / (last - from_step)
    return {"ms_per_step": ms, "step_avg_ms_at_end": steps[last][1] / last, "last_step": last,
            "loss_at_step": steps[loss_step][0] if loss_step in steps else None,
            "final_loss": steps[last][0], "peak_mem_bytes": parsed["peak_mem_bytes"]}


def run_process(cmd: list[str], env: dict[str, str], cwd: Path, timeout_s: float, stop_on: str | None) -> dict:
    """Run and capture stdout; with `stop_on`, terminate the process once a line contains it."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    stopped = False
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            print(f"  | {line.rstrip()}", flush=True)
            if stop_on and stop_on in line:
                stopped = True
                proc.terminate()
                break
            if time.perf_counter() - t0 > timeout_s:
                proc.terminate()
                lines.append(f"[bench] timeout after {timeout_s:.0f}s")
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"returncode": proc.returncode, "stopped_after_training": stopped, "lines": lines,
            "wall_s": time.perf_counter() - t0}


def plan(args) -> list[dict]:
    data = args.data or args.out / "data"
    runs = []
    for pair in args.pairs:
        cfg = preset_cfg(pair, args.steps, args.set)
        ours_out = args.out / f"ours_{pair}"
        runs.append({
            "pair": pair, "side": "ours", "tokens_per_step": cfg.train.train_batch_tokens,
            "cmd": [sys.executable, "-m", "golf_core.train", "--preset", pair,
                    *sum((["--set", s] for s in bench_sets(args.steps) + list(args.set)), []),
                    "--data", str(data), "--out", str(ours_out)],
            "env": {}, "cwd": str(REPO), "stop_on": None, "result_json": str(ours_out / "result.json"),
        })
        script = args.work / f"train_gpt_{pair}.py"
        env = upstream_env(cfg, pair)
        env.update(DATA_PATH=str(data), TOKENIZER_PATH=str(data / "synthetic_1024_bpe.model"),
                   RUN_ID=f"bench_{pair}")
        runs.append({
            "pair": pair, "side": "upstream", "tokens_per_step": cfg.train.train_batch_tokens,
            "cmd": [sys.executable, str(script)], "env": env, "cwd": str(args.out / f"upstream_{pair}"),
            "stop_on": "peak memory allocated", "script": str(script),
        })
    return runs


def markdown_rows(report: dict) -> list[str]:
    def f(v, spec):
        return "n/a" if v is None else format(v, spec)

    rows = []
    for pair, r in report["pairs"].items():
        o, u = r["ours"], r["upstream"]
        rows.append(f"| {report['date']} | {report['gpu']} | torch {report['torch']} | {pair} | "
                    f"{r['tokens_per_step']:,} | {f(o.get('ms_per_step'), '.1f')} | {f(u.get('ms_per_step'), '.1f')} | "
                    f"{f(r.get('ratio'), '.3f')} | {f(o.get('loss_at_step'), '.4f')} | {f(u.get('loss_at_step'), '.4f')} |")
    return rows


MD_HEADER = ("| date | GPU | torch | pair | tokens/step | ours ms/step | upstream ms/step | ours/upstream | "
             "ours loss@{s} | upstream loss@{s} |\n|---|---|---|---|---|---|---|---|---|---|")


def parse_args(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", type=Path, default=None,
                   help="upstream train_gpt.py, or the openai/parameter-golf git repo (both scripts via git show); "
                        f"default: ${REFERENCE_ENV}/parameter-golf/train_gpt.py")
    p.add_argument("--upstream-ref", default="HEAD", help="ref of train_gpt.py when --upstream is a repo")
    p.add_argument("--pr779-script", type=Path, default=None,
                   help=f"PR #779's train_gpt.py (default: {PR779_REF}:{PR779_PATH} from the --upstream repo, "
                        f"else ${REFERENCE_ENV}/parameter-golf/pr779/train_gpt.py)")
    p.add_argument("--pairs", nargs="+", choices=PAIRS, default=list(PAIRS))
    p.add_argument("--steps", type=int, default=150, help="training steps per run (after 20 warm-up steps)")
    p.add_argument("--loss-step", type=int, default=100)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="extra override applied to our side and mirrored into upstream's env")
    p.add_argument("--data", type=Path, default=None, help="existing data dir (default: make synthetic shards)")
    p.add_argument("--train-tokens", type=int, default=16_000_000)
    p.add_argument("--val-tokens", type=int, default=262_144)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "_out" / "train_throughput")
    p.add_argument("--work", type=Path, default=REPO / "bench" / "_upstream", help="where upstream scripts are copied")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    p.add_argument("--dry-run", action="store_true", help="resolve scripts and print the plan; run nothing")
    args = p.parse_args(argv)
    if args.steps <= 10 or args.loss_step > args.steps or args.loss_step % 10:
        p.error("need --steps > 10 and --loss-step <= --steps, a multiple of 10 (logged steps)")
    if args.upstream is None:
        args.upstream = reference_file("train_gpt.py")
        if args.upstream is None:
            p.error(f"--upstream not given and ${REFERENCE_ENV}/parameter-golf/train_gpt.py not found "
                    f"({REFERENCE_ENV}={os.environ.get(REFERENCE_ENV, '(unset)')})")
    if "pr779" in args.pairs and args.pr779_script is None and not args.upstream.is_dir():
        args.pr779_script = reference_file("pr779", "train_gpt.py")
    if "pr779" in args.pairs and args.pr779_script is None and not args.upstream.is_dir():
        p.error(f"pr779 needs --pr779-script, --upstream pointing at the git repository, or "
                f"${REFERENCE_ENV}/parameter-golf/pr779/train_gpt.py")
    return args


def prepare_scripts(args) -> None:
    if "baseline" in args.pairs:
        fetch_script(args.upstream, args.upstream_ref, "train_gpt.py", args.work / "train_gpt_baseline.py")
    if "pr779" in args.pairs:
        src = args.pr779_script or args.upstream
        fetch_script(src, PR779_REF, PR779_PATH, args.work / "train_gpt_pr779.py")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        prepare_scripts(args)
        runs = plan(args)
    except ValueError as e:  # BenchError, ConfigError
        print(f"train_throughput: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps({"dry_run": True, "runs": runs}, indent=2))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("train_throughput: needs a CUDA GPU (written for one H100); nothing measured", file=sys.stderr)
        return 2
    data = args.data or args.out / "data"
    if args.data is None and not (data / "synthetic_1024_bpe.model").exists():
        from golf_core.data.synthetic import make_synthetic

        print(f"making synthetic data in {data} ({args.train_tokens:,} train tokens)", flush=True)
        make_synthetic(data, args.train_tokens, args.val_tokens, seed=1234, shard_tokens=4_000_000)
    report = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"), "gpu": torch.cuda.get_device_name(0),
              "torch": torch.__version__, "steps": args.steps, "loss_step": args.loss_step, "pairs": {}, "runs": []}
    for run in runs:
        Path(run["cwd"]).mkdir(parents=True, exist_ok=True)
        print(f"== {run['pair']} / {run['side']}: {' '.join(run['cmd'][:4])} ...", flush=True)
        res = run_process(run["cmd"], run["env"], Path(run["cwd"]), args.timeout, run["stop_on"])
        summary = summarize(parse_log(res["lines"]), args.loss_step)
        if run["side"] == "ours" and Path(run["result_json"]).exists():
            summary["peak_mem_bytes"] = json.loads(Path(run["result_json"]).read_text()).get("peak_mem_bytes")
        summary.update(returncode=res["returncode"], wall_s=res["wall_s"], log_tail=res["lines"][-30:])
        ok = summary["last_step"] == args.steps
        summary["completed"] = ok
        pair = report["pairs"].setdefault(run["pair"], {"tokens_per_step": run["tokens_per_step"]})
        pair[run["side"]] = summary
        report["runs"].append({k: v for k, v in run.items() if k != "env"})
    for pair in report["pairs"].values():
        o, u = pair.get("ours", {}), pair.get("upstream", {})
        pair["ratio"] = (o["ms_per_step"] / u["ms_per_step"]) if o.get("ms_per_step") and u.get("ms_per_step") else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    md = args.out / "train_throughput.md"
    if not md.exists():
        md.write_text(MD_HEADER.format(s=args.loss_step) + "\n")
    with md.open("a") as f:
        for row in markdown_rows(report):
            f.write(row + "\n")
            print(row)
    return 0 if all(p.get(s, {}).get("completed") for p in report["pairs"].values() for s in ("ours", "upstream")) else 1


if __name__ == "__main__":
    sys.exit(main())
