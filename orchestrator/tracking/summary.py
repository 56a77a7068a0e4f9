"""What a finished sweep says, at a glance: the best compliant score, each mixer mode's winning
config with mean ± std over seeds, and everything the parent run shows in MLflow.

Used by the terminal's final table (orchestrator.cli.run), the live headline
(orchestrator.run.progress) and, once at sweep end, the sweep's parent run (`summarize`): metric
`val_bpb` = the winner's seed mean (the best compliant configuration: "best" means that
everywhere), `val_bpb_std`, `seeds`; `best_seed_val_bpb` (the best single compliant seed, named as
such) and `best_seed_val_bpb.<column>`; per column the winner's mean/std/seed count; the spec's
description followed by a Markdown leaderboard (orchestrator.tracking.leaderboard) as the run's
and the experiment's description; `summary.csv` of every job and the PNG plots of
orchestrator.tracking.plots.

A *column* is what a score measures: `model` (a train job's roundtrip score), `neural` (an eval
job), or a mix job's mixer mode (`none` = the model alone through the mix path, `hashed_target`,
`normalized`, `<mode>_optuna`). A *config group* is one job of the plan repeated over seeds: the
plan path without its seed segment (`mix/e0/normalized/alpha_base=0.1,alpha_range=0.4`); its
label is the part of the path that varies (`alpha_base=0.1,alpha_range=0.4`).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator import kinds

__all__ = ["ConfigGroup", "best_runs", "best_trial", "column_of", "groups", "overall_winner", "winners", "job_rows",
           "summary_csv", "summarize", "parent_metrics"]

log = logging.getLogger("golf.summary")

_SEED_SEG = re.compile(r"^s-?\d+$")
_EVAL_SEG = re.compile(r"^e\d+$")


def column_of(job) -> str:
    """The summary column of a job's score: its kind decides (orchestrator.kinds)."""
    return kinds.of(job).score_column(job)


def _score(o) -> float | None:
    """The outcome's val_bpb when it counts: finished or reused, finite, valid."""
    r = o.result or {}
    v = r.get("val_bpb")
    if o.state not in ("finished", "reused") or not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    if not math.isfinite(float(v)) or (o.verdict is not None and not o.verdict.valid):
        return None
    return float(v)


def _compliant(o) -> bool | None:
    return None if o.verdict is None else o.verdict.compliant


