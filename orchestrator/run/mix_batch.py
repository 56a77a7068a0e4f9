"""Mix jobs of one eval and one n-gram table key dispatched together (issue 21).

A mix point costs milliseconds on a worker that holds its eval's stats and n-gram pass; sent
one Ray call at a time, the driver's round trip, the audit and the tracking calls around it
cost ten times the math. Here the Scheduler hands one worker a batch: the READY MixJobs that
share the first one's input (the eval) and table key (MixerConfig.table_key()), in plan order,
in one call (Worker.run_mix_batch, num_returns = one ObjectRef per job). Every job keeps its
own attempt, ref, result, identity and MLflow run; the scheduler's per-ref bookkeeping is
unchanged. Batches are split across the idle workers (each then makes its own n-gram pass) and
bounded, so results stream back while the next batch computes (actor_depth batches queue per
worker).
"""
from __future__ import annotations

import math
from typing import Any

from orchestrator import kinds

__all__ = ["MAX_BATCH", "MIN_SPLIT", "batchable", "mates", "start"]

MAX_BATCH = 64  # points per call: ~0.1-1 s of work, so results flow back while the next batch runs
MIN_SPLIT = 16  # below this many points per worker, a second n-gram pass costs more than it saves


def batchable(sched: Any, out: Any) -> bool:
    """Does its kind batch (orchestrator.kinds: JobKind.batch_key), and can the launcher?"""
    return _key(out.job) is not None and hasattr(sched.launcher, "run_batch_on")


def _key(job: Any) -> tuple | None:
    return kinds.of(job).batch_key(job)


def mates(sched: Any, out: Any, slot: Any) -> list:
    """`out` and the READY MixJobs that may ride with it on `slot` (same eval, same table key)."""
    from orchestrator.run.scheduler import JobState

    key = _key(out.job)
    same = [o for o in sched.outcomes.values() if o.state == JobState.READY and o is not out
            and _key(o.job) == key]
    same.sort(key=lambda o: sched.order[o.job.identity])
    others_idle = sum(1 for s in sched.slots if s is not slot and not s.inflight)
    n = 1 + len(same)
    share = n if others_idle == 0 else max(MIN_SPLIT, math.ceil(n / (1 + others_idle)))
    return [out] + same[:max(0, min(MAX_BATCH, share) - 1)]


def start(sched: Any, out: Any, slot: Any, dep: str, inputs: Any, chunk: int, extra: dict) -> bool:
    """Start `out` and its mates on `slot` as one call; True (out started)."""
    batch = mates(sched, out, slot)
    attempts = [sched._attempt(o, extra) for o in batch]
    refs = sched.launcher.run_batch_on(slot.worker, attempts, dep, inputs, chunk)
    call = refs[0]
    slot.keys.add(dep)
    for o, ref in zip(batch, refs):
        slot.inflight.add(ref)
        slot.call_of[ref] = call  # one call: it counts once against actor_depth
        slot.keys.add(o.job.identity)
        sched.inflight[ref] = ("slot", slot, o.job.identity)
    return True
