"""The short Markdown leaderboard a sweep's parent run and experiment show as their description.

The top legal configurations (compliant, every seed valid or not), each with its seed-mean
val_bpb ± std and seed count, and the gap to the best imported record (`golf import`) when the
store holds one. "Best" is the best compliant configuration's seed mean everywhere golf says it
(issue 19: the headline's best single seed and the table's mean disagreed).
"""
from __future__ import annotations

import statistics
from typing import Any

__all__ = ["best_record", "leaderboard_markdown", "legal_groups"]

TOP_N = 5


def legal_groups(groups: list) -> list:
    """Config groups (orchestrator.tracking.summary.ConfigGroup) that count, best mean first."""
    ok = [g for g in groups if g.mean is not None and g.compliant]
    return sorted(ok, key=lambda g: g.mean)


def _fmt(mean: float, std: float | None, n: int) -> str:
    return f"{mean:.5f} ± {std:.5f}" if n > 1 and std is not None else f"{mean:.5f}"


def leaderboard_markdown(groups: list, record: dict | None = None, top_n: int = TOP_N) -> str:
    """A Markdown table of the top `top_n` legal configurations; `record` ({"source", "mean",
    "std", "n"}) adds the gap to it."""
    ranked = legal_groups(groups)
    if not ranked:
        return "**Leaderboard:** no legal score yet."
    lines = ["**Leaderboard** (legal configurations only; val_bpb = seed mean ± std, lower is better)", "",
             "| # | what | configuration | val_bpb | seeds |", "|---|---|---|---|---|"]
    for i, g in enumerate(ranked[:top_n], 1):
        label = (g.label or "-").replace("|", "\\|")
        lines.append(f"| {i} | {g.column} | {label} | {_fmt(g.mean, g.std, g.n)} | {g.n} |")
    if len(ranked) > top_n:
        lines.append(f"\n{len(ranked) - top_n} more legal configuration(s) in summary.csv.")
    if record is not None:
        gap = ranked[0].mean - record["mean"]
        lines += ["", f"Best imported record: {record['source']} {_fmt(record['mean'], record.get('std'), record['n'])} "
                  f"({record['n']} seeds); the winner is {abs(gap):.5f} bpb {'above' if gap > 0 else 'below'} it."]
    return "\n".join(lines)


def best_record(tracking_uri: str) -> dict[str, Any] | None:
    """The imported record (runs tagged golf.kind=record, compliant, FINISHED, in any experiment)
    with the lowest seed-mean val_bpb: {"source", "mean", "std", "n"}; None when there is none."""
    from orchestrator.tracking.client import _query, all_experiment_ids, make_client, search_all

    client = make_client(tracking_uri)

    def query():
        return search_all(client, all_experiment_ids(client),
                          "tags.`golf.kind` = 'record' and tags.`golf.compliant` = 'true' "
                          "and attributes.status = 'FINISHED'")

    by: dict[str, list[float]] = {}
    for r in _query(tracking_uri, "listing imported records", query):
        v = r.data.metrics.get("val_bpb")
        if v is not None:
            by.setdefault(r.data.tags.get("golf.source", "?"), []).append(float(v))
    if not by:
        return None
    source, vals = min(by.items(), key=lambda kv: statistics.fmean(kv[1]))
    return {"source": source, "mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals)}
