"""What a job kind is: the one object that knows a kind's scheduling, worker call, files, rules,
scores and names (issue 16). The rest of golf asks the job's kind (`orchestrator.kinds.of(job)`)
instead of comparing kind strings, so a new kind is one module and one `register` call.

Shaped like Ray Tune's Trainable / marin's ExecutorStep: a small class with a few attributes and
methods that the generic machinery (plan, scheduler, driver, tracking) calls at its seams.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping

from golf_core import rules

__all__ = ["JobKind", "Placement"]

# where a job of the kind runs: "gang" = a group of ranks of its own (a placement group; a script
# job's one actor holding all its GPUs), "worker" = a long-lived per-GPU worker (one per GPU, or
# per CPU without GPUs) that keeps its inputs for the next job
Placement = Literal["gang", "worker"]


class JobKind:
    """A job kind. Subclasses set the class attributes and override what differs.

    Attributes:
    - name: the registry key (`optuna_mix` shares its jobs' `kind` "mix" for identities and
      MLflow's golf.kind tag; the registry looks kinds up by job class, never by that string).
    - job_type: the workers.contract dataclass of its jobs.
    - order: dispatch priority, lower first (the head of the longest chain starts first).
    - trains: it trains a model: a train.log, a streamed curve, a train-time rule, a node-size check.
    - short: milliseconds per job (a mix point): several queue on the worker holding their input,
      batched by input, and their outputs are read by no other job.
    - needs_input: it runs on its first dependency's output files.
    - output_files: the files its dependents (or a reuse) fetch from the MLflow artifact store.
    - stops_gracefully: a stop kills its processes and waits for its partial files (a script's
      train.log); otherwise its worker or gang is released at once.
    - streams_log: its curve comes from its own log lines (a script's train.log), drained from
      its running actor (orchestrator.run.script_live); golf_core's loop reports progress events.
    - mixer: it scores a mixer config over an eval's token stats.
    """
    name: ClassVar[str]
    job_type: ClassVar[type]
    order: ClassVar[int] = 3
    trains: ClassVar[bool] = False
    short: ClassVar[bool] = False
    needs_input: ClassVar[bool] = True
    output_files: ClassVar[tuple[str, ...]] = ("result.json",)
    stops_gracefully: ClassVar[bool] = False
    streams_log: ClassVar[bool] = False  # its curve is its own log's lines, drained while it runs
    # result keys logged as MLflow metrics (ARCHITECTURE.md "MLflow layout"); the built-in kinds
    # share one list (a result only holds its own), a new kind adds its own
    metric_keys: ClassVar[tuple[str, ...]] = (
        "val_bpb", "val_loss", "val_bpb_prequant", "val_loss_prequant", "artifact_bytes", "code_bytes",
        "model_bytes", "train_time_s", "eval_time_s", "tokens_per_s", "steps", "step_avg_ms",
        "peak_mem_bytes", "ratio_scored", "tokens_scored", "mix_time_s", "ngram_passes", "world_size",
        "tilt_gated", "tilt_hits", "tilt_hint_time_s",  # tilt mode (#2135): how often it fires / is right
    )
    mixer: ClassVar[bool] = False  # it scores a mixer over an eval's token stats (summary grouping, plots)

    # ------------------------------------------------------------------ scheduling
    def placement(self, job: Any, use_gpus: bool) -> Placement:
        return "worker"

    def gang_shape(self, job: Any, use_gpus: bool) -> tuple[int, float]:
        """(actors, CPUs per actor) of its gang: one actor per rank by default."""
        return (job.ranks or 1), 1.0

    def worker_context(self, job: Any, jobs: Mapping[str, Any]) -> int | None:
        """What its worker call needs from the plan beyond the job (a mix: its eval's chunk size)."""
        return None

    def submit(self, worker: Any, attempt: Any, dep: str | None, inputs: Any, context: Any, *,
               data_dir: str, vocab_size: int) -> Any:
        """Call the worker's entry point for one attempt (a Ray actor method); returns its ref."""
        raise NotImplementedError(f"{self.name} jobs do not run on a worker")

    def batch_key(self, job: Any) -> tuple | None:
        """Jobs of equal key may run as one worker call (`submit_batch`); None: never batched."""
        return None

    def submit_batch(self, worker: Any, attempts: list, dep: str, inputs: Any, context: Any, *,
                     data_dir: str, vocab_size: int) -> list:
        """One worker call for a batch of equal `batch_key`: one ref per attempt."""
        raise NotImplementedError(f"{self.name} jobs are not batched")

    def attempt_files(self, job: Any) -> dict[str, bytes] | None:
        """Files an attempt carries to its worker (a script job's code, checked against the plan)."""
        return None

    # ------------------------------------------------------------------ results
    def score_column(self, job: Any) -> str:
        """The summary table's column its score goes under."""
        return self.name

    def judge_kind(self, job: Any, result: dict, compliant: bool | None, reasons: list[str],
                   upstream: Any = None) -> bool | None:
        """The kind's own validity rules (golf_core.rules): append reasons; return the compliance
        decision from the audit's (`compliant`, None: none) and its input's verdict (`upstream`).
        Called by orchestrator.run.validity.judge."""
        return compliant

    def train_time_rule(self, job: Any, result: dict, reasons: list[str], cap: float | None) -> None:
        t = rules.train_time(result.get("train_time_s"), cap, step_avg_ms=result.get("step_avg_ms"))
        if t.passed is False:
            reasons.append(f"train_time_s {t.detail}")

    def estimate_s(self, job: Any, ctx: Any) -> float:
        """Worst-case seconds of one job (orchestrator.plan.estimate)."""
        raise NotImplementedError

    def label(self, job: Any) -> str:
        """What `golf plan` shows for a part of the sweep (a mix: its mode)."""
        return self.name

    def curve_label(self, job: Any) -> str:
        """A training job's label in the sweep's train-loss plot."""
        return str(job.name)

    def row_fields(self, job: Any) -> dict[str, Any]:
        """Extra summary.csv columns of its jobs (a mix: its mixer fields)."""
        return {}

    def run_name(self, path: str) -> str | None:
        """The MLflow run name of a job whose plan path is `path` (None: the generic rule)."""
        return None

    def __repr__(self) -> str:
        return f"<job kind {self.name}>"
