"""Sweep spec files: YAML → `Sweep` (frozen pydantic), checked before any expensive work.

Every section maps onto golf_core's own configs, so a field is checked by the same code that
uses it (MixerConfig checks buckets, orders, alphas; the RunConfig built from the preset checks
the overrides). Every problem is one line naming the full field path, e.g.
`mixer.buckets[1]: must be a power of two (got 1000)` (orchestrator.spec.io).

Sections: name, description, data, train, eval, mixer (orchestrator.spec.mixer_space), search,
(prune, budget, stages: orchestrator.spec.spend),
retries, limits.
- `name` is a slug ([a-z0-9][a-z0-9._-]*): it names the MLflow experiment and work dirs, and
  cannot hold a path separator.
- `data.path` is relative to the workspace and may not contain `..`; an absolute path (a shared
  dataset on a cluster) needs `data.external: true`. No `~`/`$` expansion. `golf plan|run` also
  refuse a relative path that resolves outside the workspace through a symlink
  (orchestrator.plan.datasets.resolve_data_dir) unless `data.external: true`.
- Every number is range-checked here, before any work: floats finite, ints bounded, seeds in
  0..2^32-1, booleans never numbers (golf_core.config.Frozen).
- `train`: preset + nested overrides (model/train/quant/eval), seeds, gpus_per_job (ranks),
  max_wallclock_seconds. `eval`: one EvalConfig (+ `ttt`, `gpus_per_job`) or a list of them.
- `limits.max_jobs` bounds train + eval + mix jobs; grids larger than MAX_EXPANSION are refused
  before they are enumerated.
"""
from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationError, WithJsonSchema
from pydantic import field_validator, model_validator

from golf_core.config import MAX_SEED, Frozen, deep_merge
from golf_core.data.config import DataConfig
from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig
from golf_core.presets import PRESETS, RunConfig
from orchestrator.spec.mixer_space import (
    FLOAT_AXES, GridSearch, MixerSpec, Range, Search, eval_groups,
    expand_points, nonempty, optuna_studies, point_error, upper_points, varying_axes,
)
from orchestrator.spec.script import ScriptTrainSpec, check_script_sweep, script_counts
from orchestrator.spec.spend import BudgetSpec, PruneSpec, StageSpec, check_spend
from orchestrator.spec.io import SpecError, error_message, fail, format_errors, parse_yaml, read_spec  # noqa: F401

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"  # matched whole (re.fullmatch: no trailing newline)
MAX_EXPANSION = 100_000  # refuse to even enumerate a grid larger than this
MAX_RANKS = 4096  # GPUs per job


# ---------------------------------------------------------------------------------------------
# data, train, eval, limits


class DataSpec(DataConfig):
    """DataConfig plus `external`: allow a path outside the workspace (absolute or with ..)."""

    external: bool = Field(False, description="allow a path outside the workspace (absolute, or with ..)")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if len(v) > 4096 or "\0" in v:
            raise ValueError(f"not a usable path (NUL byte or over 4096 characters, got {v[:40]!r}...)")
        if "$" in v or v.startswith("~"):
            raise ValueError(f"no ~ or $ expansion in specs (got {v!r})")
        return v

    @field_validator("tokenizer_path")
    @classmethod
    def _tokenizer_path(cls, v: str | None) -> str | None:
        if v is not None and ("$" in v or v.startswith("~") or not v.strip()):
            raise ValueError(f"a non-empty path without ~ or $ expansion (got {v!r})")
        return v

    @model_validator(mode="after")
    def _inside(self) -> "DataSpec":
        for field, v in (("path", self.path), ("tokenizer_path", self.tokenizer_path)):
            p = PurePosixPath(v) if v is not None else None
            if p is not None and not self.external and (p.is_absolute() or ".." in p.parts):
                fail([((field,), f"{v!r} leaves the workspace (set data.external: true to allow it)")], "DataSpec")
        return self

    def data_config(self) -> DataConfig:
        """The DataConfig the plan carries (path normalized: `./data//x` -> `data/x`)."""
        dump = self.model_dump(exclude={"external"})
        dump["path"] = str(PurePosixPath(self.path))
        if self.tokenizer_path is not None:
            dump["tokenizer_path"] = str(PurePosixPath(self.tokenizer_path))
        return DataConfig(**dump)


