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
