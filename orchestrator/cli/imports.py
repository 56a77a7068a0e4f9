"""`golf parse-log LOG...` (a train_gpt.py log's result, as golf records it) and
`golf import RECORD_DIR...` (published record folders into MLflow)."""
from __future__ import annotations

import json
import sys

__all__ = ["register", "cmd_parse_log", "cmd_import"]


def register(sub) -> None:
    p = sub.add_parser(
        "parse-log", help="the result of train_gpt.py logs: val_bpb, bytes, steps, times, curves",
        description="Parses logs printed by a parameter-golf train_gpt.py (any record's family: "
                    "`step:N/M train_loss:...`, `<tag> val_loss:X val_bpb:Y`, `Total submission size ...: "
                    "N bytes`). The score is the last score line, or the one --score-tag names.")
    p.add_argument("logs", nargs="+", metavar="LOG")
    p.add_argument("--json", action="store_true", help="one JSON object per log (a line each), curves included")
    p.add_argument("--score-tag", default=None, help="score from the last line with this tag (e.g. legal_ttt_exact)")
    p.set_defaults(func=cmd_parse_log)

    from orchestrator.records.importer import DEFAULT_EXPERIMENT

    p = sub.add_parser(
        "import", help="published record folders into MLflow (one run per seed log)",
        description="Each seed log of each RECORD_DIR becomes a FINISHED run (params: the README's torchrun "
                    "env and submission.json; metrics as golf's train jobs; tags golf.kind=record, "
                    "golf.source, golf.seed). The score is the log line matching submission.json's per-seed "
                    "val_bpb (tag golf.score_tag); each seed is judged against the track's limits "
                    "(golf.compliant), and a score that does not count is logged as val_bpb_noncompliant. "
                    "A folder without a usable log is skipped with one line; the others import. "
                    "Importing a log again adds nothing.")
    p.add_argument("dirs", nargs="+", metavar="RECORD_DIR")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help=f"MLflow experiment (default: {DEFAULT_EXPERIMENT})")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here)")
    p.add_argument("--score-tag", default=None,
                   help="record the score line with this tag (default: the line matching submission.json's "
                        "per-seed val_bpb, else the last)")
    p.set_defaults(func=cmd_import)


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def cmd_parse_log(args) -> int:
    from golf_core.logparse import parse_log_file

    # every log is parsed before anything is printed: a bad one is the one-line error, exit 2
    summaries = [(path, parse_log_file(path, score_tag=args.score_tag)) for path in args.logs]
    if args.json:
        for path, s in summaries:
            print(json.dumps({"path": path, **s.to_json()}, allow_nan=False))
        return 0
    # plain columns, the path last: readable in a pipe and at any terminal width
    head = ("val_bpb", "val_loss", "bytes", "steps", "train_s", "step_ms", "eval_s", "peak_MiB",
            "points", "score_tag", "log")
    rows = [head] + [(
        _fmt(s.val_bpb, ".8f"), _fmt(s.val_loss, ".8f"), _fmt(s.artifact_bytes), _fmt(s.steps),
        _fmt(s.train_time_s, ".1f"), _fmt(s.step_avg_ms, ".2f"), _fmt(s.eval_time_s, ".1f"),
        _fmt(s.peak_mem_mib, ".0f"), f"{len(s.curve_points)}/{len(s.val_points)}", s.final_tag or "-", path,
    ) for path, s in summaries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    for r in rows:
        cells = [c.rjust(w) if i < 9 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells + [r[-1]]))
    return 0


def cmd_import(args) -> int:
    from orchestrator.records.importer import import_records

    res = import_records(args.dirs, experiment=args.experiment, tracking_uri=args.tracking_uri,
                         score_tag=args.score_tag, say=lambda m: print(f"golf: {m}", flush=True))
    for path, why in res.skipped:
        print(f"golf: skipped {path}: {why}")
    extra = [f"{len(res.replaced)} incomplete import(s) replaced" if res.replaced else "",
             f"{len(res.duplicates)} duplicate log(s)" if res.duplicates else "",
             f"{len(res.mismatches)} score mismatch(es)" if res.mismatches else "",
             f"{len(res.bad_folders)} folder(s) skipped" if res.bad_folders else ""]
    print(f"golf: experiment {args.experiment!r}: {len(res.created)} run(s) imported, "
          f"{len(res.existing)} already there" + "".join(f", {e}" for e in extra if e))
    if res.bad_folders:
        print("golf: skipped folders:")
        for path, why in res.bad_folders:
            print(f"golf:   {path}: {why.removeprefix(str(path) + ': ')}")
    from orchestrator.tracking.client import resolve_tracking_uri
    from orchestrator.tracking.links import look_with

    print(f"golf: look: {look_with(resolve_tracking_uri(args.tracking_uri), res.experiment_id)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli.main import main

    sys.exit(main(["parse-log", *sys.argv[1:]]))
