"""Evaluation throughput on one H100: our full legal eval vs PR #779's own evaluation.

Sides (same GPU, same synthetic validation tokens, same weights where the names line up):
- `ours`:   run_eval with the pr779 preset's artifact, seq 2048 / stride 64, 1,048,576-token
            score-first chunks, drift-free TTT (#779's record settings) and the NORMALIZED
            n-gram mixer, fused (what a legal record would run);
- `pr779`:  PR #779's `eval_val_sliding_ttt` from its own train_gpt.py (ref c58742a3e) with its
            record run's environment (USE_MIXER=1 MIXER_ETA=0.02 QTTT=1 TTT_FREEZE_BLOCKS=1
            TTT_LR=3e-5 TTT_EPOCHS=1 TTT_CHUNK_TOKENS=1048576 ADAPTIVE_LR=0 USE_POLYAK=0,
            stride 64, temperature 0.98), i.e. its hashed (non-compliant) mixer; run in its own
            process, its model class, our artifact's dequantized weights;
- `passes`: the factorized costs: the neural pass alone (run_eval, mixer off, TTT on) and the
            normalized n-gram pass alone (ngram_pass on the GPU over that pass's token stats).
Reported: tokens/s (scored targets per second of eval wall time) and val_bpb of each side.

Written for one CUDA GPU: without one it says so and exits 2. `--dry-run` prints the plan and
checks the inputs on any machine. #779's script is copied at run time into the git-ignored
bench/_upstream/, never committed; by default it is $GOLF_REFERENCE_DIR/parameter-golf/pr779/train_gpt.py:

    GOLF_REFERENCE_DIR=path/to/reference python bench/eval_throughput.py
    python bench/eval_throughput.py --pr779-script path/to/train_gpt_pr779.py
    python bench/eval_throughput.py --pr779-script path/to/parameter-golf  # a git clone: git show
    python bench/eval_throughput.py --pr779-script ... --val-tokens 8388608 --dry-run

Output: OUT/eval_throughput.json (default OUT = bench/_out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))
from train_throughput import (  # noqa: E402
    PR779_PATH, PR779_REF, REFERENCE_ENV, BenchError, fetch_script, reference_file,
)

UPSTREAM_DIR = REPO / "bench" / "_upstream"
PR779_ENV = {  # the record run's evaluation settings (pr779_README.md "Reproduction")
    "USE_MIXER": "1", "MIXER_ETA": "0.02", "QTTT": "1", "TTT_EPOCHS": "1", "TTT_FREEZE_BLOCKS": "1",
    "TTT_LR": "0.00003", "TTT_CHUNK_TOKENS": "1048576", "ADAPTIVE_LR": "0", "USE_POLYAK": "0",
    "EVAL_STRIDE": "64", "EVAL_SEQ_LEN": "2048", "TTT_TEMPERATURE": "0.98", "BYTE_WEIGHTED_TTT": "1",
}
SIDES = ("ours", "pr779", "passes")


def our_spec(val_tokens: int, mixer: str = "normalized", ttt: bool = True):
    """#779's record evaluation settings as an EvalSpec (temperature: its adaptive 0.98)."""
    from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig, TTTConfig

    return EvalSpec(
        eval=EvalConfig(seq_len=2048, stride=64, batch_seqs=32, chunk_tokens=1_048_576, max_tokens=val_tokens,
                        temperature=0.98, adaptive_temperature=True, audit_positions=32),
        ttt=TTTConfig(enabled=ttt, lr=3e-5, epochs=1, batch_seqs=32, last_k_blocks=1),
        mixer=MixerConfig(mode=mixer),
    )


def fetch_pr779(source: Path) -> Path:
    """Copy #779's train_gpt.py into bench/_upstream/ (from the file, or `git show` in a mirror)."""
    return fetch_script(source, PR779_REF, PR779_PATH, UPSTREAM_DIR / "train_gpt_pr779.py")


def prepare(out: Path, val_tokens: int, data: Path | None) -> tuple[Path, Path]:
    """(data dir with >= val_tokens + 1 val tokens, artifact dir of the pr779 preset model)."""
    import torch

    from golf_core.data.shards import load_split
    from golf_core.data.synthetic import make_synthetic
    from golf_core.model import GPT
    from golf_core.presets import load_preset
    from golf_core.quant import write_artifact

    if data is None:
        data = out / "data"
        man = data / "manifest.json"
        if not man.is_file() or json.loads(man.read_text()).get("val_tokens", 0) < val_tokens + 1:
            make_synthetic(data, 10_000, val_tokens + 1, seed=0)
    n = load_split(data, "val").numel()
    if n < val_tokens + 1:
        raise BenchError(f"{data}: {n} val tokens, need {val_tokens + 1}")
    art = out / "artifact_pr779"
    if not (art / "model.ptz").is_file():
        torch.manual_seed(1337)
        # untrained weights: throughput does not depend on what the model learned
        write_artifact(GPT(load_preset("pr779").model), load_preset("pr779"), art)
    return data, art


