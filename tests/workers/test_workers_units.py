"""Worker pieces without Ray: the Optuna ask/tell loop, the output-file transport, bpb."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workers.contract import OptunaSpace
from workers.worker import run_optuna
from workers.files import pack_dir, unpack_to
from golf_core.eval.bpb import bpb_of
from workers.runner import GolfRunner


def test_optuna_finds_the_minimum_and_fails_invalid_points():
    calls = []

    def score(mixer):  # a bowl at alpha_base = 0.3; base + range > 1 is invalid (like MixerConfig)
        if mixer["alpha_base"] + mixer["alpha_range"] > 1:
            raise ValueError("alpha_base + alpha_range must be <= 1")
        calls.append(mixer)
        return (mixer["alpha_base"] - 0.3) ** 2 + (0.1 if mixer["orders"] == [2, 3] else 0.0), 0.0

    space = {"alpha_base": {"low": 0.0, "high": 1.0}, "orders": {"choices": [[2, 3], [2, 3, 4]]}}
    out = run_optuna({"mode": "normalized", "alpha_range": 0.5}, OptunaSpace(n=40, seed=0, space=space), score)
    assert 0 < len(out["trials"]) < 40  # points with alpha_base > 0.5 were told FAIL, not scored
    assert all(t[2]["alpha_base"] <= 0.5 for t in out["trials"])
    assert out["mixer"]["orders"] == [2, 3, 4] and abs(out["mixer"]["alpha_base"] - 0.3) < 0.1
    assert out["val_bpb"] == pytest.approx(min(t[1] for t in out["trials"]))
    # same seed, same search
    again = run_optuna({"mode": "normalized", "alpha_range": 0.5}, OptunaSpace(n=40, seed=0, space=space), score)
    assert [t[1] for t in again["trials"]] == [t[1] for t in out["trials"]]


def test_optuna_rejects_an_empty_space():
    with pytest.raises(ValueError, match="empty search space"):
        run_optuna({}, OptunaSpace(n=3, seed=0, space={}), lambda m: (0.0, 0.0))


def test_pack_unpack_roundtrip_and_bad_names(tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    (src / "model.ptz").write_bytes(b"\x00\x01" * 100)
    (src / "result.json").write_text("{}")
    (src / "sub").mkdir()  # folders are not outputs
    files = pack_dir(src)
    assert sorted(files) == ["model.ptz", "result.json"]
    assert pack_dir(src, ("model.ptz",)).keys() == {"model.ptz"}
    dst = unpack_to(files, tmp_path / "b")
    assert (dst / "model.ptz").read_bytes() == b"\x00\x01" * 100
    with pytest.raises(ValueError, match="plain file name"):
        unpack_to({"../x": b""}, tmp_path / "c")


def test_bpb_and_the_real_runner_mix_agree_with_golf_core():
    from golf_core.eval.config import MixerConfig

    rng = np.random.default_rng(0)
    n = 1000
    stats = {"p_model": rng.uniform(0.01, 1, n), "entropy": rng.uniform(0, 6, n), "bytes": rng.integers(1, 5, n)}
    ngram = {"order": rng.integers(0, 5, n).astype(np.int8), "p_ngram": rng.uniform(0, 1, n)}
    r = GolfRunner()
    mixer = MixerConfig(mode="normalized", orders=(2, 3, 4)).model_dump(mode="json")
    nll = r.mix_nll(stats, ngram, mixer)
    assert bpb_of(nll, stats["bytes"])[1] == pytest.approx(float(nll.sum()) / math.log(2) / stats["bytes"].sum())
    from golf_core.eval.mix import mix_bpb

    assert bpb_of(nll, stats["bytes"])[1] == pytest.approx(mix_bpb(stats, ngram, [MixerConfig(**mixer)])[0], rel=1e-9)
    with pytest.raises(ValueError, match="alpha_base"):
        r.mixer_config({"alpha_base": 0.9, "alpha_range": 0.5})
