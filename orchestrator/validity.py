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

from golf_core import ARTIFACT_LIMIT_BYTES

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reason: str | None = None
    compliant: bool | None = None
    blocks_dependents: bool = False  # nothing downstream can use this output


def _bad(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isfinite(float(x))


def judge(kind: str, config: dict, result: dict, upstream: Verdict | None = None) -> Verdict:
    reasons: list[str] = []
    blocks = False
    for key in ("val_loss", "val_bpb", "val_loss_prequant", "val_bpb_prequant"):
        if _bad(result.get(key)):
            reasons.append(f"{key} is not finite")
            blocks = True
    curve = result.get("train_loss_curve") or []
    if any(_bad(v) for _, v in curve):
        reasons.append("train_loss is not finite")
        blocks = True
    size = result.get("artifact_bytes")
    if result.get("over_limit") or (isinstance(size, (int, float)) and size > ARTIFACT_LIMIT_BYTES):
        reasons.append(f"artifact {size} bytes > {ARTIFACT_LIMIT_BYTES}")
    if kind == "script_train" and result.get("val_bpb") is None:  # the script never scored itself
        reasons.append(str(result.get("no_score") or "no score line in train.log"))
    if kind in ("train", "script_train"):
        cap = float(((config.get("run") or {}).get("train") or {}).get("max_wallclock_seconds")
                    or config.get("max_wallclock_seconds") or 0.0)
        spent = result.get("train_time_s")
        # the wallclock stop lands at most one step past the cap (upstream checks after a step)
        slack = float(result.get("step_avg_ms") or 0.0) / 1000.0
        if cap > 0 and isinstance(spent, (int, float)) and spent > cap + slack:
            reasons.append(f"train_time_s {spent:.1f} > cap {cap:.0f}")
    if kind == "eval":
        cap = float((config.get("eval") or {}).get("max_eval_seconds") or 0.0)
        spent = result.get("eval_time_s")
        if cap > 0 and isinstance(spent, (int, float)) and spent > cap:
            reasons.append(f"eval_time_s {spent:.1f} > cap {cap:.0f}")
    compliant = None
    comp = result.get("compliance")
    if isinstance(comp, dict) and "compliant" in comp:
        compliant = bool(comp["compliant"])
        if kind == "eval" and not compliant:
            failed = [n for n, c in (comp.get("checks") or {}).items() if not c.get("passed", True)]
            reasons.append("audit failed: " + (", ".join(failed) or "not compliant"))
    if kind == "mix":
        mode = ((config.get("mixer") or config.get("mixer_base") or {}).get("mode")) or "none"
        # #779's hashed-target estimator is never a distribution over the vocabulary (C2)
        own = compliant if compliant is not None else mode != "hashed_target"
        compliant = own and (upstream.compliant if upstream and upstream.compliant is not None else True)
    if upstream is not None and not upstream.valid:
        reasons.append(f"upstream invalid ({upstream.reason})")
    return Verdict(valid=not reasons, reason="; ".join(reasons) or None, compliant=compliant, blocks_dependents=blocks)