@dataclass
class ConfigGroup:
    column: str
    key: str  # the plan path without the seed segment
    label: str  # the varying part ("alpha_base=0.1,alpha_range=0.4"), "" when nothing varies
    outcomes: list = field(default_factory=list)

    @property
    def scored(self) -> list[tuple[int, float, Any]]:
        return [(o.job.seed, s, o) for o in self.outcomes if (s := _score(o)) is not None]

    @property
    def values(self) -> list[float]:
        return [s for _, s, _ in self.scored]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample std over seeds (ddof 1, as record statistics use); 0 for one seed."""
        v = self.values
        return statistics.stdev(v) if len(v) > 1 else (0.0 if v else None)

    @property
    def compliant(self) -> bool:
        """No seed of it was judged non-compliant (train and eval runs carry no verdict)."""
        return not any(_compliant(o) is False for o in self.outcomes)


def groups(report) -> list[ConfigGroup]:
    """Config groups in plan order."""
    out: dict[str, ConfigGroup] = {}
    for o in report.outcomes.values():
        parts = str(o.job.name).split("/")
        rest = [p for p in parts if not _SEED_SEG.match(p)]
        key = "/".join(rest)
        col = column_of(o.job)
        if key not in out:
            tail = [p for p in rest[1:] if not _EVAL_SEG.match(p)]
            if kinds.of(o.job).mixer and tail and tail[0] == col.removesuffix("_optuna"):
                tail = tail[1:]
            label = "/".join(p for p in tail if p != "optuna")
            evals = [p for p in rest if _EVAL_SEG.match(p)]
            if evals and evals[0] != "e0":
                label = f"{evals[0]} {label}".strip()
            out[key] = ConfigGroup(col, key, label)
        out[key].outcomes.append(o)
    return list(out.values())


def winners(report) -> dict[str, ConfigGroup]:
    """Per column, the config group with the lowest seed-mean val_bpb (columns in plan order)."""
    best: dict[str, ConfigGroup] = {}
    for g in groups(report):
        if g.mean is None:
            continue
        if g.column not in best or g.mean < best[g.column].mean:
            best[g.column] = g
    return best


def best_runs(report) -> dict[str, Any]:
    """{"compliant": (val_bpb, outcome) | None, "noncompliant": ... | None, "<column>": ...}."""
    out: dict[str, Any] = {"compliant": None, "noncompliant": None}
    for o in report.outcomes.values():
        s = _score(o)
        if s is None:
            continue
        which = "noncompliant" if _compliant(o) is False else "compliant"
        for k in (which, column_of(o.job)):
            if out.get(k) is None or s < out[k][0]:
                out[k] = (s, o)
    return out


def overall_winner(report) -> ConfigGroup | None:
    """The best compliant configuration: the lowest seed mean among compliant column winners."""
    ok = [g for g in winners(report).values() if g.compliant]
    return min(ok, key=lambda g: g.mean) if ok else None


def parent_metrics(report) -> dict[str, float]:
    """The parent run's metrics: `val_bpb` = the winner's seed mean (so the parent sorts with its
    children by the one number that counts), `val_bpb_std`, `seeds`; best_seed_val_bpb (the best
    compliant single seed) and best_seed_val_bpb.<column>; per column the winning config's
    mean/std/seed count."""
    m: dict[str, float] = {}
    b = best_runs(report)
    if b["compliant"] is not None:
        m["best_seed_val_bpb"] = b["compliant"][0]
    if b["noncompliant"] is not None:
        m["best_seed_val_bpb_noncompliant"] = b["noncompliant"][0]
    win = winners(report)
    for col, g in win.items():
        m[f"best_seed_val_bpb.{col}"] = b[col][0]
        m[f"winner_val_bpb_mean.{col}"] = g.mean
        m[f"winner_val_bpb_std.{col}"] = g.std
        m[f"winner_seeds.{col}"] = float(g.n)
    top = overall_winner(report)
    if top is not None:
        m.update(val_bpb=top.mean, val_bpb_std=top.std, seeds=float(top.n),
                 winner_val_bpb_mean=top.mean, winner_val_bpb_std=top.std, winner_seeds=float(top.n))
    return m


def best_trial(report) -> dict[str, Any] | None:
    """An optuna env sweep's best told trial: {"number", "values", "val_bpb", "told", "failed"}."""
    trials = getattr(report, "trials", None)
    best = trials.best() if trials is not None else None
    if best is None:
        return None
    return {"number": best.number, "values": dict(best.values), "val_bpb": best.value, "told": len(trials.told),
            "failed": sum(t.value is None for t in trials.told)}


def job_rows(report, run_id: Callable[[Any], str | None] | None = None) -> list[dict]:
    """One row per job: what summary.csv holds."""
    rows = []
    for o in report.outcomes.values():
        r, v = o.result or {}, o.verdict
        row = {
            "job": o.job.name, "kind": o.job.kind, "column": column_of(o.job), "seed": o.job.seed,
            "state": o.state, "run_id": (run_id(o) if run_id else None) or o.run_id or "",
            "val_bpb": r.get("val_bpb"), "val_loss": r.get("val_loss"),
            "valid": "" if v is None else str(v.valid).lower(),
            "compliant": "" if v is None or v.compliant is None else str(v.compliant).lower(),
            "reason": o.reason or "", "artifact_bytes": r.get("artifact_bytes"),
            "train_time_s": r.get("train_time_s"), "eval_time_s": r.get("eval_time_s"),
            "identity": o.job.identity,
        }
        row.update(kinds.of(o.job).row_fields(o.job))  # a mix's mixer fields
        rows.append(row)
    return rows


def summary_csv(rows: list[dict]) -> str:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# plot data


def _alpha_grid(report) -> dict[str, dict[tuple[float, float], float]]:
    """Per mixer mode with alphas, (alpha_base, alpha_range) -> the best seed-mean val_bpb over
    the other fields."""
    out: dict[str, dict[tuple[float, float], float]] = {}
    for g in groups(report):
        if g.mean is None or not g.outcomes:
            continue
        job = g.outcomes[0].job
        mixer = getattr(job, "mixer", None)  # one MixerConfig (an optuna search has none)
        if not kinds.of(job).mixer or mixer is None or mixer.mode == "none":
            continue
        cell = (float(job.mixer.alpha_base), float(job.mixer.alpha_range))
        grid = out.setdefault(g.column, {})
        grid[cell] = min(grid.get(cell, math.inf), g.mean)
    return out


