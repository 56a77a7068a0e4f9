"""`script_train`: a user's own train_gpt.py under torchrun (workers.script_runner).

Always a gang of ONE actor holding all the job's GPUs: torchrun starts the ranks. Stopping it
kills the script's process tree and waits for its partial train.log (issue 17).
"""
from __future__ import annotations

from typing import Any

from orchestrator.kinds.base import JobKind, Placement
from workers.contract import ScriptTrainJob

__all__ = ["ScriptTrain"]


class ScriptTrain(JobKind):
    name = "script_train"
    job_type = ScriptTrainJob
    order = 0
    trains = True
    needs_input = False
    output_files = ("result.json", "train.log")
    stops_gracefully = True
    streams_log = True

    def placement(self, job: Any, use_gpus: bool) -> Placement:
        return "gang"

    def gang_shape(self, job: Any, use_gpus: bool) -> tuple[int, float]:
        # without GPUs its N gloo ranks need N CPUs, all on the one actor
        return 1, (float(job.ranks or 1) if not use_gpus else 1.0)

    def attempt_files(self, job: Any) -> dict[str, bytes]:
        from orchestrator.plan.script import script_files  # read now: raises when the script changed

        return script_files(job)

    def score_column(self, job: Any) -> str:
        return "script"  # the user's train_gpt.py scores itself

    def judge_kind(self, job, result, compliant, reasons, upstream):
        if result.get("val_bpb") is None:  # the script never scored itself
            reasons.append(str(result.get("no_score") or "no score line in train.log"))
        self.train_time_rule(job, result, reasons, job.max_wallclock_seconds or None)
        return compliant

    def estimate_s(self, job: Any, ctx: Any) -> float:
        from orchestrator.plan.estimate import STARTUP_CPU_S, STARTUP_GPU_S

        cap = job.max_wallclock_seconds  # its cap, else the rules' 600 s
        return (float(cap) if cap else 600.0) + (STARTUP_GPU_S if job.gpus else STARTUP_CPU_S)

    def run_name(self, path: str) -> str | None:
        parts = path.split("/")
        if len(parts) >= 2 and parts[0] == "script" and parts[1][:1] == "s" and parts[1][1:].lstrip("-").isdigit():
            # `script/s42/MATRIX_LR=0.022,NUM_LAYERS=11` -> `MATRIX_LR=0.022 NUM_LAYERS=11 s42`
            return " ".join([p.replace(",", " ") for p in parts[2:]] + [parts[1]])
        return None
