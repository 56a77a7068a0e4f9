"""The prune / budget / stages sections: one line naming the field, before any job."""
from __future__ import annotations

import pytest

from orchestrator.plan.build import build_plan
from orchestrator.spec.sweep import SpecError, sweep_from_dict


def _spec(**extra) -> dict:
    return {"name": "s", "data": {"path": "data/syn"}, **extra,
            "train": {"script": "train_gpt.py", "seeds": [1], "env": {"LR": [1, 2]}, "max_wallclock_seconds": 100}}


def _lines(**extra) -> list[str]:
    with pytest.raises(SpecError) as e:
        sweep_from_dict(_spec(**extra))
    return e.value.lines


def test_bad_prune_budget_stages_are_one_line_each():
    assert _lines(prune={"kind": "asha", "rungs_s": [60, 180]}) == [
        "prune.rungs_s: rung 180 s is at or past the training cap 100 s: no trial would reach it before it ends"]
    assert _lines(prune={"kind": "asha", "rungs_s": [10], "eta": 1}) == ["prune.eta: must be >= 2 (got 1)"]
    assert _lines(prune={"kind": "median"}) == ["prune.rungs_s: median needs at least one rung (train seconds)"]
    assert any(x.startswith("prune.rungs_s: must be strictly increasing") for x in
               _lines(prune={"kind": "asha", "rungs_s": [20, 10]}))
    assert any(x.startswith("budget.gpu_hours: must be > 0") for x in _lines(budget={"gpu_hours": 0}))
    lines = _lines(stages=[{"name": "a", "env": {"LR": 3, "SEED": 1}, "reproduce": True},
                           {"name": "b", "promote": {"top": 1}}])
    assert "stages[0].reproduce: only the last stage reproduces (its seeds are the claim's)" in lines
    assert "stages[0].promote: required on every stage but the last ({top: k} or {fraction: f})" in lines
    assert any(x.startswith("stages[0].env.LR: contradicts train.env.LR, a searched axis") for x in lines)
    assert "stages[0].env.SEED: set by the stage's seeds" in lines
    assert "stages[1].promote: the last stage promotes nothing" in lines
    assert any("max_wallclock_seconds" in x for x in _lines(stages=[{"name": "a", "env": {"MAX_WALLCLOCK_SECONDS": 9}}]))
    # the issue's own example is valid: the rungs fall within the longest stage's cap
    ok = sweep_from_dict({**_spec(prune={"kind": "asha", "rungs_s": [60, 180], "eta": 3}), "budget": {"gpu_hours": 40},
                          "stages": [{"name": "screen", "seeds": [1337], "gpus_per_job": 1,
                                      "max_wallclock_seconds": 120, "promote": {"top": 3}},
                                     {"name": "confirm", "seeds": [1337, 42, 2024], "gpus_per_job": 8,
                                      "max_wallclock_seconds": 600, "reproduce": True}]})
    assert ok.budget.gpu_hours == 40 and [s.name for s in ok.stages] == ["screen", "confirm"]
    assert ok.stages[1].reproduce


def test_against_is_read_at_plan_time(tmp_path):
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    sweep = sweep_from_dict(_spec(prune={"against": "ref", "rungs_s": [1]}))
    with pytest.raises(SpecError, match=r"^prune.against: ref: no such record folder$"):
        build_plan(sweep, tmp_path)
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "train_seed1.log").write_text("no curve here\n")
    with pytest.raises(SpecError, match="prune.against: ref has no train_loss curve in train seconds"):
        build_plan(sweep, tmp_path)
    (tmp_path / "ref" / "train_seed2.log").write_text("step:1/2 train_loss:7.0 train_time:500ms step_avg:500ms\n")
    assert build_plan(sweep, tmp_path).reference == {"2": [(0.5, 7.0)]}
