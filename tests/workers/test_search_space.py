"""The one reader of the search-space format (workers.search_space): what the spec writes reads
back, and both optuna studies (the mixer's in the worker, a script's env in the driver) draw
what their own readers drew before issue 16 made them one."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import optuna
import pytest

from workers.search_space import Choices, FloatRange, contains, decode, decode_space, distribution, draw, encode, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_encode_then_decode():
    r = SimpleNamespace(low=0.01, high=0.2, log=True)  # a spec's Range (orchestrator.spec.mixer_space)
    assert encode(r) == {"low": 0.01, "high": 0.2, "log": True}  # the keys identities hash, as before
    assert decode("lr", encode(r)) == FloatRange(0.01, 0.2, True)
    assert encode((9, 11), str) == {"choices": ["9", "11"]}
    assert decode("n", {"choices": [[2, 3], [2, 3, 4]]}) == Choices(([2, 3], [2, 3, 4]))
    assert decode("a", [0.0, 0.5]) == FloatRange(0.0, 0.5, False)  # the short form the worker took
    assert decode("a", {"low": 0, "high": 1}) == FloatRange(0.0, 1.0, False)
    with pytest.raises(ValueError, match=r"optuna.space.bad: expected \{low, high\} or \{choices\}"):
        decode_space({"bad": {"high": 1}})
    assert contains(FloatRange(0.0, 1.0), 0.5) and not contains(FloatRange(0.0, 1.0), 1.5)
    assert contains(Choices(("9", "11")), "11") and not contains(Choices(("9", "11")), 11)
    rng = random.Random(0)
    assert draw((1, 2, 3), rng) in (1, 2, 3) and 0.01 <= draw(r, rng) <= 0.2


def _before_worker(trial, name, dom):  # workers.eval_actor._suggest before issue 16
    if "choices" in dom:
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in dom["choices"]]))
    return trial.suggest_float(name, float(dom["low"]), float(dom["high"]), log=bool(dom.get("log", False)))


def _before_driver(trial, name, dom):  # orchestrator.run.trials.EnvTrials.ask before issue 16
    if "choices" in dom:
        return trial.suggest_categorical(name, dom["choices"])
    return trial.suggest_float(name, float(dom["low"]), float(dom["high"]), log=bool(dom.get("log")))


@pytest.mark.parametrize("space,before", [
    ({"alpha_base": {"low": 0.0, "high": 0.5, "log": False}, "orders": {"choices": [[2, 3], [2, 3, 4]]},
      "buckets": {"choices": [4096, 65536]}, "entropy_centers": {"choices": [None, {"7": 3.0}]}}, _before_worker),
    ({"MATRIX_LR": {"low": 0.01, "high": 0.2, "log": True}, "NUM_LAYERS": {"choices": ["9", "11"]}}, _before_driver),
], ids=["mixer", "env"])
def test_both_studies_draw_what_they_drew_before(space, before):
    domains = decode_space(space)

    def run(pick):
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=3))
        drawn = []
        for i in range(14):  # past TPE's random start-up trials
            t = study.ask()
            values = pick(t)
            study.tell(t, float(i % 5) + 0.1 * i)
            drawn.append(values)
        return drawn

    new = run(lambda t: {n: suggest(t, n, d) for n, d in domains.items()})
    assert new == run(lambda t: {n: before(t, n, dom) for n, dom in space.items()})
    # a resumed trial (create_trial) takes the values suggest returned, in the same distributions
    study = optuna.create_study()
    for values in new[:3]:
        params = {n: json.dumps(v) if isinstance(d, Choices) and d.as_json else v
                  for (n, d), v in zip(domains.items(), values.values())}
        study.add_trial(optuna.trial.create_trial(params=params, value=1.0,
                                                  distributions={n: distribution(d) for n, d in domains.items()}))
    assert len(study.trials) == 3
