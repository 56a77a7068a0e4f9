"""The artifact on disk: byte accounting, the roundtrip, the limit verdict, bad input."""
from __future__ import annotations

import json

import pytest
import torch

import golf_core
from golf_core.eval.config import EvalSpec
from golf_core.export import export_script
from golf_core.model import GPT
from golf_core.presets import load_preset
from golf_core.quant import (ArtifactError, dequantize_state_dict, load_artifact, quantize_state_dict,
                             write_artifact)

# A small #779-style run: int5 + pruning + zstd, every model option on.
SMALL_779 = {
    "model": {"num_layers": 2, "model_dim": 128, "num_heads": 4, "num_kv_heads": 2, "bigram_vocab_size": 256,
              "bigram_dim": 64, "ve_dim": 64, "ve_layers": [1], "xsa_last_n": 2, "mlp_mult": 3.0},
    # a lower keep-float size so these small matrices take the int5 + pruning path
    "quant": {"level": 3, "keep_float_max_numel": 4096},
}


def trained_ish(cfg, seed=0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("preset,over", [("tiny", {}), ("pr779", SMALL_779)])
def test_byte_accounting_matches_files_on_disk(tmp_path, preset, over):
    cfg = load_preset(preset, over)
    info = write_artifact(trained_ish(cfg), cfg, tmp_path)
    on_disk = json.loads((tmp_path / "artifact.json").read_text())
    assert on_disk == info.to_dict() and "path" not in on_disk
    assert info.path == str(tmp_path)
    assert info.model_bytes == (tmp_path / "model.ptz").stat().st_size
    # the single-file script golf_core.export would ship for this run: well under the raw sources
    assert info.code_bytes == len(export_script(cfg, EvalSpec(eval=cfg.eval)).encode("utf-8"))
    assert 10_000 < info.code_bytes < sum(len(p.read_bytes()) for p in golf_core.source_files())
    assert info.artifact_bytes == info.model_bytes + info.code_bytes
    assert info.over_limit is False and info.limit_bytes == golf_core.ARTIFACT_LIMIT_BYTES
    assert info.code_version == golf_core.code_version("train")
    assert info.compressor == cfg.quant.compressor
    assert on_disk["run_config"] == cfg.model_dump(mode="json")
    assert info.quant_stats["raw_bytes"] > info.model_bytes  # it compressed
    if preset == "pr779":
        # 2 blocks x 6 matrices + bigram.proj (#779 classes any ".proj." as attn)
        assert info.quant_stats["num_int5"] == 13 and info.quant_stats["prune_frac_actual"] > 0.07


@pytest.mark.parametrize("preset,over", [("tiny", {}), ("pr779", SMALL_779)])
def test_roundtrip_gives_the_dequantized_state_dicts_logits(tmp_path, preset, over):
    cfg = load_preset(preset, over)
    model = trained_ish(cfg, seed=1).eval()
    write_artifact(model, cfg, tmp_path / "written")
    (tmp_path / "written").rename(tmp_path / "moved")  # artifacts travel (MLflow store, other nodes)
    loaded, run_cfg, info = load_artifact(tmp_path / "moved")
    assert run_cfg == cfg and not loaded.training and info.path == str(tmp_path / "moved")

    obj, _ = quantize_state_dict(model.state_dict(), cfg.quant, num_layers=cfg.model.num_layers)
    reference = GPT(cfg.model)
    reference.load_state_dict(dequantize_state_dict(obj))
    reference.eval()
    x = torch.randint(0, cfg.model.vocab_size, (2, 24))
    with torch.no_grad():
        got, want, orig = loaded.forward_logits(x), reference.forward_logits(x), model.forward_logits(x)
    assert torch.equal(got, want)
    assert not torch.equal(got, orig)  # quantization changed something
    if preset == "tiny":  # every tensor of the tiny model is small: fp16 passthrough only
        assert (got - orig).abs().max() < 1e-2


def test_over_limit_is_reported_not_hidden(tmp_path, monkeypatch):
    cfg = load_preset("tiny")
    model = trained_ish(cfg)
    info = write_artifact(model, cfg, tmp_path / "a", limit_bytes=1000)
    assert info.over_limit is True and info.limit_bytes == 1000
    assert (tmp_path / "a" / "model.ptz").is_file()
    monkeypatch.setattr(golf_core, "ARTIFACT_LIMIT_BYTES", info.artifact_bytes - 1)
    assert write_artifact(model, cfg, tmp_path / "b").over_limit is True
    monkeypatch.setattr(golf_core, "ARTIFACT_LIMIT_BYTES", info.artifact_bytes + 10_000)
    assert write_artifact(model, cfg, tmp_path / "c").over_limit is False


def test_missing_or_corrupt_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="artifact.json"):
        load_artifact(tmp_path)
    cfg = load_preset("tiny")
    write_artifact(trained_ish(cfg), cfg, tmp_path)
    (tmp_path / "model.ptz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not zlib, xz or zstd"):
        load_artifact(tmp_path)


def test_compressor_choice_changes_the_bytes_not_the_weights(tmp_path):
    cfg = load_preset("tiny", {"quant": {"scheme": "int6"}})
    model = trained_ish(cfg, seed=2)
    x = torch.randint(0, 1024, (1, 16))
    logits = []
    for comp in ("zlib", "lzma", "zstd"):
        c = load_preset("tiny", {"quant": {"scheme": "int6", "compressor": comp}})
        info = write_artifact(model, c, tmp_path / comp)
        assert info.compressor == comp
        loaded, _, _ = load_artifact(tmp_path / comp)
        with torch.no_grad():
            logits.append(loaded.forward_logits(x))
    assert torch.equal(logits[0], logits[1]) and torch.equal(logits[0], logits[2])


def test_best_compressor_keeps_the_smallest(tmp_path):
    cfg = load_preset("tiny", {"quant": {"compressor": "best"}})
    info = write_artifact(trained_ish(cfg, seed=3), cfg, tmp_path)
    sizes = info.quant_stats["bytes_by_compressor"]
    assert set(sizes) == {"zlib", "lzma", "zstd"}
    assert info.model_bytes == min(sizes.values()) and sizes[info.compressor] == info.model_bytes
    load_artifact(tmp_path)  # readable whichever won