def _partial_schema(model: type[Frozen]) -> dict:
    """`model`'s JSON schema with refs inlined and nothing required: the overrides' schema."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].split("/")[-1]])
            return {k: walk(v) for k, v in node.items() if k not in ("required", "default", "title")}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    return walk(schema)


class TrainSpec(Frozen):
    preset: Literal[tuple(PRESETS)] = Field(description="the RunConfig to start from")  # type: ignore[valid-type]
    # nested {section: {key: value}} over the preset: model / train / quant / eval
    overrides: Annotated[dict[str, Any], WithJsonSchema(_partial_schema(RunConfig))] = Field(
        {}, description="nested {model|train|quant|eval: {key: value}} edits of the preset")
    seeds: Annotated[tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...], AfterValidator(nonempty)] = Field(
        description="one training job per seed", max_length=10_000)
    gpus_per_job: int = Field(1, ge=1, le=MAX_RANKS, description="ranks per training job (8 on an 8-GPU node; 1-2 on CPU)")
    max_wallclock_seconds: float | None = Field(None, ge=0, le=10**8, description="training cap; null = the preset's")

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        seen = set()
        for i, s in enumerate(v):
            if s in seen:
                fail([((i,), f"duplicate seed {s}")], "seeds")
            seen.add(s)
        return v

    @model_validator(mode="after")
    def _resolve(self) -> "TrainSpec":
        errors = []
        tr = self.overrides.get("train")
        if isinstance(tr, dict) and "seed" in tr:
            errors.append((("overrides", "train", "seed"), "set by train.seeds"))
        if isinstance(tr, dict) and "max_wallclock_seconds" in tr and self.max_wallclock_seconds is not None:
            errors.append((("max_wallclock_seconds",), "also set in train.overrides.train.max_wallclock_seconds"))
        if errors:
            fail(errors, "TrainSpec")
        try:
            run = self.run_config(self.seeds[0])
        except ValidationError as e:
            fail([(("overrides", *err["loc"]), error_message(err)) for err in e.errors()], "TrainSpec")
        if run.train.micro_batches % self.gpus_per_job:
            fail([(("gpus_per_job",), f"{self.gpus_per_job} ranks do not divide train.micro_batches "
                                      f"{run.train.micro_batches}")], "TrainSpec")
        return self

    def run_config(self, seed: int) -> RunConfig:
        """The resolved RunConfig of the training job for `seed` (raises ValidationError)."""
        train: dict[str, Any] = {"seed": seed}
        if self.max_wallclock_seconds is not None:
            train["max_wallclock_seconds"] = self.max_wallclock_seconds
        tree = deep_merge(deep_merge(PRESETS[self.preset], self.overrides), {"train": train})
        return RunConfig.model_validate(tree)


class EvalPoint(EvalConfig):
    """One evaluation: EvalConfig fields, the TTT config and the ranks it runs on."""

    ttt: TTTConfig = Field(TTTConfig(), description="score-first test-time training of this eval")
    gpus_per_job: int | None = Field(None, ge=1, le=MAX_RANKS, description="ranks per eval job; null = train.gpus_per_job")

    def eval_config(self) -> EvalConfig:
        return EvalConfig(**self.model_dump(exclude={"ttt", "gpus_per_job"}))


class Limits(Frozen):
    max_jobs: int = Field(1000, ge=1, le=MAX_EXPANSION, description="bound on train + eval + mix jobs")
    gpu_mem_gib: float | None = Field(None, gt=0, description="GPU memory per rank on the nodes (GiB); "
                                      "`golf plan` refuses a train job estimated not to fit (default 80, an H100)")


def _check_name(v: str) -> str:
    if not re.fullmatch(NAME_PATTERN[1:-1], v) or len(v) > 100:
        raise ValueError(f"must be a slug of a-z 0-9 . _ - starting with a letter or digit (got {v!r})")
    return v


# ---------------------------------------------------------------------------------------------
# the sweep


class Sweep(Frozen):
    """A sweep: seeds × eval configs × mixer points, expanded by orchestrator.plan.build."""

    name: Annotated[str, AfterValidator(_check_name),
                    WithJsonSchema({"type": "string", "pattern": NAME_PATTERN, "maxLength": 100,
                                    "description": "the sweep's name: its MLflow experiment"})]
    description: str = Field("", max_length=10_000, description="free text, shown on the sweep's MLflow run")
    data: DataSpec = Field(DataSpec(), description="the shards and tokenizer every job reads")
    # a golf_core preset, or the user's own train_gpt.py (orchestrator.spec.script)
    train: Annotated[Union[Annotated[TrainSpec, Tag("<preset>")], Annotated[ScriptTrainSpec, Tag("<script>")]],
                     Discriminator(lambda v: "<script>" if isinstance(v, ScriptTrainSpec) or
                                   (isinstance(v, dict) and "script" in v) else "<preset>")] = Field(
        description="what is trained: a golf_core preset (overrides, seeds, ranks) or your own train_gpt.py (script)")
    # one eval config or a list; omitted = the preset's own eval section, TTT off
    eval: Annotated[Union[Annotated[None, Tag("<none>")], Annotated[EvalPoint, Tag("<one>")],
                          Annotated[tuple[EvalPoint, ...], Tag("<list>")]],
                    Discriminator(lambda v: "<none>" if v is None else
                                  "<list>" if isinstance(v, (list, tuple)) else "<one>")] = Field(
        None, description="one eval config or a list; null = the preset's own eval section, TTT off")
    mixer: MixerSpec = Field(MixerSpec(), description="the n-gram mixer's search space (modes x axes)")
    search: Search = Field(GridSearch(), description="how mixer points are chosen: grid, random or optuna")
    retries: int = Field(1, ge=0, le=100, description="attempts after the first when a worker dies")
    limits: Limits = Field(Limits(), description="bounds that refuse a spec before anything runs")
    # how GPU time is spent (orchestrator.spec.spend): pruning on live curves, a budget, stages
    prune: PruneSpec = Field(PruneSpec(), description="stop trials on their live curves at equal train time")
    budget: BudgetSpec | None = Field(None, description="GPU-hours the sweep may spend; then it starts no job")
    stages: tuple[StageSpec, ...] = Field((), max_length=16, description="promotion: each stage runs what the "
                                                                         "previous one promotes")

    @model_validator(mode="after")
    def _semantics(self) -> "Sweep":
        check_spend(self)
        if self.is_script:
            check_script_sweep(self, MAX_EXPANSION)
            return self
        if isinstance(self.eval, tuple) and not self.eval:
            fail([(("eval",), "must not be empty")], "Sweep")
        seen: dict[str, int] = {}
        for i, p in enumerate(self.eval_points()):
            key = p.model_dump_json(exclude={"gpus_per_job"})
            if key in seen:
                where = ("eval", i) if isinstance(self.eval, tuple) else ("eval",)
                fail([(where, f"same evaluation as eval[{seen[key]}]")], "Sweep")
            seen[key] = i
        model_vocab = self.run_config(self.train.seeds[0]).model.vocab_size
        if self.data.vocab_size != model_vocab:
            fail([(("data", "vocab_size"), f"{self.data.vocab_size} differs from the model's vocab_size "
                                           f"{model_vocab}")], "Sweep")
        if self.search.kind == "grid":
            ranges = [(("mixer", n), "a {low, high} range needs search.kind random or optuna")
                      for n in FLOAT_AXES if isinstance(getattr(self.mixer, n), Range)]
            if ranges:
                fail(ranges, "Sweep")
        if self.search.kind != "grid" and any(not varying_axes(self.mixer, m) for m in self.mixer.mixing_modes):
            fail([(("search",), f"{self.search.kind} search needs a searched mixer field "
                                "(a {low, high} range or a list of values)")], "Sweep")
        n_eval = len(self.train.seeds) * len(self.eval_points())
        n_mix_upper = n_eval * upper_points(self.mixer, self.search)  # before dedup: an upper bound
        if n_mix_upper > MAX_EXPANSION:
            fail([(("limits", "max_jobs"), f"{self.search.kind} has {n_mix_upper} mix jobs, above the "
                                           f"limit {self.limits.max_jobs}")], "Sweep")
        err = point_error(self.mixer, self.search)
        if err:
            fail([(("mixer",), err)], "Sweep")
        counts = self.counts()
        total = sum(counts.values())
        if total > self.limits.max_jobs:
            fail([(("limits", "max_jobs"), f"{self.search.kind} has {counts['mix']} mix jobs "
                                           f"({total} jobs in all), above the limit {self.limits.max_jobs}")],
                 "Sweep")
        return self

    # --- expansion (plan.py turns these into jobs) ---

    @property
    def is_script(self) -> bool:
        return isinstance(self.train, ScriptTrainSpec)

    def run_config(self, seed: int) -> RunConfig:
        return self.train.run_config(seed)

    def eval_points(self) -> tuple[EvalPoint, ...]:
        if self.is_script:
            return ()
        if self.eval is None:
            return (EvalPoint(**self.run_config(self.train.seeds[0]).eval.model_dump()),)
        return self.eval if isinstance(self.eval, tuple) else (self.eval,)

    def data_config(self) -> DataConfig:
        return self.data.data_config()

    @cached_property
    def _expanded(self) -> tuple[MixerConfig, ...]:
        return tuple(expand_points(self.mixer, self.search))

    def mixer_points(self) -> tuple[MixerConfig, ...]:
        """Every MixerConfig a mix job evaluates per eval job (grid/random; under optuna only `none`)."""
        return self._expanded

    def optuna_studies(self) -> tuple[dict, ...]:
        """Under optuna: per mixing mode {"mixer_base": fixed fields, "optuna": {n, seed, space}}."""
        return optuna_studies(self.mixer, self.search)

    def counts(self) -> dict[str, int]:
        if self.is_script:
            return script_counts(self)
        n_train = len(self.train.seeds)
        n_eval = n_train * len(self.eval_points())
        per_eval = len(self.mixer_points()) + len(self.optuna_studies())
        # tilt points have their own eval job per eval point (it also prices their hints)
        evals_per_point = len(eval_groups(self.mixer_points(), self.optuna_studies()))
        return {"train": n_train, "eval": n_eval * evals_per_point, "mix": n_eval * per_eval}


def sweep_from_dict(data: Any) -> Sweep:
    """Validate plain data into a Sweep; raises SpecError with one line per problem."""
    if not isinstance(data, dict):
        raise SpecError([f"<spec>: expected a mapping at the top level (got {type(data).__name__})"])
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise SpecError([f"{bad[0]!r}: keys must be strings"])
    try:
        return Sweep.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_errors(e, Sweep.model_json_schema())) from None


def parse_sweep(text: str) -> Sweep:
    return sweep_from_dict(parse_yaml(text))


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a spec file; raises SpecError (lines) or FileNotFoundError."""
    return parse_sweep(read_spec(path))


def sweep_schema() -> dict:
    """The JSON Schema of a spec file (what `golf schema` prints)."""
    return Sweep.model_json_schema()
