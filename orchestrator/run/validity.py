"""Is a finished job's result a valid one? (NaN loss, artifact over the limit, audit, time caps.)

An invalid result is still recorded: its run ends FINISHED with tags golf.valid=false and
golf.reason, so a resume does not rerun it and the sweep goes on. Dependents of a NaN model
are skipped (nothing to evaluate); dependents of an over-limit or over-time artifact still run,
since their numbers are informative, and inherit golf.valid=false with the upstream reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from golf_core import rules
from orchestrator import kinds
from workers.contract import Job

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str | None = None
    compliant: bool | None = None
    blocks_dependents: bool = False  # nothing downstream can use this output


def _bad(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isfinite(float(x))


def judge(job: Job, result: dict, upstream: Verdict | None = None) -> Verdict:
    """The verdict on `job`'s result (its caps read from the typed job, workers.contract)."""
    reasons: list[str] = []
    blocks = False
    for key in ("val_loss", "val_bpb", "val_loss_prequant", "val_bpb_prequant"):
        if _bad(result.get(key)):
            reasons.append(f"{key} is not finite")
            blocks = True
    if not blocks:  # finite, but a number no model reaches (a script printing `val_bpb:-3.5`)
        score = rules.possible_score(result.get("val_bpb"), result.get("val_loss"))
        if score.passed is False:
            reasons.append(score.detail)
    curve = result.get("train_loss_curve") or []
    if any(_bad(v) for _, v in curve):
        reasons.append("train_loss is not finite")
        blocks = True
    size = rules.artifact_size(result.get("artifact_bytes"), over_limit=bool(result.get("over_limit")))
    if size.passed is False:
        reasons.append(f"artifact {size.value} bytes > {rules.ARTIFACT_LIMIT_BYTES}")
    compliant = None
    comp = result.get("compliance")
    if isinstance(comp, dict) and "compliant" in comp:
        compliant = bool(comp["compliant"])
    # the kind's own rules (orchestrator.kinds: a script's score line, train and eval time caps,
    # an eval's audit, a mix mode's legality), all decided by golf_core.rules
    compliant = kinds.of(job).judge_kind(job, result, compliant, reasons, upstream)
    if upstream is not None and not upstream.valid:
        reasons.append(f"upstream invalid ({upstream.reason})")
    return Verdict(valid=not reasons, reason="; ".join(reasons) or None, compliant=compliant, blocks_dependents=blocks)