def side_ours(art: Path, data: Path, out: Path, val_tokens: int) -> dict:
    from golf_core.eval.run import run_eval

    r = run_eval(art, our_spec(val_tokens), data, out / "ours")
    return {k: r[k] for k in ("val_bpb", "val_bpb_model", "eval_time_s", "tokens_per_s", "tokens_scored",
                              "ratio_scored", "ttt_params", "ttt_steps")} | {"compliant": r["compliance"]["compliant"]}


def side_passes(art: Path, data: Path, out: Path, val_tokens: int) -> dict:
    import torch

    from golf_core.data.shards import load_split
    from golf_core.eval.ngram import ngram_pass
    from golf_core.eval.run import run_eval
    from golf_core.eval.stats import load_stats

    spec = our_spec(val_tokens, mixer="none")
    r = run_eval(art, spec, data, out / "neural")
    stats = load_stats(out / "neural")
    val = load_split(data, "val")[: val_tokens + 1]
    cfg = our_spec(val_tokens).mixer
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    ng = ngram_pass(val, stats["pos"], stats["chunk"], cfg, spec.eval.chunk_tokens, vocab_size=1024,
                    device="cuda", n_ctx=stats["n_ctx"])
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"neural": {"eval_time_s": r["eval_time_s"], "tokens_per_s": r["tokens_per_s"], "val_bpb": r["val_bpb"]},
            "ngram_normalized": {"time_s": dt, "tokens_per_s": len(stats["pos"]) / dt,
                                 "hit_rate": float((ng.order >= 2).mean())}}


