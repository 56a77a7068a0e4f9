"""`eval`: the neural pass (EvalConfig + TTTConfig) over a train job's artifact, on a per-GPU
worker that usually already holds the artifact. Ranks are not identity (docs/ARCHITECTURE.md)."""
from __future__ import annotations

from typing import Any

from golf_core import rules
from golf_core.eval.config import EvalConfig, TTTConfig
from orchestrator.kinds.base import JobKind
from orchestrator.kinds.identity import identity_of
from workers.contract import EvalJob
from workers.files import EVAL_FILES

__all__ = ["Eval", "identity"]


def identity(train_id: str, eval_cfg: EvalConfig, ttt: TTTConfig, code_version: str) -> str:
    return identity_of("eval", {"train": train_id, "eval": eval_cfg.identity_dump(),
                                "ttt": ttt.model_dump(mode="json")}, code_version)


class Eval(JobKind):
    name = "eval"
    job_type = EvalJob
    order = 1
    output_files = EVAL_FILES

    def submit(self, worker, attempt, dep, inputs, context, *, data_dir, vocab_size):
        return worker.run_eval.remote(attempt, dep, [inputs], data_dir)

    def score_column(self, job: Any) -> str:
        return "neural"

    def judge_kind(self, job, result, compliant, reasons, upstream):
        t = rules.eval_time(result.get("eval_time_s"), job.eval.max_eval_seconds or 0.0)
        if t.passed is False:
            reasons.append(f"eval_time_s {t.detail}")
        comp = result.get("compliance")
        if compliant is False and isinstance(comp, dict):
            failed = [n for n, c in (comp.get("checks") or {}).items() if not c.get("passed", True)]
            reasons.append("audit failed: " + (", ".join(failed) or "not compliant"))
        return compliant

    def estimate_s(self, job: Any, ctx: Any) -> float:
        from orchestrator.plan.estimate import STARTUP_CPU_S, STARTUP_GPU_S, TILT_HINT_RATE, _on_gpu, \
            approx_params, eval_seconds

        run = ctx.runs[job.deps[0]]
        ctx.runs[job.identity] = run
        ev, gpu = job.eval, _on_gpu(run)
        return eval_seconds(approx_params(run.model), ev, job.ttt, ctx.tokens, job.ranks, gpu) + \
            (STARTUP_GPU_S if gpu else STARTUP_CPU_S) + len(ev.tilt_tables) * ctx.tokens / TILT_HINT_RATE
