"""Which score line of a record's log is the record's score, and is that seed legal?

A log prints several scores (`final_int6_sliding_window_exact`, then a TTT pass, ...); the last
one is not always the one the authors submitted (2026-04-04_SP4096_DepthRecurrence seed 42: its
last line, a TTT pass that made things worse, 1.33603, while submission.json states the sliding
window's 1.08939). So the score golf records is the line whose val_bpb matches the per-seed value
submission.json claims, at the precision the claim is written in.

A seed is judged by golf_core.rules like golf's own runs: artifact bytes, train time (the
track's 600 s with two average steps of slack), eval time. A number the log does not print cannot fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from golf_core import rules
from golf_core.logparse import LogSummary, parse_log_file

__all__ = ["RULINGS", "ScoreChoice", "SeedVerdict", "choose_score", "judge_seed", "matches_claim"]

# Published folders whose technique the organizers ruled out after the fact: nothing in their
# logs shows it, so the ruling is looked up by folder name (../shared/CONTEXT.md).
RULINGS = {
    "2026-03-25_BackoffNgramMixer_DriftFreeTTT_0.6683": f"PR #779: {rules.HASHED_REASON}",
}


@dataclass(frozen=True)
class ScoreChoice:
    summary: LogSummary  # the log summarized with the chosen line as its score
    tag: str | None
    how: str  # "claimed" | "last line" | "--score-tag"
    mismatch: str | None = None  # one sentence when the claim matches no line (or the tag is absent)


@dataclass(frozen=True)
class SeedVerdict:
    valid: bool
    compliant: bool
    reason: str | None
    checks: dict[str, rules.Check] = field(default_factory=dict)


def _decimals(x: float) -> int:
    text = repr(float(x))
    return len(text.split(".", 1)[1]) if "." in text and "e" not in text else 8


def matches_claim(value: float, claimed: float) -> bool:
    """`value` rounds to `claimed` at the claim's written precision (0.6663 matches 0.6663142)."""
    return abs(value - claimed) <= 0.5 * 10 ** -_decimals(claimed) + 1e-12


def choose_score(path: Path, summary: LogSummary, claimed: float | None = None,
                 score_tag: str | None = None) -> ScoreChoice:
    """The score line of `path` that golf records: the one `score_tag` names, else the one that
    matches `claimed` (an `_exact` line and a non-diagnostic one preferred, then the last), else
    the log's last score line with a `mismatch` saying so."""
    if score_tag is not None:
        if score_tag in summary.scores:
            return ScoreChoice(parse_log_file(path, score_tag=score_tag), score_tag, "--score-tag")
        seen = ", ".join(summary.scores) or "none"
        return ScoreChoice(summary, summary.final_tag, "last line",
                           f"no score line tagged {score_tag!r} (tags seen: {seen}); the last line is recorded")
    if claimed is None:
        return ScoreChoice(summary, summary.final_tag, "last line")
    hits = [tag for tag, (_loss, bpb) in summary.scores.items() if matches_claim(bpb, claimed)]
    if not hits:
        return ScoreChoice(summary, summary.final_tag, "last line",
                           f"submission.json claims val_bpb {claimed:g}; no score line matches "
                           f"(the last, {summary.final_tag}, is {summary.val_bpb:.8f})")

    def rank(item):
        i, tag = item
        return (not tag.lower().startswith("diagnostic"), tag.endswith("_exact"), i)

    tag = max(enumerate(hits), key=rank)[1]
    if tag == summary.final_tag:
        return ScoreChoice(summary, tag, "claimed")
    return ScoreChoice(parse_log_file(path, score_tag=tag), tag, "claimed")


def judge_seed(summary: LogSummary, ruling: str | None = None) -> SeedVerdict:
    """A record seed against the track's limits (golf_core.rules), as golf judges its own runs;
    `ruling` (RULINGS) makes it non-compliant whatever its numbers."""
    checks = {
        "artifact_bytes": rules.artifact_size(summary.artifact_bytes),
        "train_time": rules.train_time(summary.train_time_s, rules.TRAIN_CAP_S, step_avg_ms=summary.step_avg_ms),
        "eval_time": rules.eval_time(summary.eval_time_s, rules.EVAL_CAP_S),
        "val_bpb": rules.possible_score(summary.val_bpb, summary.val_loss),
    }
    failed = [f"{k}: {c.detail}" for k, c in checks.items() if c.passed is False]
    if ruling:
        checks["ruling"] = rules.Check(False, None, ruling)
        failed.append(f"ruled out: {ruling}")
    valid = not [k for k in failed if not k.startswith("ruled out")]
    return SeedVerdict(valid, not failed, "; ".join(failed) or None, checks)
