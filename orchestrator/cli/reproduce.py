"""`golf reproduce SPEC.yaml | RECORD_DIR`: the record claim of a spec, or a record folder's own
train_gpt.py for its seeds, end to end, and its records/ folder."""
from __future__ import annotations

from golf_core.errors import UserError
import sys

__all__ = ["register", "cmd_reproduce"]


def register(sub) -> None:
    from orchestrator.cli.run import add_execution_args
    from orchestrator.records.stats import ALPHA, DEFAULT_BEST_BPB
    from orchestrator.records.write import TRACK_DIR

    p = sub.add_parser(
        "reproduce", help="reproduce a record (a record spec, a script spec or a record folder): seeds, "
                          "statistics, records/...",
        description="Runs the seeds (reusing runs MLflow already finished), tests the mean against the current "
                    "best (>= 0.005 nats, one-sided t-test, judged at p < 0.01 and at the leaderboard's p < 0.25) "
                    "and, for a record folder, against its claim (one-sided Welch t-test), and writes "
                    "records/track_10min_16mb/YYYY-MM-DD_Name/. A record folder (README.md with its torchrun "
                    "command, submission.json, seed logs, train_gpt.py) runs its own train_gpt.py as script jobs.")
    p.add_argument("spec", help="record spec YAML (one eval, full validation split, one mixer setting), "
                                "script spec YAML (one env point), or a record folder holding train_gpt.py")
    p.add_argument("--name", default=None, help="folder name after the date (default: the spec's name)")
    p.add_argument("--out", default=TRACK_DIR, help=f"where the folder goes (default: ./{TRACK_DIR})")
    p.add_argument("--best-bpb", type=float, default=None,
                   help=f"current best val_bpb to beat (default {DEFAULT_BEST_BPB}, the 2026-04-27 record)")
    p.add_argument("--best-loss", type=float, default=None,
                   help="current best val_loss in nats of THIS tokenizer (default: converted from --best-bpb)")
    p.add_argument("--date", default=None, help="YYYY-MM-DD for the folder (default: today, UTC)")
    p.add_argument("--author", default="", help="submission.json author")
    p.add_argument("--github-id", default="", help="submission.json github_id")
    p.add_argument("--alpha", type=float, default=ALPHA,
                   help=f"significance threshold of the verdicts (default {ALPHA}, the README's; p < 0.25, the "
                        "leaderboard's practice, is always reported too)")
    s = p.add_argument_group("record folders and script specs")
    s.add_argument("--seeds", default=None, help="comma-separated seeds (default: the seed logs' seeds)")
    s.add_argument("--set-env", action="append", default=[], metavar="KEY=VALUE",
                   help="override (or add) one env value of the README's command; repeatable")
    s.add_argument("--gpus-per-job", "--nproc", dest="gpus_per_job", type=int, default=None,
                   help="torchrun --nproc_per_node (default: the README's)")
    s.add_argument("--data", default=None, help="the shards directory (default: the README's relative DATA_PATH, "
                                                "else data/datasets/fineweb10B_sp<VOCAB_SIZE>)")
    s.add_argument("--tokenizer", default=None, help="SentencePiece model (default: found from the data dir)")
    s.add_argument("--script", default=None, metavar="PATH",
                   help="the train_gpt.py to run when the record folder holds none (the error says where its "
                        "README says it comes from)")
    s.add_argument("--claim", default=None,
                   help="what to test against: a mean val_bpb or a submission.json (default: the folder's)")
    add_execution_args(p)
    p.set_defaults(func=cmd_reproduce)


def cmd_reproduce(args) -> int:
    """Exit 0 when the folder was written and every check golf could judge passed (the statistics'
    verdict, whatever it is, is in the folder and the summary); 1 when jobs the claim needs failed
    or a check failed (`checks: FAILED`); input errors exit 2 (ValueError)."""
    from rich.console import Console

    from orchestrator.records.golf_record import GolfRecord
    from orchestrator.records.pipeline import ReproduceError, reproduce_record
    from orchestrator.records.script_record import ScriptRecord
    from orchestrator.run.progress import SweepProgress

    console = Console()
    say = lambda msg: console.print(f"golf: {msg}", highlight=False, markup=False)  # noqa: E731
    ray = {"address": args.address, "num_cpus": args.num_cpus, "num_gpus": args.num_gpus, "say": say,
           "progress": SweepProgress(console, live=False if args.no_progress else None,
                                     heartbeat_s=getattr(args, "status_every", 30.0))}
    # input errors (ValueError, RecordSpecError): one line, exit 2, before Ray starts
    script = _script_reproduction(args)
    source = ScriptRecord(script) if script is not None else GolfRecord.load(args.spec)
    try:
        res = reproduce_record(source, name=args.name, out=args.out, date=args.date, best_bpb=args.best_bpb,
                               best_loss=args.best_loss, alpha=args.alpha, author=args.author,
                               github_id=args.github_id, tracking_uri=args.tracking_uri, work_dir=args.work_dir,
                               ray=ray, say=say)
    except ReproduceError as e:
        say(f"error: {e}")
        return 1
    if script is not None:
        _script_summary(console, say, res)
        return 0 if res.compliance["compliant"] else 1
    console.print(summary_table(res.stats, res.evals, res.compliance))
    st = res.stats
    say(f"statistics: mean {st['val_bpb_mean']:.6f} bpb, p = {st['p_value'] if st['p_value'] is not None else 'n/a'} "
        f"-> {st['verdict']}" + (f" ({'; '.join(st['notes'])})" if st["notes"] else ""))
    say("compliance: " + ("compliant" if res.compliance["compliant"] else
                          "NON-COMPLIANT: " + "; ".join(res.compliance["failed"][:6])
                          + (" ..." if len(res.compliance["failed"]) > 6 else "")))
    say(f"submittable: {'yes' if res.submittable else 'no'}; folder {res.folder} (train_gpt.py {res.code_bytes:,} bytes)")
    return 0 if res.compliance["compliant"] else 1


