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
from workers.contract import Job, TrainJob

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
    kind = job.kind
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
    if kind == "script_train" and result.get("val_bpb") is None:  # the script never scored itself
        reasons.append(str(result.get("no_score") or "no score line in train.log"))
    if kind in ("train", "script_train"):
        cap = (job.run.train.max_wallclock_seconds if isinstance(job, TrainJob) else job.max_wallclock_seconds) or None
        t = rules.train_time(result.get("train_time_s"), cap, step_avg_ms=result.get("step_avg_ms"))
        if t.passed is False:
            reasons.append(f"train_time_s {t.detail}")
    if kind == "eval":
        t = rules.eval_time(result.get("eval_time_s"), job.eval.max_eval_seconds or 0.0)
        if t.passed is False:
            reasons.append(f"eval_time_s {t.detail}")
    compliant = None
    comp = result.get("compliance")
    if isinstance(comp, dict) and "compliant" in comp:
        compliant = bool(comp["compliant"])
        if kind == "eval" and not compliant:
            failed = [n for n, c in (comp.get("checks") or {}).items() if not c.get("passed", True)]
            reasons.append("audit failed: " + (", ".join(failed) or "not compliant"))
    if kind == "mix":
        legal_mode = rules.mixer_mode(job.mode).passed
        own = legal_mode if compliant is None else compliant and legal_mode
        compliant = own and (upstream.compliant if upstream and upstream.compliant is not None else True)
    if upstream is not None and not upstream.valid:
        reasons.append(f"upstream invalid ({upstream.reason})")
    return Verdict(valid=not reasons, reason="; ".join(reasons) or None, compliant=compliant, blocks_dependents=blocks)
