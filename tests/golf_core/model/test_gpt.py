"""GPT: parameter counts, the #779 options, loss/logits consistency, causality, QAT, CROWN-Q."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from golf_core.config import ConfigError, build
from golf_core.model import GPT, ModelConfig, count_params, crownq_penalty, split_params
from golf_core.model.layers import CastedLinear
from golf_core.presets import load_preset

# Every #779 option on, at a width that runs in milliseconds.
TINY_779 = {
    "num_layers": 4, "model_dim": 64, "num_heads": 4, "num_kv_heads": 2, "bigram_dim": 32,
    "bigram_vocab_size": 128, "ve_dim": 32, "ve_layers": [2, 3], "xsa_last_n": 3,
    "rope_train_seq_len": 16, "gated_attention": True,
}


def tiny779() -> ModelConfig:
    return load_preset("pr779", {"model": TINY_779}).model


def perturb_(model: torch.nn.Module, std: float = 0.1, seed: int = 0) -> None:
    """Zero-init projections make attention a no-op at init; give every weight some signal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def test_baseline_param_count_is_upstreams():
    with torch.device("meta"):
        model = GPT(ModelConfig())
    assert count_params(model) == 17_059_912


def test_pr779_preset_param_count_matches_its_log():
    # pr779_log_seed1337.txt: "model_params:33317980" (orthogonal init does not change the count
    # and is not implemented for meta tensors)
    cfg = load_preset("pr779", {"model": {"orthogonal_init": False}}).model
    with torch.device("meta"):
        model = GPT(cfg)
    assert count_params(model) == 33_317_980
    assert sum(1 for m in model.modules() if isinstance(m, CastedLinear)) == 68  # "68 int5 layers"


def test_pr779_tiny_forward_backward_with_every_option():
    cfg = tiny779()
    assert cfg.smear_gate and cfg.value_embed and cfg.ln_scale and cfg.orthogonal_init and cfg.rope_dims
    torch.manual_seed(0)
    model = GPT(cfg)
    model.set_qat(True, bits=5, int6_last_n=1)
    x = torch.randint(0, cfg.vocab_size, (2, 32))  # 32 > rope_train_seq_len: NTK rescale path
    loss = model(x, torch.roll(x, -1, 1))
    loss = loss + 0.01 * crownq_penalty(model)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert model.blocks[-1].dtg_gate is not None and model.smear is not None and model.bigram is not None


def test_tiny_preset_builds_and_runs():
    cfg = load_preset("tiny").model
    assert (cfg.num_layers, cfg.model_dim) == (2, 64)
    model = GPT(cfg)
    x = torch.randint(0, cfg.vocab_size, (1, 16))
    assert model.forward_logits(x).shape == (1, 16, cfg.vocab_size)


@pytest.mark.parametrize("stack", ["baseline", "pr779"])
def test_forward_logits_agree_with_loss(stack):
    cfg = load_preset("tiny").model if stack == "baseline" else tiny779()
    torch.manual_seed(1)
    model = GPT(cfg)
    perturb_(model)
    x = torch.randint(0, cfg.vocab_size, (2, 24))
    y = torch.randint(0, cfg.vocab_size, (2, 24))
    logits = model.forward_logits(x)
    assert logits.dtype == torch.float32
    assert logits.abs().max() <= cfg.logit_softcap
    ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    assert torch.allclose(model(x, y), ce, atol=1e-6)


@pytest.mark.parametrize("stack", ["baseline", "pr779"])
def test_causal(stack):
    cfg = load_preset("tiny").model if stack == "baseline" else tiny779()
    torch.manual_seed(2)
    model = GPT(cfg).eval()
    perturb_(model)
    x = torch.randint(0, cfg.vocab_size, (1, 32))
    t = 11
    x2 = x.clone()
    x2[:, t + 1:] = torch.randint(0, cfg.vocab_size, (1, 32 - t - 1))
    with torch.no_grad():
        a, b = model.forward_logits(x), model.forward_logits(x2)
    assert torch.allclose(a[:, : t + 1], b[:, : t + 1], atol=1e-5)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:], atol=1e-3)  # the change is visible later


def test_qat_only_in_training_mode_and_switchable():
    cfg = tiny779()
    torch.manual_seed(3)
    model = GPT(cfg)
    perturb_(model, std=0.3)
    x = torch.randint(0, cfg.vocab_size, (1, 16))
    y = torch.roll(x, -1, 1)
    model.train()
    plain = model(x, y).item()
    model.set_qat(True, bits=5, int6_last_n=1)
    assert model.qat_enabled
    assert model(x, y).item() != plain
    ranges = {m.qat_clip_range for m in model.blocks[-1].modules() if isinstance(m, CastedLinear)}
    assert ranges == {31}
    assert model.blocks[0].attn.c_q.qat_clip_range == 15
    model.eval()
    assert model(x, y).item() == pytest.approx(plain, abs=1e-6)  # eval never fake-quantizes
    model.train()
    model.set_qat(False)
    assert not model.qat_enabled
    assert model(x, y).item() == pytest.approx(plain, abs=1e-6)


def test_crownq_penalty_formula():
    cfg = load_preset("tiny").model
    torch.manual_seed(4)
    model = GPT(cfg)
    assert crownq_penalty(model).item() == 0.0  # only while QAT is on (#779)
    model.set_qat(True, bits=6)
    expected = 0.0
    for m in model.modules():
        if isinstance(m, CastedLinear):
            w = m.weight.detach()
            delta = w.abs().amax(dim=1) / 31.0
            expected += float((w.pow(2) * delta.pow(2)[:, None]).mean())
    pen = crownq_penalty(model)
    assert pen.item() == pytest.approx(expected / 12.0, rel=1e-5)
    pen.backward()
    assert model.blocks[0].mlp.fc.weight.grad.abs().sum() > 0


def test_split_params_covers_every_parameter_once():
    model = GPT(tiny779())
    groups = split_params(model)
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    member = {k: {id(p) for p in g} for k, g in groups.items()}
    assert id(model.tok_emb.weight) in member["embed"] and id(model.bigram.embed.weight) in member["embed"]
    assert id(model.blocks[0].attn.c_q.weight) in member["matrix"] and id(model.bigram.proj.weight) in member["matrix"]
    assert id(model.skip_weights) in member["scalar"] and id(model.smear.gate) in member["scalar"]

def test_partial_rope_leaves_other_dims_unrotated():
    from golf_core.model.layers import apply_rope, rope_tables

    cos, sin = rope_tables(8, 4, 10000.0, 0, torch.device("cpu"))
    x = torch.randn(1, 8, 2, 16)
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 4:], x[..., 4:])
    assert torch.allclose(y[..., :4].norm(dim=-1), x[..., :4].norm(dim=-1), atol=1e-5)  # a rotation
    # NTK rescale only beyond the training length
    c1, _ = rope_tables(8, 4, 10000.0, 8, torch.device("cpu"))
    c2, _ = rope_tables(16, 4, 10000.0, 8, torch.device("cpu"))
    assert torch.equal(c1, cos) and not torch.allclose(c2[:, :8], cos)


@pytest.mark.parametrize("bad", [
    {"model_dim": 60, "num_heads": 8},
    {"rope_dims": 3},
    {"ve_layers": [9]},
    {"bigram_vocab_size": 1},
])
def test_bad_model_config_is_one_clear_error(bad):
    with pytest.raises(ConfigError):
        build(ModelConfig, {"num_layers": 2, **bad}, prefix="model")
