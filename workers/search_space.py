"""The search-space format, written and read in one place.

A plan carries a search space as JSON: `{name: {"low", "high", "log"}}` for a float range,
`{name: {"choices": [...]}}` for a list of values. Both optuna studies use it: the mixer's
(OptunaMixJob.optuna.space, searched in the worker by workers.eval_actor.run_optuna) and a
script's env (orchestrator.plan.script.EnvStudy.space, searched by the driver,
orchestrator.run.trials). `encode` writes an axis of a spec (orchestrator.spec.mixer_space,
orchestrator.spec.script), `decode` is the one reader, and `suggest` / `distribution` are the
one way a domain meets optuna. The encoded dicts enter identities (an optuna mix job's
payload, an env study's key): `encode` writes exactly the keys it always wrote.

Here in workers (not orchestrator) because the worker reads the format too, and workers never
import orchestrator (tests/test_layering.py).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["Choices", "FloatRange", "ask", "contains", "decode", "decode_space", "distribution", "draw", "encode",
           "new_study", "suggest"]


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Choices:
    values: tuple

    @property
    def as_json(self) -> bool:
        """Optuna's categorical values must be scalars that compare apart: choices other than
        strings (order sets, per-order centers, numbers) travel as their JSON text; strings (a
        script's env values, already what the process sees) as they are."""
        return not all(isinstance(v, str) for v in self.values)


Domain = FloatRange | Choices


def _is_range(ax: Any) -> bool:
    return all(hasattr(ax, a) for a in ("low", "high", "log"))


def encode(ax: Any, value: Callable[[Any], Any] = lambda v: v) -> dict[str, Any]:
    """An axis of a spec (a Range: low/high/log; or a sequence of values, each written as
    `value(v)`) in the plan's format."""
    if _is_range(ax):
        return {"low": ax.low, "high": ax.high, "log": ax.log}
    return {"choices": [value(v) for v in ax]}


def decode(name: str, dom: Any) -> Domain:
    """The one reader of a space entry. `[low, high]` is a short range (the worker always took
    it); `log` defaults to false."""
    if isinstance(dom, (list, tuple)) and len(dom) == 2:
        dom = {"low": dom[0], "high": dom[1]}
    if isinstance(dom, Mapping):
        if "choices" in dom:
            return Choices(tuple(dom["choices"]))
        if "low" in dom and "high" in dom:
            return FloatRange(float(dom["low"]), float(dom["high"]), bool(dom.get("log", False)))
    raise ValueError(f"optuna.space.{name}: expected {{low, high}} or {{choices}} (got {dom!r})")


def decode_space(space: Mapping[str, Any]) -> dict[str, Domain]:
    return {name: decode(name, dom) for name, dom in space.items()}


def contains(d: Domain, v: Any) -> bool:
    """Is `v` a value of the domain (a resumed run's env, read back)?"""
    if isinstance(d, Choices):
        return v in d.values
    return d.low <= v <= d.high


def draw(ax: Any, rng: random.Random) -> Any:
    """One random-search draw of a spec axis (a Range or a tuple of values): the same draws
    for the mixer's and a script's random search."""
    if _is_range(ax):
        x = math.exp(rng.uniform(math.log(ax.low), math.log(ax.high))) if ax.log else rng.uniform(ax.low, ax.high)
        return float(f"{x:.6g}")  # readable names/params and env values; far finer than any effect
    return ax[rng.randrange(len(ax))]


# ------------------------------------------------------------------------------------- optuna
# Both studies go through here: made by `new_study`, asked by `ask`, their domains turned into
# optuna's by `distribution` / `suggest`. What differs is where a trial runs: a mixer trial is one
# mix over the worker's cached passes (workers.eval_actor.run_optuna, one MLflow run holding every
# trial), an env trial is real training jobs the driver schedules (orchestrator.run.trials, a run
# per job) and its sampler is reseeded per trial number so a resumed study asks what it would have.


def new_study(seed: int):
    """A study as golf runs one: minimize val_bpb, TPESampler(seed), optuna's chatter off."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=int(seed)))


def ask(study: Any, domains: Mapping[str, Domain]) -> tuple[Any, dict[str, Any]]:
    """The next trial and its values, decoded."""
    trial = study.ask()
    return trial, {name: suggest(trial, name, d) for name, d in domains.items()}



def distribution(d: Domain):
    """The optuna distribution of a domain (what `suggest` samples; create_trial needs it)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(d, FloatRange):
        return FloatDistribution(d.low, d.high, log=d.log)
    return CategoricalDistribution([json.dumps(v) for v in d.values] if d.as_json else list(d.values))


def suggest(trial: Any, name: str, d: Domain) -> Any:
    """A trial's value for `name`, decoded (a choice comes back as the value it was, not its JSON)."""
    if isinstance(d, FloatRange):
        return trial.suggest_float(name, d.low, d.high, log=d.log)
    if d.as_json:
        return json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in d.values]))
    return trial.suggest_categorical(name, list(d.values))
