"""`golf eval ARTIFACT_DIR --data DIR --out DIR [--config EVAL.yaml] [--set section.key=value ...] [--nproc N]`.

Evaluates an artifact as a record would: sliding windows, score-first chunks, TTT, and (when
mixer.mode != none) the fused n-gram mixer; writes OUT/result.json and OUT/token_stats.npz.
EVAL.yaml holds the sections `eval`, `mixer`, `ttt` (EvalSpec); `--set` edits them after the
file (e.g. --set ttt.enabled=true --set mixer.mode=normalized). `--nproc N` runs N local ranks
(gloo on CPU); under torchrun every rank runs the command with the default --nproc 1.
Bad input is a one-line error before any model is loaded.
"""
from __future__ import annotations

from golf_core.errors import UserError
import argparse
import os
from pathlib import Path

import yaml


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate an artifact (sliding window, score-first TTT, fused mixer)",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("artifact", type=Path, metavar="ARTIFACT_DIR", help="dir with model.ptz + artifact.json")
    p.add_argument("--config", type=Path, default=None, metavar="EVAL.yaml", help="eval/mixer/ttt sections")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override an eval.*, mixer.* or ttt.* field (repeatable)")
    p.add_argument("--data", required=True, type=Path, help="data dir: val shards + one SentencePiece .model")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="SentencePiece .model (default: the data dir's one *.model, or upstream's data/tokenizers pairing)")
    p.add_argument("--out", required=True, type=Path, help="output dir: result.json, token_stats.npz")
    p.add_argument("--nproc", type=int, default=1, help="local processes (ranks); default 1")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # ranks of an --nproc launch
    p.set_defaults(func=cmd_eval)


def load_spec(config: Path | None, sets: list[str]):
    """EvalSpec from an optional YAML file plus --set overrides; ConfigError names the field."""
    from golf_core.config import ConfigError, build, deep_merge, parse_sets
    from golf_core.eval.config import EvalSpec

    doc: dict = {}
    if config is not None:
        if not config.is_file():
            raise FileNotFoundError(f"{config}: eval config not found")
        try:
            doc = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{config}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{config}: expected a mapping with sections eval / mixer / ttt")
    over = parse_sets(list(sets))
    bad = sorted(set(doc) - {"eval", "mixer", "ttt"}) or sorted(set(over) - {"eval", "mixer", "ttt"})
    if bad:
        raise ConfigError(f"{bad[0]}: unknown section (eval config sections are eval, mixer, ttt)")
    return build(EvalSpec, deep_merge(doc, over))


def summary_lines(result: dict) -> list[str]:
    comp = result.get("compliance") or {}
    failed = [k for k, c in (comp.get("checks") or {}).items() if not c.get("passed")]
    return [
        f"val_bpb {result['val_bpb']:.6f}  val_loss {result['val_loss']:.6f}  "
        f"(model alone {result['val_bpb_model']:.6f})",
        f"tokens_scored {result['tokens_scored']:,}  ratio_scored {result['ratio_scored']:.6f}  "
        f"eval_time {result['eval_time_s']:.1f}s  tokens/s {result['tokens_per_s']:,.0f}",
        f"compliant {comp.get('compliant')}" + (f"  failed: {', '.join(failed)}" if failed else ""),
    ]


def cmd_eval(args) -> int:
    from golf_core.data.shards import check_data_dir
    from golf_core.eval.run import RESULT_FILE, check_inputs, run_eval
    from golf_core.quant.artifact import read_info

    spec = load_spec(args.config, args.sets)  # ConfigError: one line, exit 2
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1 (got {args.nproc})")
    if args.nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError("--nproc > 1 inside an already distributed launch (WORLD_SIZE is set)")
    check_inputs(args.artifact, args.data)
    vocab = int(read_info(args.artifact).run_config.get("model", {}).get("vocab_size", 1024))
    check_data_dir(args.data, vocab, splits=("val",), tokenizer=args.tokenizer)  # ShardError: one line, exit 2
    if args.nproc > 1:
        from golf_core.train.distributed import run_ranks_for_result

        # Every rank reruns this command with --nproc 1 (as under torchrun); this process waits.
        argv = ["-m", "golf_core", "eval", str(args.artifact), "--data", str(args.data), "--out", str(args.out),
                *(["--tokenizer", str(args.tokenizer)] if args.tokenizer else []),
                *(["--config", str(args.config)] if args.config else []),
                *[a for s in args.sets for a in ("--set", s)], "--quiet"]
        result = run_ranks_for_result(argv, args.nproc, args.out / RESULT_FILE, "golf eval")
        if result is None:
            return 1
    else:
        result = run_eval(args.artifact, spec, args.data, args.out, tokenizer=args.tokenizer)
    if int(os.environ.get("RANK", "0")) == 0 and not args.quiet:
        for line in summary_lines(result):
            print(line)
        print(f"wrote {args.out / RESULT_FILE}")
    return 0
