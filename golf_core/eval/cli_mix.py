"""`mix` and `audit` commands over an eval output dir (result.json + token_stats.npz).

golf mix DIR --grid GRID.yaml [--out FILE]
    One n-gram pass per distinct table config, then every alpha point of the grid mixed over
    the saved stats; prints a table sorted by val_bpb and writes every point (JSON or CSV by
    the --out extension; default DIR/mix_grid.json).
golf audit DIR [--set mixer.x=y ...]
    Re-measures the stats-based checks (mode, normalized_sum, causal n-gram pass,
    single_pass, ratio_scored, score_before_update of the replayed schedule); checks only the
    run could measure (model causality, its event log, artifact bytes, eval time) are carried
    over from result.json. Prints the audit JSON.
golf audit --mixer-mode hashed_target --buckets 16 --entropy-floor
    Standalone: the scorer on a synthetic Markov source with a known entropy rate.

Exit codes: `golf audit` 0 compliant, 1 not compliant, 2 bad input. `golf mix` 0 done (whether
or not the grid points are compliant: its table marks them), 2 bad input.
"""
from __future__ import annotations

from golf_core.errors import UserError
import argparse
import csv
import json
from pathlib import Path



def _print_table(rows: list[dict], top: int) -> None:
    shown = sorted(rows, key=lambda r: r["val_bpb"])[:top] if top > 0 else sorted(rows, key=lambda r: r["val_bpb"])
    cols = [k for k in rows[0] if k not in ("val_bpb", "compliant", "config")]
    head = ["rank", "val_bpb", "legal"] + cols
    lines = [[str(i + 1), f"{r['val_bpb']:.6f}", "yes" if r["compliant"] else "NO"]
             + [json.dumps(r[c]) if not isinstance(r[c], (int, float, str)) else str(r[c]) for c in cols]
             for i, r in enumerate(shown)]
    widths = [max(len(h), *(len(x[j]) for x in lines)) for j, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for x in lines:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths)))
    if len(shown) < len(rows):
        print(f"... {len(rows) - len(shown)} more points in the output file")


def _csv_value(v):
    """A plain CSV cell: `normalized`, `0.1`, `true`; only lists and mappings as JSON."""
    if isinstance(v, bool):
        return str(v).lower()
    if v is None:
        return ""
    return json.dumps(v) if isinstance(v, (list, tuple, dict)) else v


