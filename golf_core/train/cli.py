"""`golf train --preset NAME [--set section.key=value ...] --data DIR --out DIR [--nproc N]`.

Runs `run_training` in this process, or with `--nproc N > 1` in N local processes forming one
torch.distributed group (gloo on CPU, NCCL on GPUs). Under torchrun (WORLD_SIZE set) every
rank runs this command with the default --nproc 1 and joins the torchrun group. Bad input
(preset, --set, data) is a one-line error before any training starts.
"""
from __future__ import annotations

from golf_core.errors import UserError
import argparse
import os
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="baseline | pr779 | tiny")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config field (repeatable), e.g. --set train.iterations=100")
    p.add_argument("--data", required=True, type=Path, help="data dir: shards + one SentencePiece .model")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="SentencePiece .model (default: the data dir's one *.model, or upstream's data/tokenizers pairing)")
    p.add_argument("--out", required=True, type=Path, help="output dir: result.json, model.ptz, artifact.json")
    p.add_argument("--nproc", type=int, default=1, help="local processes (ranks); default 1")
    p.add_argument("--quiet", action="store_true", help="no summary at the end (progress lines still print)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train one model under the wallclock cap, write artifact + result.json",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    add_arguments(p)
    p.set_defaults(func=cmd_train)


def summary_lines(result: dict) -> list[str]:
    def fmt(v, spec):
        return "n/a" if v is None else format(v, spec)

    lines = [
        f"val_bpb {fmt(result.get('val_bpb'), '.6f')} (roundtrip)  prequant {fmt(result.get('val_bpb_prequant'), '.6f')}",
        f"artifact_bytes {fmt(result.get('artifact_bytes'), ',')}  over_limit {result.get('over_limit')}",
        f"steps {result['steps']}  stopped_by {result['stopped_by']}  train_time {result['train_time_s']:.1f}s  "
        f"step_avg {fmt(result.get('step_avg_ms'), '.1f')}ms  world_size {result['world_size']}  device {result['device']}",
    ]
    if result.get("nan"):
        lines.append(f"NaN: {result.get('nan_reason')}")
    return lines


def cmd_train(args) -> int:
    from golf_core.data import check_data_dir
    from golf_core.presets import load_preset
    from golf_core.train.distributed import run_ranks_for_result
    from golf_core.train.loop import check_batch_shape, run_training

    cfg = load_preset(args.preset, args.sets)  # ConfigError: one line, exit 2
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1 (got {args.nproc})")
    env_world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.nproc > 1 and env_world > 1:
        raise UserError("--nproc > 1 inside an already distributed launch (WORLD_SIZE is set)")
    check_batch_shape(cfg.train, max(args.nproc, env_world))
    if args.nproc > 1:
        # checked here, once, before N processes start; in-process, run_training checks on rank 0
        check_data_dir(args.data, cfg.model.vocab_size, tokenizer=args.tokenizer)  # ShardError: one line, exit 2
        # Every rank reruns this command (as under torchrun) with --nproc 1; this process waits.
        argv = ["-m", "golf_core.train", "--preset", args.preset, *[a for s in args.sets for a in ("--set", s)],
                "--data", str(args.data), *(["--tokenizer", str(args.tokenizer)] if args.tokenizer else []),
                "--out", str(args.out), "--quiet"]
        result = run_ranks_for_result(argv, args.nproc, args.out / "result.json", "golf train")
        if result is None:
            return 1
    else:
        result = run_training(cfg, args.data, args.out, tokenizer=args.tokenizer)
    if int(os.environ.get("RANK", "0")) == 0 and not args.quiet:
        for line in summary_lines(result):
            print(line)
        print(f"wrote {args.out / 'result.json'}")
    return 1 if result.get("nan") else 0


def main(argv: list[str] | None = None) -> int:
    """`python -m golf_core.train ARGS` (also under torchrun): the train command alone."""
    from golf_core.cli import run_cli

    argv = sys.argv[1:] if argv is None else argv
    return run_cli("python -m golf_core.train", ("golf_core.train.cli",), ["train", *argv])
