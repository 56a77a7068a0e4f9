"""A spec's `train` section for a user's own train_gpt.py: `script` instead of `preset`.

Every parameter-golf submission is one script configured by environment variables and launched
with `torchrun --standalone --nproc_per_node=N train_gpt.py`; a script spec sweeps those
variables:

    train:
      script: path/to/train_gpt.py     # or a record folder holding train_gpt.py
      seeds: [1337, 42, 2024]          # SEED=<seed>
      gpus_per_job: 8                  # torchrun --nproc_per_node=8
      env: {NUM_LAYERS: 11, MATRIX_LR: [0.022, 0.026]}   # a list is a sweep axis

- env values are strings or numbers; a list is an axis (grid / random choices / optuna
  categorical), a `{low, high, log}` range (floats) is an axis for random and optuna search.
- `search: {kind: optuna, n, seed}`: n trials, each one job per seed, minimizing the seed-mean
  val_bpb; the driver asks and tells the study (orchestrator.run.trials).
- The script scores itself: a script spec with an `eval` or `mixer` section is an error.
- golf sets VOCAB_SIZE (data section), SEED, MAX_WALLCLOCK_SECONDS (when `max_wallclock_seconds`
  caps it), and on the worker DATA_PATH, TOKENIZER_PATH, RUN_ID; `env` overrides any of them.
- every env key must appear in the script (`check_env_keys`, when the plan reads it): a typo
  (`ITERATONS`) is an error naming the closest name the script does read, unless
  `env_unchecked` lists it; golf's own variables and the launcher's (NCCL_*, PYTORCH_*, ...) are
  exempt, and so is a script that reads no environment in plain text (a compressed one).
"""
from __future__ import annotations

import difflib
import itertools
import math
import random
import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator

from golf_core.config import MAX_SEED, Frozen
from orchestrator.spec.mixer_space import Range, nonempty
from orchestrator.spec.io import fail
from workers.search_space import draw, encode

__all__ = ["ScriptTrainSpec", "ENV_NAME", "GOLF_ENV", "env_axes", "env_points", "env_str", "default_timeout_s",
           "check_env_keys", "check_script_sweep", "script_counts", "optuna_env_study"]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# what golf sets itself (train.env may override each): the worker fills the path/name ones
GOLF_ENV = ("DATA_PATH", "TOKENIZER_PATH", "VOCAB_SIZE", "SEED", "RUN_ID", "MAX_WALLCLOCK_SECONDS")
# a job that runs past its cap is killed only after the eval (up to 600 s in the rules) and this
# much more: compile warm-up, serialization, a slow filesystem
TIMEOUT_MARGIN_S = 900.0
UNCAPPED_TIMEOUT_S = 6 * 3600.0  # no cap anywhere: the script's own default rules; never hang forever


def env_str(v: Any) -> str:
    """The string a process sees: 11 -> '11', 0.022 -> '0.022', 1e-05 -> '1e-05'."""
    if isinstance(v, bool):  # unreachable after validation; never 'True'
        raise TypeError("booleans are not env values")
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return repr(v)  # '4950.0' stays a float spelling the script may parse with float()
    return v if isinstance(v, str) else repr(v)


def _scalar_error(v: Any) -> str | None:
    if isinstance(v, bool):
        return f"must be a string or a number, not a boolean (got {v!r}; quote it: '{str(v).lower()}' or use 0/1)"
    if isinstance(v, str):
        return "must not contain a NUL byte" if "\0" in v else None
    if isinstance(v, int):
        return None
    if isinstance(v, float):
        return None if math.isfinite(v) else f"must be finite (got {v!r})"
    return f"must be a string or a number (got {type(v).__name__})"


def _check_env(env: dict[str, Any]) -> dict[str, Any]:
    errors: list[tuple[tuple, str]] = []
    out: dict[str, Any] = {}
    for key, v in env.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            errors.append(((key,), "not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)"))
            continue
        if isinstance(v, dict):
            try:
                out[key] = Range.model_validate(v)
            except ValidationError as e:
                errors.append(((key,), "a range is {low, high, log}: " + e.errors()[0]["msg"].removeprefix(
                    "Value error, ")))
            continue
        if isinstance(v, (list, tuple)):
            if not v:
                errors.append(((key,), "an axis must not be empty"))
                continue
            for i, x in enumerate(v):
                err = _scalar_error(x)
                if err:
                    errors.append(((key, i), err))
            if len({env_str(x) for x in v if _scalar_error(x) is None}) != len(v):
                errors.append(((key,), "an axis must not repeat a value"))
            out[key] = tuple(v)
            continue
        err = _scalar_error(v)
        if err:
            errors.append(((key,), err))
        out[key] = v
    if errors:
        fail(errors, "env")
    return out