def side_pr779(art: Path, data: Path, val_tokens: int) -> dict:
    """Runs in its own process (#779 reads its knobs from the environment at import)."""
    import importlib

    import sentencepiece as spm
    import torch

    from golf_core.data.shards import find_tokenizer, load_split
    from golf_core.quant import load_artifact

    os.environ.update(PR779_ENV)
    sys.path.insert(0, str(UPSTREAM_DIR))
    up = importlib.import_module("train_gpt_pr779")
    args = up.Hyperparameters()
    ours, run_cfg, _ = load_artifact(art, "cpu")
    m = run_cfg.model
    dev = torch.device("cuda", 0)
    model = up.GPT(vocab_size=m.vocab_size, num_layers=m.num_layers, model_dim=m.model_dim, num_heads=m.num_heads,
                   num_kv_heads=m.num_kv_heads, mlp_mult=m.mlp_mult, tie_embeddings=m.tie_embeddings,
                   tied_embed_init_std=m.tied_embed_init_std, logit_softcap=m.logit_softcap, rope_base=m.rope_base,
                   qk_gain_init=m.qk_gain_init, bigram_vocab_size=m.bigram_vocab_size, bigram_dim=m.bigram_dim,
                   xsa_last_n=m.xsa_last_n, rope_dims=m.rope_dims, ln_scale=m.ln_scale, dtg=m.gated_attention,
                   ve_enabled=m.value_embed, ve_dim=m.ve_dim, ve_layers=",".join(map(str, m.ve_layers)))
    model = model.to(dev).bfloat16()  # #779's eval model: bf16, CastedLinear and low-dim params fp32
    for mod in model.modules():
        if isinstance(mod, up.CastedLinear):
            mod.float()
    up.restore_low_dim_params_to_fp32(model)
    theirs = model.state_dict()
    sd = {k: v for k, v in ours.state_dict().items() if k in theirs and theirs[k].shape == v.shape}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    unexpected = sorted(set(ours.state_dict()) - set(sd))  # ours without a same-shape twin
    val = load_split(data, "val")[: val_tokens + 1]
    sp = spm.SentencePieceProcessor(model_file=str(find_tokenizer(data)))
    luts = up.build_sentencepiece_luts(sp, m.vocab_size, dev)
    # #779's main runs eval_val_sliding first, whose dummy forward fills the rotary caches
    # outside inference mode; without it TTT would backprop through inference tensors.
    with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        model.forward_logits(torch.zeros(1, 2048, dtype=torch.int64, device=dev))
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    loss, bpb = up.eval_val_sliding_ttt(
        args, model, 0, 1, dev, val, *luts, stride=64, ttt_epochs=1, ttt_lr=3e-5, ttt_freeze_blocks=1,
        eval_seq_len=2048, ttt_chunk_tokens=1_048_576, ttt_optimizer="adamw", ttt_temp=0.98,
        byte_weighted_ttt=True, adaptive_lr=False)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"val_bpb": bpb, "val_loss": loss, "eval_time_s": dt, "tokens_per_s": val_tokens / dt,
            "weights_loaded": not missing and not unexpected, "missing": list(missing)[:8],
            "unexpected": list(unexpected)[:8], "compliant": False}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pr779-script", type=Path, default=None,
                    help="#779's train_gpt.py, or a parameter-golf git clone (git show); "
                         f"default: ${REFERENCE_ENV}/parameter-golf/pr779/train_gpt.py")
    ap.add_argument("--val-tokens", type=int, default=8_388_608, help="targets scored (>= 8M for the report)")
    ap.add_argument("--data", type=Path, default=None, help="existing data dir (default: synthetic in OUT/data)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "_out")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"comma list of {', '.join(SIDES)}")
    ap.add_argument("--dry-run", action="store_true", help="print the plan, run nothing (any machine)")
    ap.add_argument("--_side", default=None, help=argparse.SUPPRESS)  # internal: one side per process
    a = ap.parse_args(argv)
    sides = [s for s in a.sides.split(",") if s]
    bad = [s for s in sides if s not in SIDES]
    if bad:
        print(f"eval_throughput: unknown side {bad[0]!r} (choose from {', '.join(SIDES)})", file=sys.stderr)
        return 2
    if a.val_tokens < 1:
        print(f"eval_throughput: --val-tokens must be >= 1 (got {a.val_tokens})", file=sys.stderr)
        return 2
    if a.pr779_script is None and "pr779" in sides and not a._side:  # a child reads the copy
        a.pr779_script = reference_file("pr779", "train_gpt.py")
        if a.pr779_script is None:
            print(f"eval_throughput: --pr779-script not given and ${REFERENCE_ENV}/parameter-golf/pr779/train_gpt.py "
                  f"not found ({REFERENCE_ENV}={os.environ.get(REFERENCE_ENV, '(unset)')})", file=sys.stderr)
            return 2
    spec = our_spec(a.val_tokens)
    plan = {"sides": sides, "val_tokens": a.val_tokens, "out": str(a.out), "pr779_script": str(a.pr779_script),
            "pr779_env": PR779_ENV, "our_spec": spec.model_dump(mode="json")}
    if a.dry_run:
        if "pr779" in sides and not a.pr779_script.exists():
            print(f"eval_throughput: {a.pr779_script}: not found", file=sys.stderr)
            return 2
        print(json.dumps({"dry_run": True, **plan}, indent=2))
        return 0

    import torch

    if not torch.cuda.is_available():
        print("eval_throughput: needs a CUDA GPU (one H100); none here. Use --dry-run to check the plan.",
              file=sys.stderr)
        return 2
    a.out.mkdir(parents=True, exist_ok=True)
    if a._side:  # a child process: one side, JSON on the last stdout line
        data, art = prepare(a.out, a.val_tokens, a.data)
        fn = {"ours": lambda: side_ours(art, data, a.out, a.val_tokens),
              "passes": lambda: side_passes(art, data, a.out, a.val_tokens),
              "pr779": lambda: side_pr779(art, data, a.val_tokens)}[a._side]
        print("RESULT " + json.dumps(fn()))
        return 0
    try:
        if "pr779" in sides:
            plan["pr779_script_copy"] = str(fetch_pr779(a.pr779_script))
        data, art = prepare(a.out, a.val_tokens, a.data)
    except (BenchError, ValueError, FileNotFoundError) as e:
        print(f"eval_throughput: {e}", file=sys.stderr)
        return 2
    report = {"plan": plan, "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "results": {}}
    for side in sides:  # each side in a fresh process: clean GPU memory, #779's env stays its own
        cmd = [sys.executable, __file__, "--_side", side, "--val-tokens", str(a.val_tokens), "--out", str(a.out),
               "--data", str(data)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            report["results"][side] = {"error": (proc.stderr or proc.stdout)[-2000:], "rc": proc.returncode}
        else:
            report["results"][side] = json.loads(lines[-1][len("RESULT "):])
        report["results"][side]["wall_s"] = time.perf_counter() - t0
        print(side, json.dumps(report["results"][side]), flush=True)
    path = a.out / "eval_throughput.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
