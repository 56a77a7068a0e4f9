"""Our quantizers against upstream's and PR #779's own functions. The scripts come from
$GOLF_REFERENCE_DIR/parameter-golf/ (tests/fixtures/reference.py); skipped, naming the variable,
where it is not set."""
from __future__ import annotations

import pytest
import torch

from golf_core.model import GPT
from golf_core.presets import load_preset
from golf_core.quant import dequantize_state_dict, quantize_state_dict
from golf_core.quant.quantize import quantize_int8, quantize_lowbit

from tests.fixtures.reference import load_reference_module


@pytest.fixture(scope="module")
def ref():
    return {"base": load_reference_module("ref_q_base", "train_gpt.py"),
            "pr779": load_reference_module("ref_q_pr779", "pr779", "train_gpt.py")}


def test_int8_matches_upstream(ref):
    g = torch.Generator().manual_seed(0)
    for t in (torch.randn(64, 300, generator=g) * 0.7, torch.randn(5000, generator=g)):
        q, s = quantize_int8(t)
        rq, rs = ref["base"].quantize_float_tensor(t)
        assert torch.equal(q, rq) and torch.equal(s, rs)


def test_int5_tensor_search_matches_pr779(ref):
    g = torch.Generator().manual_seed(1)
    t = torch.randn(64, 300, generator=g) * torch.linspace(0.01, 2.0, 64)[:, None]
    q, s = quantize_lowbit(t, 5, (0.999, 0.9995, 0.9999, 0.99999, 1.0), search="tensor")
    rq, rs = ref["pr779"].quantize_int6_per_row(t)  # clip_range 15 = int5
    assert torch.equal(q, rq) and torch.equal(s, rs)


def test_pr779_preset_export_matches_pr779_exporter(ref):
    """Prune + mixed_quantize_int6 + dequantize_mixed_int6 (#779 main) vs our pr779 quant config,
    on a model small enough for CPU but with every tensor class present."""
    over = {"model": {"num_layers": 2, "model_dim": 256, "num_heads": 4, "num_kv_heads": 4, "mlp_mult": 3.5,
                      "bigram_vocab_size": 2048, "bigram_dim": 64, "ve_dim": 64, "ve_layers": [1]},
            "quant": {"keep_float_max_numel": 65_536}}
    cfg = load_preset("pr779", over)
    torch.manual_seed(0)
    model = GPT(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    big = [k for k, v in sd.items() if v.numel() > 65_536]
    assert len(big) >= 5  # tok_emb, bigram table, MLP matrices: the quantized paths are exercised

    ref_sd = {k: v.clone() for k, v in sd.items()}
    for v in ref_sd.values():  # #779 main(): PRUNE_PCT
        if v.ndim == 2 and v.numel() > 65536:
            v[v.abs() < torch.quantile(v.abs().float(), cfg.quant.prune_frac)] = 0.0
    res, meta = ref["pr779"].mixed_quantize_int6(ref_sd, {"mlp", "attn"})
    want = ref["pr779"].dequantize_mixed_int6(res, meta, ref_sd)

    obj, _ = quantize_state_dict(sd, cfg.quant, num_layers=cfg.model.num_layers)
    got = dequantize_state_dict(obj)
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