class ScriptTrainSpec(Frozen):
    """`train` for a script spec (see the module doc)."""

    script: str = Field(description="a train_gpt.py, or a record folder holding one; relative to the workspace")
    external: bool = Field(False, description="allow a script path outside the workspace (absolute, or with ..)")
    seeds: Annotated[tuple[Annotated[int, Field(ge=0, le=MAX_SEED)], ...], AfterValidator(nonempty)] = Field(
        description="one job per seed: SEED=<seed>", max_length=10_000)
    gpus_per_job: int = Field(1, ge=1, le=64, description="torchrun --nproc_per_node (8 on an 8-GPU node)")
    env: Annotated[dict[str, Any], AfterValidator(_check_env)] = Field(
        {}, description="environment variables: a string or a number; a list is a sweep axis; "
                        "{low, high, log} a range for random/optuna search")
    max_wallclock_seconds: float | None = Field(None, ge=0, description="sets MAX_WALLCLOCK_SECONDS (the cap "
                                                                        "validity is checked against)")
    timeout_s: float | None = Field(None, gt=0, description="kill the job after this long (default: the cap + "
                                                           f"{TIMEOUT_MARGIN_S:.0f} s)")
    score_tag: str | None = Field(None, min_length=1, description="the score line whose val_bpb is the result "
                                                                  "(default: the last score line)")
    pass_env: tuple[str, ...] = Field((), description="variables of the worker's environment the script also "
                                                      "sees (by default only a minimal base: no credentials)")
    env_unchecked: tuple[str, ...] = Field((), description="env keys passed even though the script never "
                                                           "mentions them (e.g. read by a library it imports)")

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, dict) and "preset" in data:
            fail([(("preset",), "set exactly one of train.preset and train.script")], "ScriptTrainSpec")
        return data

    @field_validator("script")
    @classmethod
    def _script(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if "$" in v or v.startswith("~") or "\0" in v:
            raise ValueError(f"no ~ or $ expansion in specs (got {v!r})")
        return v

    @field_validator("pass_env")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [x for x in v if not ENV_NAME.match(x)]
        if bad:
            raise ValueError(f"not an environment variable name: {bad[0][:200]!r}")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            dup = next(s for s in v if v.count(s) > 1)
            fail([((v.index(dup, v.index(dup) + 1),), f"duplicate seed {dup}")], "seeds")
        return v

    @model_validator(mode="after")
    def _inside(self) -> "ScriptTrainSpec":
        p = PurePosixPath(self.script)
        errors = []
        if not self.external and (p.is_absolute() or ".." in p.parts):
            errors.append((("script",), f"{self.script!r} leaves the workspace (set train.external: true to allow it)"))
        if "SEED" in self.env and len(self.seeds) > 1:
            errors.append((("env", "SEED"), "would give every seed the same SEED; list the seeds in train.seeds"))
        if "MAX_WALLCLOCK_SECONDS" in self.env and self.max_wallclock_seconds is not None:
            errors.append((("max_wallclock_seconds",), "also set in train.env.MAX_WALLCLOCK_SECONDS"))
        if errors:
            fail(errors, "ScriptTrainSpec")
        return self

    # --- what the plan needs ---
    @property
    def path(self) -> PurePosixPath:
        return PurePosixPath(self.script)

    def cap_s(self, env: dict[str, str]) -> float | None:
        """The training cap a job's env sets (MAX_WALLCLOCK_SECONDS; 0 = none)."""
        raw = env.get("MAX_WALLCLOCK_SECONDS")
        try:
            cap = float(raw) if raw is not None else None
        except ValueError:
            return None
        return cap if cap and cap > 0 else None


# read by the launcher, PyTorch, NCCL, CUDA or a library, not by the script itself
_LAUNCHER_PREFIXES = ("NCCL_", "PYTORCH_", "TORCH_", "TORCHINDUCTOR_", "CUDA_", "OMP_", "MKL_", "TRITON_", "HF_",
                      "NVIDIA_", "CUBLAS_", "TOKENIZERS_", "PYTHON")
_WORDS = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")


def check_env_keys(train: ScriptTrainSpec, sources: dict[str, str], entry: str = "train_gpt.py") -> list[str]:
    """Spec errors for env keys the script never mentions: `train.env.ITERATONS: train_gpt.py never
    reads it; did you mean ITERATIONS? ...`. `sources`: the script's .py files' text by name.
    Nothing is checked when no file reads the environment in plain text (a compressed script)."""
    text = "\n".join(sources.values())
    if "environ" not in text and "getenv" not in text:
        return []
    words = set(_WORDS.findall(text))
    errors = []
    for key in train.env:
        if key in words or key in GOLF_ENV or key in train.env_unchecked or key.startswith(_LAUNCHER_PREFIXES):
            continue
        close = difflib.get_close_matches(key, sorted(words), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        errors.append(f"train.env.{key}: {entry} never reads it{hint} (list it in train.env_unchecked to pass it "
                      "anyway)")
    return errors


def default_timeout_s(cap: float | None) -> float:
    """The wallclock cap, the eval budget and a generous margin (a compile, a slow disk)."""
    return UNCAPPED_TIMEOUT_S if cap is None else cap + 600.0 + max(TIMEOUT_MARGIN_S, 0.5 * cap)


# ---------------------------------------------------------------------------------------------
# axes and points


def env_axes(train: ScriptTrainSpec) -> dict[str, tuple | Range]:
    """The env variables that vary: name -> values (a tuple) or a Range."""
    return {k: v for k, v in train.env.items() if isinstance(v, Range) or (isinstance(v, tuple) and len(v) > 1)}


def _fixed(train: ScriptTrainSpec) -> dict[str, Any]:
    return {k: (v[0] if isinstance(v, tuple) else v) for k, v in train.env.items()
            if not isinstance(v, Range) and not (isinstance(v, tuple) and len(v) > 1)}


def env_points(train: ScriptTrainSpec, search: Any) -> list[dict[str, Any]]:
    """Every env point (fixed values + one value per axis): the grid's product, or `n` random
    draws (duplicates dropped). Optuna: none here, the driver asks the study (`optuna_env_study`)."""
    fixed, axes = _fixed(train), env_axes(train)
    if search.kind == "optuna":
        return []
    if search.kind == "random":
        rng, seen, out = random.Random(search.seed), set(), []
        for _ in range(search.n):
            pt = {**fixed, **{k: draw(ax, rng) for k, ax in axes.items()}}
            key = tuple(sorted((k, env_str(v)) for k, v in pt.items()))
            if key not in seen:
                seen.add(key)
                out.append(pt)
        return out
    names = list(axes)
    return [{**fixed, **dict(zip(names, combo))} for combo in itertools.product(*(axes[n] for n in names))] \
        if names else [dict(fixed)]


def optuna_env_study(train: ScriptTrainSpec, search: Any) -> dict | None:
    """Under optuna: {"fixed": env, "space": {name: {low, high, log} | {choices}}, "n", "seed"}.
    Choices are the env strings a process sees (optuna's categorical values must compare
    apart: 1 and 1.0 are one choice to Python, two to a script)."""
    if search.kind != "optuna":
        return None
    space = {}
    for k, ax in env_axes(train).items():
        space[k] = encode(ax, env_str)
    return {"fixed": _fixed(train), "space": space, "n": search.n, "seed": search.seed}


def script_counts(sweep: Any) -> dict[str, int]:
    train: ScriptTrainSpec = sweep.train
    if sweep.search.kind == "optuna":
        n = sweep.search.n
    elif sweep.search.kind == "random":
        n = len(env_points(train, sweep.search))
    else:
        n = math.prod(len(ax) for ax in env_axes(train).values())
    return {"script_train": n * len(train.seeds)}


def check_script_sweep(sweep: Any, max_expansion: int) -> None:
    """The Sweep-level rules of a script spec (raises ValidationError via `fail`)."""
    errors: list[tuple[tuple, str]] = []
    given = sweep.model_fields_set
    for section in ("eval", "mixer"):
        if section in given:
            errors.append(((section,), f"a script spec has no {section} section: the script scores itself "
                                       "(its score line is the result)"))
    train: ScriptTrainSpec = sweep.train
    axes = env_axes(train)
    if sweep.search.kind == "grid":
        errors += [(("train", "env", k), "a {low, high} range needs search.kind random or optuna")
                   for k, ax in axes.items() if isinstance(ax, Range)]
    elif not axes:
        errors.append((("search",), f"{sweep.search.kind} search needs a searched env variable "
                                    "(a list of values or a {low, high} range in train.env)"))
    if errors:
        fail(errors, "Sweep")
    if sweep.search.kind == "grid":
        upper = math.prod(len(ax) for ax in axes.values()) * len(train.seeds)
        if upper > max_expansion:
            fail([(("limits", "max_jobs"), f"grid has {upper} script jobs, above the limit {sweep.limits.max_jobs}")],
                 "Sweep")
    n = sum(script_counts(sweep).values())  # optuna: the upper bound, every trial run on every seed
    if n > sweep.limits.max_jobs:
        fail([(("limits", "max_jobs"), f"{sweep.search.kind} has {n} script jobs, above the limit "
                                       f"{sweep.limits.max_jobs}")], "Sweep")
