"""Quantize -> dequantize: error bounds per scheme, clip search, pruning, packing, tensor rules."""
from __future__ import annotations

import io

import pytest
import torch

from golf_core.config import ConfigError, build
from golf_core.quant import QuantConfig, dequantize_state_dict, quantize_state_dict
from golf_core.quant.compress import CompressionError, compress, decompress, detect
from golf_core.quant.pack import pack_bits, unpack_bits
from golf_core.quant.quantize import INT8_CLIP_Q, quantize_int8, quantize_lowbit


def heavy_tailed(rows=96, cols=700, seed=0, scale=1.5) -> torch.Tensor:
    """Rows with different ranges (> 1, so the scale floor is not what decides) and outliers."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(rows, cols, generator=g) * torch.linspace(0.2, 1.0, rows)[:, None] * scale
    t[torch.rand(rows, cols, generator=g) < 0.001] *= 8.0
    return t


def test_lowbit_error_at_most_half_a_step_for_unclipped_entries():
    t = heavy_tailed()
    for bits in (5, 6):
        cr = 2 ** (bits - 1) - 1
        q, s = quantize_lowbit(t, bits, QuantConfig().clip_percentiles)
        assert q.dtype == torch.int8 and q.abs().max() <= cr
        sf = s.float()[:, None]
        err = (t - q.float() * sf).abs()
        unclipped = t.abs() <= cr * sf
        assert unclipped.float().mean() > 0.99
        assert (err[unclipped] <= sf.expand_as(t)[unclipped] / 2 * (1 + 1e-6)).all()


def test_int8_error_bound_like_upstream():
    t = heavy_tailed()
    q, s = quantize_int8(t)
    clip = torch.quantile(t.abs(), INT8_CLIP_Q, dim=1)[:, None]
    s16 = s.float()[:, None]
    err = (t - q.float() * s16).abs()
    unclipped = t.abs() <= clip
    # upstream rounds with the fp32 scale and stores it as fp16: half a step plus the fp16
    # rounding of the scale times |q| <= 127 (relative fp16 error <= 2^-11)
    bound = s16 * (0.5 + 127 * 2.0**-11) * (1 + 1e-6)
    assert (err[unclipped] <= bound.expand_as(t)[unclipped]).all()
    assert (err[unclipped] <= s16.expand_as(t)[unclipped] / 2 * 1.001).float().mean() > 0.95


def test_fewer_bits_more_error():
    sd = {"blocks.0.mlp.fc.weight": heavy_tailed()}
    mse = {}
    for scheme in ("int8", "int6", "int5"):
        obj, stats = quantize_state_dict(sd, QuantConfig(scheme=scheme))
        deq = dequantize_state_dict(obj)["blocks.0.mlp.fc.weight"]
        mse[scheme] = float((deq - sd["blocks.0.mlp.fc.weight"]).pow(2).mean())
        assert stats["quant_mse"] == pytest.approx(mse[scheme], rel=1e-4)
    assert mse["int5"] > mse["int6"] > mse["int8"] > 0


def test_row_clip_search_never_worse_than_tensor_search_nor_any_single_percentile():
    t = heavy_tailed(seed=1)
    pcts = QuantConfig().clip_percentiles

    def mse(q, s):
        return float((t - q.float() * s.float()[:, None]).pow(2).mean())

    row = mse(*quantize_lowbit(t, 5, pcts, "row"))
    tensor = mse(*quantize_lowbit(t, 5, pcts, "tensor"))
    singles = [mse(*quantize_lowbit(t, 5, (p,), "tensor")) for p in pcts]
    assert tensor == pytest.approx(min(singles), rel=1e-6)  # #779: the best single percentile
    assert row <= tensor * (1 + 1e-6)


def test_pruning_zeroes_the_smallest_fraction():
    t = heavy_tailed(rows=300, cols=300, seed=2)  # 90,000 elements: above the keep-float size
    obj, stats = quantize_state_dict({"blocks.0.attn.c_q.weight": t}, QuantConfig(prune_frac=0.1, scheme="int8"))
    assert stats["prune_frac_actual"] == pytest.approx(0.1, abs=1e-3)
    deq = dequantize_state_dict(obj)["blocks.0.attn.c_q.weight"]
    zero = deq == 0
    assert zero.float().mean() >= 0.1 - 1e-3
    pruned = (t.abs() < torch.quantile(t.abs(), 0.1))
    assert zero[pruned].all()
    assert t.abs()[pruned].max() <= t.abs()[~pruned].min()


@pytest.mark.parametrize("bits", [5, 6])
def test_bit_packing_roundtrip_and_size(bits):
    v = torch.randint(0, 2**bits, (1003,))
    packed = pack_bits(v, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == (1003 + 7) // 8 * bits
    assert torch.equal(unpack_bits(packed, bits, 1003), v)
    with pytest.raises(ValueError):
        pack_bits(torch.tensor([2**bits]), bits)


def test_packed_storage_dequantizes_identically():
    sd = {"blocks.0.mlp.fc.weight": heavy_tailed(seed=3), "blocks.0.attn.c_k.weight": heavy_tailed(seed=4)}
    a = dequantize_state_dict(quantize_state_dict(sd, QuantConfig(scheme="int5"))[0])
    obj, _ = quantize_state_dict(sd, QuantConfig(scheme="int5", storage="packed"))
    assert obj["q"]["blocks.0.mlp.fc.weight"].dtype == torch.uint8
    b = dequantize_state_dict(obj)
    for k in sd:
        assert torch.equal(a[k], b[k])


def test_tensor_rules_and_weights_only_load():
    big = heavy_tailed(rows=128, cols=600, seed=5)
    sd = {
        "tok_emb.weight": big.clone(),  # embeddings: int8 even under int5 (#779)
        "blocks.1.mlp.proj.weight": big.clone().T.contiguous(),
        "blocks.3.attn.c_v.weight": big.clone(),
        "blocks.0.attn_scale": torch.randn(64),  # control: fp32 (upstream) or fp16 (#779)
        "bigram.embed.weight": torch.randn(100, 8),  # small: fp16
        "steps": torch.tensor([3, 4]),  # non-float: exact
    }
    obj, stats = quantize_state_dict(sd, QuantConfig(scheme="int5", int6_last_n=1))
    meta = obj["meta"]
    assert meta["tok_emb.weight"]["bits"] == 8
    assert meta["blocks.1.mlp.proj.weight"]["bits"] == 5
    assert meta["blocks.3.attn.c_v.weight"]["bits"] == 6  # last block (of 4) kept at int6
    assert stats["num_int5"] == 1 and stats["num_int6"] == 1 and stats["num_int8"] == 1
    buf = io.BytesIO()
    torch.save(obj, buf)
    obj = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    out = dequantize_state_dict(obj)
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in sd.items()}
    assert torch.equal(out["blocks.0.attn_scale"], sd["blocks.0.attn_scale"])
    assert torch.equal(out["steps"], sd["steps"])
    assert torch.equal(out["bigram.embed.weight"], sd["bigram.embed.weight"].half().float())
    obj16, _ = quantize_state_dict(sd, QuantConfig(scheme="int5", control_fp32=False))
    assert obj16["float"]["blocks.0.attn_scale"].dtype == torch.float16


@pytest.mark.parametrize("name", ["zlib", "lzma", "zstd"])
def test_compressors_roundtrip_and_are_detected(name):
    data = bytes(range(256)) * 200
    blob = compress(data, name)
    assert detect(blob) == name and len(blob) < len(data)
    assert decompress(blob) == data
    assert decompress(compress(data, name, level=1)) == data


def test_unknown_blob_and_bad_levels_are_clear_errors():
    with pytest.raises(CompressionError):
        decompress(b"PK\x03\x04 not compressed")
    with pytest.raises(ConfigError, match="level"):
        build(QuantConfig, {"compressor": "zlib", "level": 22}, prefix="quant")
    with pytest.raises(ConfigError, match="clip_percentiles"):
        build(QuantConfig, {"clip_percentiles": [1.5]}, prefix="quant")
