"""Parity with PR #779's own `eval_val_sliding_ttt` (same weights, same tokens, CPU).

Needs #779's train_gpt.py, which is never committed: $GOLF_REFERENCE_DIR/parameter-golf/pr779/
(tests/fixtures/reference.py); skipped, naming the variable, where it is not set.
Chosen so #779's known deviations do not apply: (total - seq_len) % stride == 0 (no tail
double-scoring) and the n-gram vocabulary = max(val) + 1 (#779's uniform fallback uses that).
"""
from __future__ import annotations

import copy

import pytest
import torch

from golf_core.eval.chunked import evaluate_chunked
from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig
from golf_core.model import GPT, ModelConfig

from tests.fixtures.reference import load_reference_module

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]  # its CUDA autocast on CPU

# the record stack at toy size (every #779 option on)
MC = ModelConfig(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, mlp_mult=2.0, activation="leaky_relu2",
                 xsa_last_n=2, smear_gate=True, bigram_vocab_size=512, bigram_dim=32, rope_dims=8, ln_scale=True,
                 value_embed=True, ve_dim=32, ve_layers=(0, 1))


@pytest.fixture(scope="module")
def up():
    return load_reference_module("pr779_train_gpt", "pr779", "train_gpt.py")


def _models(up):
    torch.manual_seed(0)
    ours = GPT(MC)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for _, p in ours.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    theirs = up.GPT(vocab_size=1024, num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, mlp_mult=2,
                    tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0,
                    qk_gain_init=1.5, bigram_vocab_size=512, bigram_dim=32, xsa_last_n=2, rope_dims=8,
                    ln_scale=True, dtg=False, ve_enabled=True, ve_dim=32, ve_layers="0,1")
    theirs.load_state_dict(ours.state_dict(), strict=True)
    with torch.no_grad():  # #779's main warms its rotary caches outside inference mode first
        theirs.forward_logits(torch.zeros(1, 128, dtype=torch.int64))
    return ours, theirs


@pytest.mark.parametrize("mixer", [False, True], ids=["ttt", "ttt+hashed_mixer"])
def test_matches_pr779_eval(up, synthetic_data_dir, tokenizer_path, byte_luts, monkeypatch, mixer):
    import sentencepiece as spm

    from golf_core.data.shards import load_split
    from golf_core.eval.run import FusedMixer

    for k, v in {"USE_MIXER": str(int(mixer)), "QTTT": "1", "USE_POLYAK": "0"}.items():
        monkeypatch.setenv(k, v)
    val = load_split(synthetic_data_dir, "val")[: 128 + 64 * 46 + 1]
    ours, theirs = _models(up)
    luts = up.build_sentencepiece_luts(spm.SentencePieceProcessor(model_file=str(tokenizer_path)), 1024,
                                       torch.device("cpu"))
    _, ref_bpb = up.eval_val_sliding_ttt(
        up.Hyperparameters(), theirs, 0, 1, torch.device("cpu"), val, *luts, stride=64, ttt_epochs=1,
        ttt_lr=1e-3, ttt_freeze_blocks=1, eval_seq_len=128, ttt_chunk_tokens=1024, ttt_optimizer="adamw",
        ttt_temp=0.98, byte_weighted_ttt=True, adaptive_lr=False)
    ec = EvalConfig(seq_len=128, stride=64, batch_seqs=32, chunk_tokens=1024, temperature=0.98,
                    adaptive_temperature=True, audit_positions=0)
    fused = FusedMixer(MixerConfig(mode="hashed_target"), val, int(val.max()) + 1, "cpu") if mixer else None
    res = evaluate_chunked(copy.deepcopy(ours), val, byte_luts, ec, TTTConfig(enabled=True, lr=1e-3), "cpu",
                           on_scored=fused.on_scored if fused else None,
                           after_score=fused.absorb if fused else None)
    ours_bpb = (res.mix_sums if mixer else res.sums).val_bpb
    # #779 mixes in float32, we in float64: a few 1e-9; the neural path is bit-identical math
    assert abs(ours_bpb - ref_bpb) < (1e-7 if mixer else 1e-8), (ours_bpb, ref_bpb)
    assert res.ttt_params == sum(p.numel() for n, p in theirs.named_parameters()
                                 if "blocks.1.attn.c_q" in n or "norm" in n or "scale" in n)
