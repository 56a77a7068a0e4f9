"""golf_core.envvars.apply_env: upstream's variable names on the baked-in trees."""
from __future__ import annotations

from golf_core.envvars import apply_env
from golf_core.eval.config import EvalSpec
from golf_core.presets import RunConfig, load_preset


def test_the_tilt_switch_on_a_script_without_an_evaluation_asks_for_one():
    """`NGRAM_TILT_ENABLED=1` on a train_gpt.py exported without `--eval` runs the tilt
    evaluation (PR #2135's names), instead of being ignored in silence."""
    run = load_preset("tiny").model_dump(mode="json")
    _, spec, used = apply_env(run, None, {"NGRAM_TILT_ENABLED": "1", "TOKEN_ORDER": "4", "TOKEN_BOOST": "1.5"},
                              RunConfig, EvalSpec)
    cfg = EvalSpec.model_validate(spec)
    assert cfg.mixer.mode == "tilt" and cfg.mixer.tilt_order == 4 and cfg.mixer.tilt_boost == 1.5
    assert {"NGRAM_TILT_ENABLED", "TOKEN_ORDER", "TOKEN_BOOST"} <= set(used)
    # switched off, or not asked for: still no evaluation of its own
    assert apply_env(run, None, {"NGRAM_TILT_ENABLED": "0"}, RunConfig, EvalSpec)[1] is None
    assert apply_env(run, None, {"ITERATIONS": "3"}, RunConfig, EvalSpec)[1] is None
