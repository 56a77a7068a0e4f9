"""`golf reproduce SPEC.yaml`: the record claim of a spec, end to end, and its records/ folder."""
from __future__ import annotations

import sys

__all__ = ["register", "cmd_reproduce"]


def register(sub) -> None:
    from orchestrator.cmd_run import add_execution_args
    from orchestrator.records import DEFAULT_BEST_BPB, TRACK_DIR

    p = sub.add_parser(
        "reproduce", help="train + evaluate every seed of a record spec, test the claim, write records/...",
        description="Runs the spec's seeds (reusing runs MLflow already finished), scores each at full "
                    "fidelity, tests the mean against the current best (>= 0.005 nats at p < 0.01, one-sided "
                    "t-test), audits compliance, and writes records/track_10min_16mb/YYYY-MM-DD_Name/.")
    p.add_argument("spec", help="record spec YAML (one eval, full validation split, one mixer setting)")
    p.add_argument("--name", default=None, help="folder name after the date (default: the spec's name)")
    p.add_argument("--out", default=TRACK_DIR, help=f"where the folder goes (default: ./{TRACK_DIR})")
    p.add_argument("--best-bpb", type=float, default=None,
                   help=f"current best val_bpb to beat (default {DEFAULT_BEST_BPB}, the 2026-04-27 record)")
    p.add_argument("--best-loss", type=float, default=None,
                   help="current best val_loss in nats of THIS tokenizer (default: converted from --best-bpb)")
    p.add_argument("--date", default=None, help="YYYY-MM-DD for the folder (default: today, UTC)")
    p.add_argument("--author", default="", help="submission.json author")
    p.add_argument("--github-id", default="", help="submission.json github_id")
    add_execution_args(p)
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> int:
    """Exit 0 when the folder was written (whatever the verdict: it is in the folder and the
    summary), 1 when jobs the claim needs failed; input errors exit 2 (ValueError)."""
    from rich.console import Console

    from orchestrator.progress import SweepProgress
    from orchestrator.reproduce import ReproduceError, drive_with_ray, reproduce, summary_table

    console = Console()
    say = lambda msg: console.print(f"[golf] {msg}", highlight=False)  # noqa: E731
    try:
        res = reproduce(args.spec, name=args.name, out=args.out, date=args.date, best_bpb=args.best_bpb,
                        best_loss=args.best_loss, author=args.author, github_id=args.github_id,
                        tracking_uri=args.tracking_uri, work_dir=args.work_dir,
                        run_fn=drive_with_ray(args.address, args.num_cpus, args.num_gpus,
                                              SweepProgress(console, live=False if args.no_progress else None)),
                        say=say)
    except ReproduceError as e:
        say(f"error: {e}")
        return 1
    console.print(summary_table(res.stats, res.evals, res.compliance))
    st = res.stats
    say(f"statistics: mean {st['val_bpb_mean']:.6f} bpb, p = {st['p_value'] if st['p_value'] is not None else 'n/a'} "
        f"-> {st['verdict']}" + (f" ({'; '.join(st['notes'])})" if st["notes"] else ""))
    say("compliance: " + ("compliant" if res.compliance["compliant"] else
                          "NON-COMPLIANT: " + "; ".join(res.compliance["failed"][:6])
                          + (" ..." if len(res.compliance["failed"]) > 6 else "")))
    say(f"submittable: {'yes' if res.submittable else 'no'}; folder {res.folder} (train_gpt.py {res.code_bytes:,} bytes)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli import main

    sys.exit(main(["reproduce", *sys.argv[1:]]))
