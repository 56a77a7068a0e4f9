"""eval.tail (score | drop) and fused == factorized for every (seq_len, stride, tail),
stride == seq_len included: the fused eval (what a record runs), `golf mix` over the neural
pass (golf_core.eval.mix_dir) and a sweep's mix job (workers.runner.GolfRunner) agree to 1e-6 bpb."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig, TTTConfig
from golf_core.eval.sliding import truncate_val
from tests.golf_core.eval.test_run import artifact_dir  # noqa: F401  (module fixture)

MAX_TOKENS = 3000  # not a multiple of any seq_len below: every case has a tail
MIXER = MixerConfig(mode="normalized", buckets=4096, warmup_tokens=100)
# max_token: the miss probability depends on the scored stream's largest token (a dropped tail too)
HASHED = MixerConfig(mode="hashed_target", buckets=4096, miss_vocab="max_token")
TABLE = [  # (seq_len, stride, tail)
    (32, 32, "score"), (32, 32, "drop"),  # stride == seq_len: upstream's non-overlapping eval
    (32, 16, "score"), (32, 16, "drop"),
    (48, 48, "drop"), (48, 5, "score"),
    (24, 24, "score"), (24, 20, "drop"),
]


def test_truncate_val_tail():
    val = torch.arange(101)  # 100 targets
    assert truncate_val(val, EvalConfig(seq_len=32, stride=32)).numel() == 101
    assert truncate_val(val, EvalConfig(seq_len=32, stride=32, tail="drop")).numel() == 97  # 3 * 32 + 1
    assert truncate_val(val, EvalConfig(seq_len=32, stride=8, tail="drop", max_tokens=70)).numel() == 65
    with pytest.raises(ValueError, match="eval.tail=drop: 20 targets hold no whole seq_len 32 block"):
        truncate_val(val[:21], EvalConfig(seq_len=32, stride=32, tail="drop"))


@pytest.fixture(scope="module")
def val(synthetic_data_dir):
    from golf_core.data.shards import load_split

    return load_split(synthetic_data_dir, "val").numpy()


@pytest.mark.parametrize("seq_len, stride, tail", TABLE)
def test_fused_equals_factorized_for_every_geometry(seq_len, stride, tail, artifact_dir, synthetic_data_dir,  # noqa: F811
                                                    val, tmp_path):
    from golf_core.eval.mix import mix_nll
    from golf_core.eval.mix_dir import grid_rows
    from golf_core.eval.run import run_eval
    from golf_core.eval.stats import bpb_from_stats, load_stats
    from workers.runner import GolfRunner

    ev = EvalConfig(seq_len=seq_len, stride=stride, tail=tail, batch_seqs=8, chunk_tokens=512,
                    max_tokens=MAX_TOKENS, audit_positions=8)
    neural = run_eval(artifact_dir, EvalSpec(eval=ev, mixer=MixerConfig(), ttt=TTTConfig()),
                      synthetic_data_dir, tmp_path / "neural")
    expect = (MAX_TOKENS // seq_len) * seq_len if tail == "drop" else MAX_TOKENS
    assert neural["tokens_scored"] == expect
    stats = load_stats(tmp_path / "neural")
    assert np.array_equal(np.sort(stats["pos"]), np.arange(1, expect + 1)), "every kept target once"
    runner = GolfRunner()
    for mixer in (MIXER, HASHED):
        fused = run_eval(artifact_dir, EvalSpec(eval=ev, mixer=mixer, ttt=TTTConfig()), synthetic_data_dir,
                         tmp_path / f"fused_{mixer.mode}")
        assert fused["val_bpb_model"] == pytest.approx(neural["val_bpb"], rel=1e-12)
        golf_mix = grid_rows(tmp_path / "neural", [mixer], data_dir=synthetic_data_dir)[0]["val_bpb"]
        ng = runner.ngram(val, stats, mixer.model_dump(mode="json"), ev.chunk_tokens, 1024)  # full stream, as a worker
        sweep = bpb_from_stats(stats, mix_nll(stats, ng, mixer))
        assert abs(fused["val_bpb"] - golf_mix) < 1e-6, (fused["val_bpb"], golf_mix)
        assert abs(fused["val_bpb"] - sweep) < 1e-6, (fused["val_bpb"], sweep)
        assert fused["val_bpb"] != pytest.approx(neural["val_bpb"], abs=1e-4), "the mixer changed the score"