_SCRIPT_FLAGS = ("seeds", "set_env", "gpus_per_job", "data", "tokenizer", "claim", "script")


def _script_reproduction(args):
    """A record folder or a script spec resolved (ScriptReproduction), or None for a record spec."""
    from pathlib import Path

    from orchestrator.records.script_resolve import (
        parse_claim, parse_seeds, parse_set_env, record_dir_reproduction, spec_reproduction,
    )

    kw = dict(seeds=parse_seeds(args.seeds), set_env=parse_set_env(args.set_env), gpus_per_job=args.gpus_per_job,
              data=args.data, tokenizer=args.tokenizer, claim=parse_claim(args.claim), workspace=Path.cwd())
    if args.gpus_per_job is not None and not 1 <= args.gpus_per_job <= 64:
        raise UserError(f"--gpus-per-job must lie in 1..64 (got {args.gpus_per_job})")
    if Path(args.spec).is_dir():
        return record_dir_reproduction(args.spec, script=args.script, **kw)
    from orchestrator.spec.sweep import load_sweep

    sweep = load_sweep(args.spec)
    if sweep.is_script:
        return spec_reproduction(sweep, **kw)
    given = [f"--{f.replace('_', '-')}" for f in _SCRIPT_FLAGS if getattr(args, f) not in (None, [])]
    if given:
        raise UserError(f"{' '.join(given)}: only for a record folder or a script spec ({args.spec} is a preset spec)")
    return None


def summary_table(stats: dict, evals: dict[int, dict], compliance: dict):
    """A golf_core record's seeds: the claimed score, the neural pass, the eval time, compliance."""
    from rich.table import Table

    from orchestrator.records.write import _f

    t = Table(title=f"golf reproduce: {stats['n_seeds']} seeds vs best {stats['best_bpb']:.4f} bpb",
              title_justify="left")
    for col in ("seed", "val_bpb", "val_loss", "neural bpb", "eval s", "compliant"):
        t.add_column(col, justify="right")
    for s in stats["seeds"]:
        e = evals[s]
        t.add_row(str(s), f"{stats['val_bpb'][s]:.6f}", f"{stats['val_loss'][s]:.6f}",
                  _f(e.get("neural_val_bpb"), ".6f"), _f(e.get("eval_time_s"), ".1f"),
                  "yes" if compliance["seeds"][s]["compliant"] else "NO")
    t.add_row("mean", f"{stats['val_bpb_mean']:.6f}", f"{stats['val_loss_mean']:.6f}", "", "", "")
    t.add_row("std", _f(stats["val_bpb_std"], ".6f"), _f(stats["val_loss_std"], ".6f"), "", "", "")
    return t


def _script_summary(console, say, res) -> None:
    from rich.table import Table

    st, cl = res.stats, res.claim_stats
    t = Table(title=f"golf reproduce: {st['n_seeds']} seeds", title_justify="left")
    for col in ("seed", "val_bpb", "val_loss", "claimed", "job"):
        t.add_column(col, justify="right")
    claimed = (cl or {}).get("claim_val_bpb") or {}
    for s in st["seeds"]:
        r = res.seeds[s]
        t.add_row(str(s), f"{st['val_bpb'][s]:.8f}", f"{st['val_loss'][s]:.8f}",
                  f"{claimed[s]:.8f}" if s in claimed else "-", r.state)
    t.add_row("mean", f"{st['val_bpb_mean']:.8f}", f"{st['val_loss_mean']:.8f}",
              f"{cl['claim_val_bpb_mean']:.8f}" if cl else "-", "")
    console.print(t)
    fmt = lambda p: "n/a" if p is None else f"{p:.4g}"  # noqa: E731
    if cl is not None:
        say(f"against the claim: {cl['delta_bpb']:+.6f} bpb, p = {fmt(cl['p_value'])} -> "
            + ", ".join(f"{k}: {v}" for k, v in cl["verdict_at"].items()))
    say(f"against the best {st['best_bpb']:.4f}: p = {fmt(st['p_value'])} -> "
        + ", ".join(f"{k}: {v}" for k, v in st["verdict_at"].items()))
    say("checks: " + ("every check golf could judge passed" if res.compliance["compliant"] else
                      "FAILED: " + "; ".join(res.compliance["failed"][:6])
                      + (" ..." if len(res.compliance["failed"]) > 6 else "")))
    say(f"folder {res.folder}")


if __name__ == "__main__":  # pragma: no cover
    from orchestrator.cli.main import main

    sys.exit(main(["reproduce", *sys.argv[1:]]))
