"""`train`: golf_core's training loop on a RunConfig (a preset + overrides).

1 rank with at most one GPU runs on a per-GPU worker (its eval usually follows there without a
process start); more ranks run as a gang, one actor per rank (workers.gang.TrainGang).
"""
from __future__ import annotations

from typing import Any

from golf_core.presets import RunConfig
from orchestrator.kinds.base import JobKind, Placement
from orchestrator.kinds.identity import identity_of
from workers.contract import TrainJob
from workers.files import TRAIN_FILES

__all__ = ["Train", "identity"]


def identity(run: RunConfig, ranks: int, data_identity: str, code_version: str) -> str:
    """The resolved RunConfig, the ranks (under a wallclock cap the step count depends on them,
    and the reduction order changes the weights) and the data."""
    return identity_of("train", {"run": run.model_dump(mode="json"), "ranks": ranks, "data": data_identity},
                       code_version)


class Train(JobKind):
    name = "train"
    job_type = TrainJob
    order = 0
    trains = True
    needs_input = False
    output_files = TRAIN_FILES

    def placement(self, job: Any, use_gpus: bool) -> Placement:
        one = (job.ranks or 1) == 1 and (not use_gpus or (job.gpus or 0) <= 1)
        return "worker" if one else "gang"

    def submit(self, worker, attempt, dep, inputs, context, *, data_dir, vocab_size):
        return worker.train.remote(attempt, data_dir)

    def score_column(self, job: Any) -> str:
        return "model"

    def curve_label(self, job: Any) -> str:
        return f"s{job.seed}"

    def judge_kind(self, job, result, compliant, reasons, upstream):
        self.train_time_rule(job, result, reasons, job.run.train.max_wallclock_seconds or None)
        return compliant

    def estimate_s(self, job: Any, ctx: Any) -> float:
        from orchestrator.plan.estimate import train_seconds

        ctx.runs[job.identity] = job.run
        return train_seconds(job.run, job.ranks, ctx.tokens)
