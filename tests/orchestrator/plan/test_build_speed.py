"""Planning shortcuts (issue 21) give the same identities and params as the reference paths."""
from __future__ import annotations

from golf_core.eval.config import MixerConfig
from orchestrator.plan.build import _mix_identity_json, canonical_json, mix_identity
from orchestrator.tracking.params import flatten_params


def test_mix_identity_from_the_points_json_equals_mix_identity():
    for cfg in (MixerConfig(), MixerConfig(mode="none"), MixerConfig(mode="normalized", orders=(2, 3, 7),
                                                                     entropy_center=3.5)):
        m_cfg = {"mixer": cfg.model_dump(mode="json")}
        for ev, code in (("e" * 64, "v1"), ("abc", 'q"uote\u00e9')):
            assert _mix_identity_json(ev, canonical_json(m_cfg), code) == mix_identity(ev, m_cfg, code)


def test_list_params_serialized_once_keep_their_types():
    assert flatten_params({"a": [1, 2]}) == {"a": "[1, 2]"}
    assert flatten_params({"a": [1.0, 2.0]}) == {"a": "[1.0, 2.0]"}
    assert flatten_params({"a": (True, 1)}) == {"a": "[true, 1]"}
    assert flatten_params({"a": [[1], {"x": 2}]}) == {"a": '[[1], {"x": 2}]'}


def test_a_points_dump_from_its_modes_first_point_equals_its_own_dump():
    """build_plan's _PointDumps (issue 21) gives each point exactly identity_dump() and
    mixer_params: differing axis values, -0.0 beside 0.0 (their JSON differs), per-order
    entropy centers (a dict: the full path), tilt points, the model alone."""
    from orchestrator.plan.build import _PointDumps, mixer_params

    points = [MixerConfig(mode="none"),
              MixerConfig(mode="normalized", alpha_base=0.0, alpha_range=0.4),
              MixerConfig(mode="normalized", alpha_base=-0.0, alpha_range=0.4, entropy_slope=-0.0),
              MixerConfig(mode="normalized", alpha_base=0.1, alpha_range=0.5, orders=(2, 3)),
              MixerConfig(mode="normalized", alpha_base=0.1, alpha_range=0.5,
                          entropy_centers={2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5, 6: 3.2, 7: 3.0}),
              MixerConfig(mode="normalized", alpha_base=0.1, alpha_range=0.5),
              MixerConfig(mode="hashed_target", alpha_base=0.2, alpha_range=0.4, buckets=1024),
              MixerConfig(mode="hashed_target", alpha_base=0.3, alpha_range=0.4, buckets=2048, min_count=3),
              MixerConfig(mode="tilt", tilt_order=8, tilt_threshold=0.5),
              MixerConfig(mode="tilt", tilt_order=16, tilt_threshold=0.8, tilt_boost=1.0)]
    dumps = _PointDumps()
    for cfg in points:
        dump, params = dumps(cfg)
        full = cfg.identity_dump()
        assert dump == full and list(dump) == list(full), cfg
        assert canonical_json({"mixer": dump}) == canonical_json({"mixer": full})
        assert params == mixer_params({"mixer": full}), cfg
        assert dumps.point(cfg)[2] == canonical_json({"mixer": full}), cfg  # the identity's bytes
    assert dumps(points[2])[0]["alpha_base"] == -0.0 and str(dumps(points[2])[0]["alpha_base"]) == "-0.0"


def test_a_points_canonical_json_from_cached_field_texts_equals_canonical_json():
    """_PointDumps.canonical (issue 21) is byte for byte canonical_json({"mixer": dump}): nested
    dicts sorted, -0.0 and 0.0 apart, 1 and 1.0 and True apart, non-ASCII escaped."""
    from orchestrator.plan.build import _PointDumps

    dumps = _PointDumps()
    cases = [MixerConfig(mode="normalized", alpha_base=0.0).identity_dump(),
             MixerConfig(mode="normalized", alpha_base=-0.0).identity_dump(),
             MixerConfig(mode="normalized", entropy_centers={7: 3.0, 2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5, 6: 3.2}).identity_dump(),
             MixerConfig(mode="tilt", tilt_order=16, tilt_threshold=0.8).identity_dump(),
             MixerConfig(mode="none").identity_dump(),
             {"b": 1, "a": 1.0, "c": True, "d": "\u00e9\"q", "e": [1, 2.5, None], "f": {"z": 1, "y": [0.0, -0.0]}},
             {"b": 1.0, "a": 1, "c": 1, "d": "e", "e": [1.0], "f": {"y": [-0.0], "z": 1.0}}]
    for _ in range(2):  # the second round is served from the cache
        for d in cases:
            assert dumps.canonical(d) == canonical_json({"mixer": d})
