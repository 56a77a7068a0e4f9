"""The job-kind registry (issue 16): one module per kind, one `JobKind` object each.

    from orchestrator import kinds
    kinds.of(job).placement(job, use_gpus)    # instead of `if job.kind == "train": ...`

Kinds are looked up by the job's class (workers.contract), never by the `kind` string, which
is what identities hash and MLflow's golf.kind tag shows (an Optuna mix job's is "mix").
Nothing outside this package compares kind strings (tests/orchestrator/test_kinds.py greps).

A new kind: a job dataclass (workers.contract-style, frozen, keyword-only), a JobKind subclass
with its scheduling class, worker call, files, rules and score column, and `register(Kind())`.
"""
from __future__ import annotations

from typing import Any, Iterator

from orchestrator.kinds.base import JobKind, Placement
from orchestrator.kinds.eval import Eval
from orchestrator.kinds.mix import Mix
from orchestrator.kinds.optuna_mix import OptunaMix
from orchestrator.kinds.script_train import ScriptTrain
from orchestrator.kinds.train import Train

__all__ = ["JobKind", "Placement", "all_kinds", "named", "of", "names", "register", "unregister"]

_BY_TYPE: dict[type, JobKind] = {}
_BY_NAME: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Add a kind (its job class must be new). Returns it."""
    if kind.job_type in _BY_TYPE or kind.name in _BY_NAME:
        raise ValueError(f"job kind {kind.name!r} ({kind.job_type.__name__}) is already registered")
    _BY_TYPE[kind.job_type] = kind
    _BY_NAME[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests registering a toy kind)."""
    kind = _BY_NAME.pop(name)
    _BY_TYPE.pop(kind.job_type, None)


def of(job: Any) -> JobKind:
    """The kind of a job (by its class)."""
    try:
        return _BY_TYPE[type(job)]
    except KeyError:
        raise ValueError(f"job {getattr(job, 'name', job)!r}: {type(job).__name__} is not a registered job kind") \
            from None


def named(name: str) -> JobKind:
    return _BY_NAME[name]


def names() -> frozenset[str]:
    return frozenset(_BY_NAME)


def all_kinds() -> Iterator[JobKind]:
    return iter(list(_BY_NAME.values()))


for _k in (Train(), ScriptTrain(), Eval(), Mix(), OptunaMix()):
    register(_k)
