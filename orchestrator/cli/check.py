"""`golf check RECORD_DIR...`: maintainers' pre-merge checklist of record folders
(orchestrator.records.check); exit 1 when any check of any folder fails."""
from __future__ import annotations

import json
import sys

__all__ = ["register", "cmd_check"]


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="a record folder's pre-merge checklist: bytes, train/eval time, data, logs, script, "
                      "README command, statistics",
        description="Checks each RECORD_DIR as maintainers do before merging: every seed's artifact <= "
                    "16,000,000 bytes, train <= 600 s (two average steps of slack), eval <= 600 s, the data the logs state "
                    "(80 train shards, the tokenizer's validation token count), a log for every seed of "
                    "submission.json and values that agree, train_gpt.py present and bytes_code its size, a "
                    "runnable README command, and the statistics against the previous best (p < 0.25 as "
                    "practised, p < 0.01 as written). PASS / FAIL / WARN (not stated) per line; exit 1 on any FAIL.")
    p.add_argument("dirs", nargs="+", metavar="RECORD_DIR")
    p.add_argument("--best-bpb", type=float, default=None,
                   help="the previous best val_bpb (default: the folder's comparison_baseline_bpb, else the "
                        "2026-04-27 record's 1.0611)")
    p.add_argument("--json", action="store_true", help="one JSON object per folder")
    p.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    from orchestrator.records.check import check_folder

    results = [check_folder(d, best_bpb=args.best_bpb) for d in args.dirs]
    for fc in results:
        if args.json:
            print(json.dumps({"folder": str(fc.path), "passed": fc.passed,
                              "checks": [c.__dict__ for c in fc.lines]}))
            continue
        print(f"golf: check {fc.path}: {'PASS' if fc.passed else 'FAIL'}")
        for c in fc.lines:
            print(f"  {c}")
    if not args.json:
        ok = sum(fc.passed for fc in results)
        print(f"golf: {ok} of {len(results)} folder(s) pass every check")
    return 0 if all(fc.passed for fc in results) else 1


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli.main import main

    sys.exit(main(["check", *sys.argv[1:]]))
