"""`data` commands: make synthetic data, download FineWeb, check a data dir."""
from __future__ import annotations

import argparse
from pathlib import Path


def _summary(data_dir: Path, tokenizer: Path | None = None) -> str:
    from golf_core.data.shards import HEADER_BYTES, TOKEN_BYTES, find_tokenizer, split_files

    lines = []
    for split in ("train", "val"):
        files = split_files(data_dir, split)
        tokens = sum((f.stat().st_size - HEADER_BYTES) // TOKEN_BYTES for f in files)
        size = sum(f.stat().st_size for f in files)
        lines.append(f"  {split:5s}: {len(files)} shard(s), {tokens:,} tokens, {size:,} bytes")
    lines.append(f"  tokenizer: {tokenizer or find_tokenizer(data_dir)}")
    return "\n".join(lines)


def _synthetic(args: argparse.Namespace) -> int:
    from golf_core.data.paths import check_inside
    from golf_core.data.synthetic import make_synthetic

    if not Path(args.out).is_absolute():  # an absolute --out is an explicit choice
        check_inside(args.out, Path.cwd(), f"--out {args.out}", "pass its absolute path to write there")
    out = make_synthetic(args.out, args.train_tokens, args.val_tokens, args.seed,
                         vocab_size=args.vocab_size, shard_tokens=args.shard_tokens, force=args.force)
    print(f"synthetic data in {out} (seed {args.seed})\n{_summary(out)}")
    return 0


def _fineweb(args: argparse.Namespace) -> int:
    from golf_core.data.fineweb import dataset_name, download_fineweb, local_download_fn

    dataset_name(args.variant)  # a bad variant: one line, before anything is fetched
    default = "data" if args.layout == "upstream" else f"data/fineweb10B_{args.variant}"
    out = Path(args.out or default)
    fn = local_download_fn(args.from_dir) if args.from_dir else None
    s = download_fineweb(args.variant, args.train_shards, out, repo_id=args.repo_id, remote_root=args.remote_root,
                         download_fn=fn, log=print, layout=args.layout, with_docs=args.with_docs)
    ddir = Path(s["data_dir"])
    print(f"fineweb {args.variant} in {ddir}: {len(s['downloaded'])} downloaded, {len(s['skipped'])} already present\n"
          f"{_summary(ddir, Path(s['tokenizer_path']))}")
    if args.layout == "upstream" and s["tokenizer"].endswith(".model"):
        print(f"train on it: golf train --data {ddir} --tokenizer {s['tokenizer_path']} ...")
    return 0


def _check(args: argparse.Namespace) -> int:
    from golf_core.data.shards import check_data_dir

    check_data_dir(args.dir, args.vocab_size, tokenizer=args.tokenizer)
    print(f"{args.dir}: ok\n{_summary(Path(args.dir), args.tokenizer)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="make, download or check token data")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    s = dsub.add_parser("synthetic", help="English-like synthetic shards + a SentencePiece tokenizer")
    s.add_argument("--out", required=True, help="output data dir")
    s.add_argument("--train-tokens", type=int, default=2_000_000)
    s.add_argument("--val-tokens", type=int, default=200_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--vocab-size", type=int, default=1024)
    s.add_argument("--shard-tokens", type=int, default=None, help="max tokens per train shard")
    s.add_argument("--force", action="store_true",
                   help="write into a directory holding other files (kept; shards or tokenizers golf did not "
                        "make are never overwritten)")
    s.set_defaults(func=_synthetic)

    f = dsub.add_parser("fineweb", help="download the challenge's FineWeb shards from the Hugging Face hub")
    f.add_argument("--variant", default="sp1024", help="sp<VOCAB> (sp1024, sp4096, ...) or byte260")
    f.add_argument("--train-shards", type=int, default=80)
    f.add_argument("--layout", choices=("upstream", "flat"), default="upstream",
                   help="upstream: OUT/{manifest.json,datasets/fineweb10B_<variant>/,tokenizers/} as "
                        "data/cached_challenge_fineweb.py writes it (default); flat: everything in OUT")
    f.add_argument("--out", default=None,
                   help="data root (default data), or with --layout flat the data dir (default data/fineweb10B_<variant>)")
    f.add_argument("--repo-id", default=None,
                   help="hub dataset repo (default $MATCHED_FINEWEB_REPO_ID, else willdepueoai/parameter-golf)")
    f.add_argument("--remote-root", default=None,
                   help="folder of the repo holding manifest.json (default $MATCHED_FINEWEB_REMOTE_ROOT_PREFIX, else datasets)")
    f.add_argument("--with-docs", action="store_true", help="also fetch docs_selected.jsonl and its source manifest")
    f.add_argument("--from-dir", default=None, help="copy from a local directory laid out like the hub repo")
    f.set_defaults(func=_fineweb)

    c = dsub.add_parser("check", help="validate every shard and the tokenizer of a data dir")
    c.add_argument("dir")
    c.add_argument("--vocab-size", type=int, default=1024)
    c.add_argument("--tokenizer", type=Path, default=None, help="SentencePiece .model (default: found from DIR)")
    c.set_defaults(func=_check)