def _seed_mean(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    by: dict[int, list[float]] = {}
    for c in curves:
        for step, v in c:
            by.setdefault(int(step), []).append(float(v))
    return [(s, statistics.fmean(v)) for s, v in sorted(by.items())]


def plot_data(report, history: Callable[[Any, str], list[tuple[int, float]]]) -> dict:
    """Everything orchestrator.tracking.plots draws. `history(outcome, metric)` gives a metric's
    (step, value) series of a run (in memory for jobs this sweep ran, MLflow for reused ones)."""
    import heapq

    from orchestrator.tracking.plots import SPREAD_TOP_LEGAL, SPREAD_TOP_NONCOMPLIANT

    # the top legal configurations first, then the best few non-compliant ones (marked): bounded,
    # so a 5,000-config sweep plots as fast as a small one (heapq: O(n log k))
    scored = [g for g in groups(report) if g.n and g.column not in ("neural",)]
    legal = heapq.nsmallest(SPREAD_TOP_LEGAL, (g for g in scored if g.compliant), key=lambda g: g.mean)
    bad = heapq.nsmallest(SPREAD_TOP_NONCOMPLIANT, (g for g in scored if not g.compliant), key=lambda g: g.mean)
    spread = [(f"{g.column} {g.label}".strip(), [(seed, s) for seed, s, _ in g.scored], g.compliant)
              for g in legal + bad]
    hidden = len(scored) - len(spread)
    curves = {}
    for o in report.outcomes.values():
        if kinds.of(o.job).trains and _score(o) is not None:
            c = history(o, "train_loss")
            if c:
                curves[kinds.of(o.job).curve_label(o.job)] = c
    chunks, chunk_bad = {}, set()
    for col, g in winners(report).items():
        if not kinds.of(g.outcomes[0].job).mixer:
            continue
        per_seed = [c for _, _, o in g.scored if (c := history(o, "chunk_val_bpb"))]
        if per_seed:
            name = "model alone" if col == "none" else f"{col} {g.label}".strip()
            chunks[name] = _seed_mean(per_seed)
            if not g.compliant:
                chunk_bad.add(name)
    alpha = _alpha_grid(report)
    alpha_ok = {col: all(g.compliant for g in groups(report) if g.column == col) for col in alpha}
    return {"alpha": alpha, "alpha_compliant": alpha_ok, "spread": spread, "spread_hidden": hidden,
            "curves": curves, "chunks": chunks, "chunks_noncompliant": chunk_bad}


# ---------------------------------------------------------------------------------------------
# the parent run


def summarize(report, adapter, out_dir: str | Path) -> dict:
    """Write summary.csv and the plots into out_dir, and log them with the parent metrics and
    description on the sweep's parent run (through `adapter`, orchestrator.run.track).
    Returns the parent metrics."""
    from orchestrator.tracking import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = parent_metrics(report)
    (out / "summary.csv").write_text(summary_csv(job_rows(report, adapter.outcome_run_id)))
    data = plot_data(report, adapter.history)
    plots.write_all(data, out, title=report.plan.sweep_name)
    from orchestrator.tracking.leaderboard import leaderboard_markdown

    spec_desc = report.plan.description
    record = None
    best_record = getattr(adapter, "best_record", None)
    if best_record is not None:
        try:
            record = best_record()
        except Exception as e:  # noqa: BLE001 - a leaderboard without the record beats none
            log.warning("best imported record not found: %s", str(e).splitlines()[0])
    board = leaderboard_markdown(groups(report), record)
    description = f"{spec_desc}\n\n{board}" if spec_desc else board
    top = overall_winner(report)
    tags = {"golf.compliant": str(top is not None).lower()}  # the parent's val_bpb is a legal winner's
    if top is not None:
        # the winner: its configuration, its seed mean, and its best seed's run (a link target)
        seed, s, o = min(top.scored, key=lambda x: x[1])
        tags.update({"golf.winner": top.key, "golf.winner_val_bpb": f"{top.mean:.5f}",
                     "golf.best_seed_job": o.job.name})
        rid = adapter.outcome_run_id(o)
        if rid:
            tags["golf.best_seed_run"] = rid
    bt = best_trial(report)
    if bt is not None:  # the trial's values in full precision (its runs' names show 4 digits)
        metrics["best_trial_val_bpb"] = bt["val_bpb"]
        tags.update({"golf.best_trial": str(bt["number"]),
                     "golf.best_trial_env": " ".join(f"{k}={v}" for k, v in bt["values"].items())})
    adapter.log_sweep_summary(metrics, tags, description, out)
    return metrics
