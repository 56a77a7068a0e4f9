"""The job contract between the orchestrator and the workers: what a job is, what a worker is
handed to run one attempt of it, and what comes back.

One frozen dataclass per job kind, built with keywords (orchestrator.plan.build and
orchestrator.plan.script make them; a worker reads typed attributes, never a dict):

| class | kind | what it runs |
|---|---|---|
| `TrainJob` | train | golf_core.train on a RunConfig (a preset + overrides) |
| `ScriptTrainJob` | script_train | a user's train_gpt.py under torchrun |
| `EvalJob` | eval | the neural pass (EvalConfig + TTTConfig) over a train job's artifact |
| `MixJob` | mix | the n-gram pass + one MixerConfig over an eval job's token stats |
| `OptunaMixJob` | mix | an Optuna search over mixer fields on an eval job's token stats |

Identities hash each kind's own payload (orchestrator.kinds.<kind>.identity) and MLflow shows
`job.params` (flat dotted keys the plan makes); code reads the typed fields.

Importable by workers: imports golf_core's pydantic configs only (never orchestrator, ray,
mlflow), so an actor unpickling a job needs nothing from the driver's side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig
from golf_core.presets import RunConfig

__all__ = ["Attempt", "EvalJob", "Job", "JobBase", "JobFailed", "job_class", "JobResult", "KINDS", "MixJob", "OptunaMixJob",
           "OptunaSpace", "ScriptRef", "ScriptTrainJob", "TrainJob", "WorkerLost"]

KINDS: tuple[str, ...] = ("train", "eval", "mix", "script_train")


def _identity_hash(self: Any) -> int:  # the identity is the job (its configs hold dicts)
    return hash(self.identity)


def job_class(cls: type) -> type:
    """A frozen, keyword-only job dataclass hashed by its identity (a dataclass decorator
    would otherwise hash every field, and dict fields are unhashable). A new job kind's class
    subclasses JobBase with this decorator (orchestrator.kinds)."""
    cls = dataclass(frozen=True, kw_only=True)(cls)
    cls.__hash__ = _identity_hash  # type: ignore[method-assign]
    return cls


_job = job_class


@_job
class JobBase:
    kind: ClassVar[str]
    identity: str
    name: str
    deps: tuple[str, ...] = ()  # identities this job needs finished first
    seed: int = 0  # the training seed the job descends from
    gpus: int = 0  # GPUs the whole job needs (one per rank on GPU; 0 on CPU)
    ranks: int = 1  # processes (torch.distributed world size)
    params: dict[str, str] = field(default_factory=dict)  # flat dotted keys for MLflow


@_job
class TrainJob(JobBase):
    kind: ClassVar[str] = "train"
    run: RunConfig


@dataclass(frozen=True, kw_only=True)
class ScriptRef:
    """Where a script job's code is and what it must hash to (the files travel with the job)."""
    path: str  # the bundle's root (the record folder, or the script's folder)
    entry: str  # the file torchrun runs, relative to the root
    sha256: str  # over every file's relative path and sha256 (orchestrator.plan.script)
    files: int
    folder: bool


@_job
class ScriptTrainJob(JobBase):
    kind: ClassVar[str] = "script_train"
    script: ScriptRef
    env: dict[str, str]  # resolved: golf's values overridden by the user's, all strings
    nproc: int
    score_tag: str | None = None
    max_wallclock_seconds: float | None = None
    timeout_s: float = 0.0
    trial: int | None = None  # an Optuna trial's number (its env came from the study)
    study: str | None = None  # that study's identity (orchestrator.plan.script.EnvStudy)
    # names of the worker's environment variables the script may also see (`train.pass_env`;
    # not identity: credentials and the like, whose values never change a result)
    pass_env: tuple[str, ...] = ()
    stage: str | None = None  # a staged sweep's stage (orchestrator.plan.stages): part of its identity


@_job
class EvalJob(JobBase):
    kind: ClassVar[str] = "eval"
    eval: EvalConfig
    ttt: TTTConfig


@_job
class MixJob(JobBase):
    kind: ClassVar[str] = "mix"
    mixer: MixerConfig

    @property
    def mode(self) -> str:
        return self.mixer.mode


@dataclass(frozen=True, kw_only=True)
class OptunaSpace:
    n: int  # trials
    seed: int  # TPESampler's seed
    space: dict[str, dict[str, Any]]  # field -> {low, high, log} | {choices}


@_job
class OptunaMixJob(JobBase):
    kind: ClassVar[str] = "mix"
    mixer_base: dict[str, Any]  # the MixerConfig fields every trial shares (mode included)
    optuna: OptunaSpace

    @property
    def mode(self) -> str:
        return str(self.mixer_base.get("mode") or "none")


Job = Union[TrainJob, ScriptTrainJob, EvalJob, MixJob, OptunaMixJob]


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One attempt of a job as a worker gets it: the job and what the driver adds to it."""
    job: Job
    attempt: int = 1
    tokenizer: str | None = None  # data.tokenizer_path (else found from the data dir)
    script_files: dict[str, bytes] | None = None  # a script job's files, checked against job.script.sha256


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """What a worker returns for one attempt.

    `failed`: the job ran and failed in a way a rerun would repeat (a script that exited
    non-zero): the driver ends the run FAILED, keeping its files (train.log) as artifacts."""
    result: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    wall_s: float | None = None
    out_dir: str | None = None
    ranks: list[dict] = field(default_factory=list)  # each rank's hello (pid, node, GPUs)
    placement: dict[str, Any] = field(default_factory=dict)
    actor_pid: int | None = None
    failed: str | None = None

    def info(self) -> dict[str, Any]:
        """Everything but the files (JobOutcome.output: where and how the job ran)."""
        out = {"result": self.result, "wall_s": self.wall_s, "out_dir": self.out_dir, "ranks": self.ranks,
               "placement": self.placement, "actor_pid": self.actor_pid}
        return {k: v for k, v in out.items() if v is not None}


class WorkerLost(RuntimeError):
    """The process running the job went away (a killed actor, a dead rank): rerun it."""


class JobFailed(RuntimeError):
    """The job itself raised: a rerun would raise again. The message is one line."""
