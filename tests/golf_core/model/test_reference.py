"""Our GPT against the upstream scripts' own GPT classes: same seed -> same initial weights, same
loss and logits after a shared random perturbation (incl. #779 late QAT). The scripts come from
$GOLF_REFERENCE_DIR/parameter-golf/ (tests/fixtures/reference.py); skipped, naming the variable,
where it is not set."""
from __future__ import annotations

import pytest
import torch

from golf_core.model import GPT, ModelConfig

from tests.fixtures.reference import load_reference_module

# where each reference script lives under parameter-golf/
SCRIPTS = {"train_gpt_baseline.py": ("train_gpt.py",), "train_gpt_pr779.py": ("pr779", "train_gpt.py")}


def _load(name: str, file: str):
    return load_reference_module(name, *SCRIPTS[file])


def _compare(ref_model, ours, seq_lens=(32,)):
    rs, os_ = ref_model.state_dict(), ours.state_dict()
    assert set(rs) == set(os_)
    for k in rs:
        assert torch.equal(rs[k], os_[k]), k  # identical init from the same seed
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for v in rs.values():
            v.add_(torch.randn(v.shape, generator=g) * 0.05)
    ours.load_state_dict(rs)
    for T in seq_lens:
        x = torch.randint(0, 1024, (1, T), generator=g)
        y = torch.randint(0, 1024, (1, T), generator=g)
        assert ours(x, y).item() == pytest.approx(ref_model(x, y).item(), abs=1e-6)


def test_matches_upstream_baseline():
    base = _load("ref_baseline", "train_gpt_baseline.py")
    torch.manual_seed(0)
    ref = base.GPT(vocab_size=1024, num_layers=3, model_dim=64, num_heads=4, num_kv_heads=2, mlp_mult=2,
                   tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0,
                   qk_gain_init=1.5)
    torch.manual_seed(0)
    ours = GPT(ModelConfig(num_layers=3, model_dim=64, num_heads=4, num_kv_heads=2))
    _compare(ref, ours)


def test_matches_pr779_stack_including_qat():
    p = _load("ref_pr779", "train_gpt_pr779.py")
    kw = dict(num_layers=4, model_dim=128, num_heads=4, num_kv_heads=2, mlp_mult=3.5)
    torch.manual_seed(0)
    ref = p.GPT(vocab_size=1024, tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0,
                rope_base=10000.0, qk_gain_init=1.5, bigram_vocab_size=64, bigram_dim=64, xsa_last_n=3,
                rope_dims=16, ln_scale=True, dtg=True, ve_enabled=True, ve_dim=64, ve_layers="2,3", **kw)
    torch.manual_seed(0)
    ours = GPT(ModelConfig(activation="leaky_relu2", xsa_last_n=3, smear_gate=True, bigram_vocab_size=64,
                           bigram_dim=64, rope_dims=16, rope_train_seq_len=1024, value_embed=True, ve_dim=64,
                           ve_layers=(2, 3), ln_scale=True, gated_attention=True, orthogonal_init=True, **kw))
    _compare(ref, ours, seq_lens=(32, 1040))  # 1040 > 1024: #779's NTK base rescale
    try:
        p.CastedLinear._qat_enabled = True  # #779's class-level switch
        ours.set_qat(True, bits=5)
        ref.train(), ours.train()
        x = torch.randint(0, 1024, (2, 16))
        assert ours(x, x).item() == pytest.approx(ref(x, x).item(), abs=1e-6)
    finally:
        p.CastedLinear._qat_enabled = False
