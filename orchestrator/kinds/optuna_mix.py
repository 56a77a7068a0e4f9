"""`optuna_mix`: an Optuna search over mixer fields on one eval's token stats, run by the worker
that holds them (ask/tell trials of a few milliseconds each: workers.worker.run_optuna).
Its jobs' `kind` is "mix" (identities and MLflow's golf.kind stay those of a mix job)."""
from __future__ import annotations

from typing import Any

from orchestrator.kinds.identity import identity_of
from orchestrator.kinds.mix import MixKind
from workers.contract import OptunaMixJob

__all__ = ["OptunaMix", "identity"]


def identity(eval_id: str, study: dict[str, Any], code_version: str) -> str:
    """The eval identity + {"mixer_base", "optuna": {n, seed, space}}."""
    return identity_of("mix", {"eval": eval_id, "config": study}, code_version)


class OptunaMix(MixKind):
    name = "optuna_mix"
    job_type = OptunaMixJob

    def mixer_dump(self, job: Any) -> dict[str, Any]:
        return dict(job.mixer_base)

    def score_column(self, job: Any) -> str:
        return f"{job.mode}_optuna"

    def label(self, job: Any) -> str:
        return f"{job.mode} (optuna)"

    def estimate_s(self, job: Any, ctx: Any) -> float:
        from orchestrator.plan.estimate import _on_gpu, _optuna_seconds

        run = ctx.runs[job.deps[0]]
        return _optuna_seconds(job, ctx.tokens, run.model.vocab_size, _on_gpu(run))
