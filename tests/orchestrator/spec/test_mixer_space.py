"""A grid's points are built from axis values validated once (issue 21): they must equal the
MixerConfigs a full pydantic validation of each point makes, and an invalid point still fails
with MixerConfig's own message."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from golf_core.eval.config import MixerConfig
from orchestrator.spec.mixer_space import GridSearch, MixerSpec, _raw_points, expand_points, mode_axes, point_error


def _fully_validated(mixer: MixerSpec) -> list[MixerConfig]:
    """expand_points as it was: one MixerConfig(...) per point and mode."""
    points = {}
    if "none" in mixer.modes:
        cfg = MixerConfig(mode="none")
        points[cfg.fingerprint()] = cfg
    for mode in mixer.mixing_modes:
        for pt in _raw_points(mixer, GridSearch()):
            used = {k: v for k, v in pt.items() if k in mode_axes(mode)}
            cfg = MixerConfig(mode=mode, primes=mixer.primes, miss_vocab=mixer.miss_vocab, **used)
            points.setdefault(cfg.fingerprint(), cfg)
    return list(points.values())


def test_grid_points_equal_fully_validated_ones():
    mixer = MixerSpec.model_validate({
        "modes": ["none", "normalized", "hashed_target", "tilt"], "orders": [[4, 2, 3, 3], [2, 3]],
        "buckets": [1024, 4096], "alpha_base": [0, 0.2], "alpha_range": [0.3, 0.8], "entropy_slope": 3,
        "entropy_centers": [None, {2: 4, 3: 4.5, 4: 5.0}], "tilt_boost": [1, 2.5], "tilt_order": [8, 16],
        "miss_vocab": "max_token", "primes": [3, 5, 7, 11, 13, 17, 19]})
    fast, full = expand_points(mixer, GridSearch()), _fully_validated(mixer)
    assert fast == full and len(fast) > 20
    for a, b in zip(fast, full):
        assert a.model_dump() == b.model_dump() and a.fingerprint() == b.fingerprint()
        assert a.model_fields_set == b.model_fields_set
        assert type(a.orders) is tuple and a.orders == tuple(sorted(set(a.orders)))  # as the field validator makes it
        assert all(type(getattr(a, f)) is type(getattr(b, f)) for f in MixerConfig.model_fields)


def test_an_invalid_grid_point_fails_with_mixer_configs_own_message():
    mixer = MixerSpec.model_validate({"modes": ["normalized"], "alpha_base": [0.1, 0.6], "alpha_range": 0.5})
    assert point_error(mixer, GridSearch()) == "alpha_base + alpha_range must be <= 1 (at alpha_base=0.6)"
    # a tilt point uses the default orders: with 3 primes it is refused by MixerConfig itself
    tilt = MixerSpec.model_validate({"modes": ["tilt"], "orders": [2, 3], "primes": [3, 5, 7]})
    with pytest.raises(ValidationError, match="needs 7 primes"):
        expand_points(tilt, GridSearch())


def test_copy_with_is_model_copy():
    from orchestrator.spec.mixer_space import _copy_with

    template = MixerConfig.model_construct(mode="normalized", primes=(3, 5, 7, 11, 13, 17, 19))
    for fields in ({}, {"alpha_base": 0.2}, {"alpha_base": 0.1, "orders": (2, 3), "entropy_centers": {2: 4.0, 3: 4.5}}):
        a, b = _copy_with(template, fields), template.model_copy(update=fields)
        assert type(a) is type(b) and a == b and a.__dict__ == b.__dict__
        assert a.model_fields_set == b.model_fields_set and a.__pydantic_extra__ == b.__pydantic_extra__
        assert a.__pydantic_private__ == b.__pydantic_private__ and a.model_dump() == b.model_dump()
        assert a.__dict__ is not template.__dict__ and a.model_fields_set is not template.model_fields_set