def _write_rows(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    ranked = sorted(rows, key=lambda r: r["val_bpb"])
    if out.suffix.lower() == ".csv":
        fields = ["val_bpb", "compliant"] + sorted(ranked[0]["config"])
        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in ranked:
                w.writerow({"val_bpb": repr(r["val_bpb"]), "compliant": r["compliant"],
                            **{k: _csv_value(v) for k, v in r["config"].items()}})
    else:
        out.write_text(json.dumps([{"val_bpb": r["val_bpb"], "compliant": r["compliant"], "mixer": r["config"]}
                                   for r in ranked], indent=1) + "\n")


def _mix(args: argparse.Namespace) -> int:
    from golf_core.eval.mix import load_grid
    from golf_core.eval.mix_dir import grid_rows

    cfgs = load_grid(args.grid)  # validated before any stats are read
    if args.out and Path(args.out).suffix.lower() not in (".json", ".csv"):
        raise UserError(f"--out {args.out}: must end in .json or .csv")
    run_dir = Path(args.dir)
    rows = grid_rows(run_dir, cfgs, data_dir=args.data_dir, chunk_tokens=args.chunk_tokens,
                     vocab_size=args.vocab_size, device=args.device)
    _print_table(rows, args.top)
    out = Path(args.out) if args.out else run_dir / "mix_grid.json"
    _write_rows(rows, out)
    print(f"{len(rows)} grid points -> {out}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from golf_core.config import with_overrides
    from golf_core.eval.audit import audit, standalone_audit
    from golf_core.eval.config import EvalSpec

    sets = list(args.set or [])
    if args.mixer_mode:
        sets.append(f"mixer.mode={args.mixer_mode}")
    if args.buckets:
        sets.append(f"mixer.buckets={args.buckets}")
    floor_kw = {"model": args.floor_model, "tokens": args.tokens, "k": args.k}
    if args.dir is None:
        spec = with_overrides(EvalSpec(), sets) if sets else EvalSpec()
        if spec.mixer.mode == "none" and not args.mixer_mode:
            raise UserError("give an eval output DIR or --mixer-mode for a standalone audit")
        rep = standalone_audit(spec.mixer, vocab_size=args.vocab_size or 1024, entropy_floor=args.entropy_floor,
                               entropy_floor_kwargs=floor_kw, device=args.device)
    else:
        from golf_core.eval.mix_dir import read_run, run_spec, val_tokens, vocab_of

        result, stats = read_run(Path(args.dir))
        spec = run_spec(result, sets)
        vocab = vocab_of(stats, args.vocab_size)
        val = val_tokens(stats, args.data_dir, vocab)
        carried = dict((result.get("compliance") or {}).get("checks") or {})
        # a re-audit under another mixer cannot reuse the run's n-gram rows
        if sets:
            stats = {k: v for k, v in stats.items() if k not in ("order", "p_ngram", "p_mix", "audit_p_ngram")}
            carried.pop("normalized_sum", None)
            carried.pop("mode", None)
        rep = audit(spec=spec, vocab_size=vocab, stats=stats, val_tokens=val,
                    total_tokens=int(val.size - 1), artifact_bytes=result.get("artifact_bytes"),
                    eval_time_s=result.get("eval_time_s"), carried=carried, entropy_floor=args.entropy_floor,
                    entropy_floor_kwargs=floor_kw, device=args.device)
    from golf_core.eval.mix_dir import jsonable

    print(json.dumps(rep, indent=2, default=jsonable))
    return 0 if rep["compliant"] else 1


def register(sub) -> None:
    m = sub.add_parser("mix", help="mix saved token stats with n-gram passes over a grid of mixer configs")
    m.add_argument("dir", help="eval output dir (result.json + token_stats.npz)")
    m.add_argument("--grid", required=True, help="YAML {mixer: {field: value | [values]}}; lists are grid axes")
    m.add_argument("--out", default=None, help="write every point here (.json or .csv; default DIR/mix_grid.json)")
    m.add_argument("--top", type=int, default=20, help="rows to print (0 = all)")
    m.add_argument("--data-dir", default=None, help="read validation tokens here instead of rebuilding them from the stats")
    m.add_argument("--chunk-tokens", type=int, default=None, help="override the run's eval.chunk_tokens")
    m.add_argument("--vocab-size", type=int, default=None)
    m.add_argument("--device", default="cpu")
    m.set_defaults(func=_mix)

    a = sub.add_parser("audit", help="compliance audit of an eval output dir, or a standalone mixer check "
                                     "(exit 0 compliant, 1 not, 2 bad input)")
    a.add_argument("dir", nargs="?", default=None, help="eval output dir (result.json + token_stats.npz)")
    a.add_argument("--mixer-mode", choices=["none", "hashed_target", "normalized"], default=None)
    a.add_argument("--buckets", type=int, default=None, help="mixer.buckets")
    a.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="eval/mixer/ttt overrides")
    a.add_argument("--entropy-floor", action="store_true", help="score a synthetic source of known entropy")
    a.add_argument("--floor-model", choices=["true", "uniform"], default="true",
                   help="model stand-in for the entropy floor")
    a.add_argument("--tokens", type=int, default=20_000, help="synthetic tokens for the entropy floor")
    a.add_argument("--k", type=float, default=4.0, help="entropy floor tolerance in standard errors")
    a.add_argument("--data-dir", default=None, help="read validation tokens here instead of rebuilding them")
    a.add_argument("--vocab-size", type=int, default=None)
    a.add_argument("--device", default="cpu")
    a.set_defaults(func=_audit)
