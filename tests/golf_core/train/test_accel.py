"""The GPU's code paths on CPU: torch.compile (inductor compiles for CPU) and bf16 autocast, for
the training step of the baseline and #779 model options and for the eval paths (sliding window,
score-first TTT), each against eager fp32.

Tolerances: compiled vs eager, both fp32, differ only by inductor's fused kernels' summation
order: train losses agree to 1e-3 over a few steps (2e-2 when both run under bf16 autocast). bf16 autocast (bf16 matmuls and embedding
tables, bf16 Newton-Schulz) vs fp32: the first-step loss agrees to 2e-2 nats, later steps stay
finite and within 5e-2.
"""
from __future__ import annotations

import math

import pytest
import torch

from golf_core import accel
from golf_core.accel import resolve_autocast, resolve_compile
from golf_core.presets import load_preset
from golf_core.train import distributed as D
from golf_core.train.loop import Trainer

# Reduced width and depth; every #779 model option stays on (XSA, SmearGate, BigramHash, partial
# RoPE, value embeddings, LN scale, orthogonal init) and so do its training extras the step uses
# (late QAT toggled mid-run, CROWN-Q, weight decay, grad clipping).
SMALL = {"model.num_layers": 2, "model.model_dim": 64, "model.num_heads": 4, "model.num_kv_heads": 2,
         "train.train_batch_tokens": 512, "train.train_seq_len": 64, "train.micro_batches": 2,
         "train.warmup_steps": 0, "train.device": "cpu", "eval.seq_len": 64, "eval.stride": 32,
         "eval.batch_seqs": 8, "eval.max_tokens": 1024}
PR779_SMALL = {**SMALL, "model.num_kv_heads": 4, "model.xsa_last_n": 2, "model.bigram_vocab_size": 64,
               "model.bigram_dim": 16, "model.ve_dim": 16, "model.ve_layers": [1], "model.rope_dims": 8,
               "model.mlp_mult": 3.5}
STEPS = 3


def _cfg(preset: str, **over):
    base = PR779_SMALL if preset == "pr779" else SMALL
    sets = [f"{k}={v}" for k, v in {**base, **over}.items()]
    return load_preset(preset, sets)


def _losses(cfg, data_dir) -> list[float]:
    tr = Trainer(cfg, data_dir, D.DistContext(0, 1, 0, torch.device("cpu"), owns_group=False))
    out = []
    for step in range(STEPS):
        if step == STEPS - 1 and cfg.train.late_qat_threshold > 0:
            tr.set_qat(True)  # the compiled graph must take QAT turning on (a recompile)
        tr.zero_grad()
        out.append(float(tr.forward_backward()))
        tr.optimizer_step(1.0, step)
    return out


def test_auto_is_todays_behaviour_and_modes_force_the_gpu_path():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_compile("auto", cuda) and not resolve_compile("auto", cpu)
    assert resolve_compile("on", cpu) and not resolve_compile("off", cuda)
    assert resolve_autocast("auto", cuda) == torch.bfloat16 and resolve_autocast("auto", cpu) is None
    assert resolve_autocast("bf16", cpu) == torch.bfloat16 and resolve_autocast("off", cuda) is None
    with pytest.raises(ValueError, match="compile: unknown mode"):
        resolve_compile("yes", cpu)
    # YAML reads on/off as booleans; older specs wrote compile: true/false/null
    t = load_preset("tiny", {"train": {"compile": True, "autocast": False}}).train
    assert (t.compile, t.autocast) == ("on", "off")
    assert load_preset("tiny", {"train": {"compile": None}}).train.compile == "auto"


def _compiled_vs_eager(preset, data_dir, autocast="off", **over):
    eager = _losses(_cfg(preset, **{"train.compile": "off", "train.autocast": autocast, **over}), data_dir)
    torch._dynamo.reset()
    compiled = _losses(_cfg(preset, **{"train.compile": "on", "train.autocast": autocast, **over}), data_dir)
    torch._dynamo.reset()
    return compiled, eager


# the baseline in fp32, #779 under bf16 autocast (the GPU's combination for the record)
@pytest.mark.parametrize(("preset", "autocast", "tol"), [("baseline", "off", 1e-3), ("pr779", "bf16", 2e-2)])
def test_compiled_training_step_equals_eager(preset, autocast, tol, synthetic_data_dir, monkeypatch):
    # dynamo with fullgraph=True + AOT autograd: a graph break or an untraceable op in either
    # preset fails here, as it would on the GPU; seconds instead of inductor's minutes on 2 cores
    monkeypatch.setattr(accel, "COMPILE_BACKEND", "aot_eager")
    compiled, eager = _compiled_vs_eager(preset, synthetic_data_dir, autocast)
    assert all(math.isfinite(x) for x in compiled)
    assert compiled == pytest.approx(eager, abs=tol), (compiled, eager)


@pytest.mark.slow
def test_inductor_compiled_training_step_equals_eager(synthetic_data_dir):
    # inductor itself (C++ codegen on CPU, Triton on GPU), on a one-layer baseline to bound the
    # build time; the bf16 / #779 combinations are covered above with aot_eager
    compiled, eager = _compiled_vs_eager("baseline", synthetic_data_dir, **{"model.num_layers": 1})
    assert all(math.isfinite(x) for x in compiled)
    assert compiled == pytest.approx(eager, abs=1e-3), (compiled, eager)


@pytest.mark.parametrize("preset", ["baseline", "pr779"])
def test_bf16_training_step_is_close_to_fp32(preset, synthetic_data_dir):
    fp32 = _losses(_cfg(preset, **{"train.compile": "off", "train.autocast": "off"}), synthetic_data_dir)
    cfg = _cfg(preset, **{"train.compile": "off", "train.autocast": "bf16"})
    tr = Trainer(cfg, synthetic_data_dir, D.DistContext(0, 1, 0, torch.device("cpu"), owns_group=False))
    assert tr.base.tok_emb.weight.dtype == torch.bfloat16 and tr.muon.ns_dtype == torch.bfloat16
    bf16 = _losses(cfg, synthetic_data_dir)
    assert all(math.isfinite(x) for x in bf16)
    assert bf16[0] == pytest.approx(fp32[0], abs=2e-2)
    assert bf16 == pytest.approx(fp32, abs=5e-2)


def test_eval_paths_under_bf16_autocast_match_fp32(synthetic_data_dir):
    # CUDA evaluates under bf16 autocast (sliding window and TTT's training steps); it does not
    # compile the eval model, so autocast is the eval's only GPU fork that changes numbers.
    from golf_core.data import build_byte_luts, find_tokenizer, load_split
    from golf_core.eval.chunked import evaluate_chunked
    from golf_core.eval.config import TTTConfig
    from golf_core.eval.sliding import evaluate_sliding
    from golf_core.model import GPT

    cfg = _cfg("pr779")
    torch.manual_seed(0)
    val = load_split(synthetic_data_dir, "val", cfg.model.vocab_size)
    luts = build_byte_luts(find_tokenizer(synthetic_data_dir), cfg.model.vocab_size, "cpu")
    model = GPT(cfg.model)
    ev = cfg.eval.model_copy(update={"chunk_tokens": 512})
    r = {m: evaluate_sliding(model, val, luts, ev, "cpu", autocast=m) for m in ("off", "bf16")}
    assert math.isfinite(r["bf16"]["val_bpb"]) and r["bf16"]["tokens_scored"] == r["off"]["tokens_scored"]
    assert r["bf16"]["val_bpb"] != r["off"]["val_bpb"]  # bf16 really ran
    assert r["bf16"]["val_bpb"] == pytest.approx(r["off"]["val_bpb"], rel=5e-3)
    ttt = TTTConfig(enabled=True, lr=1e-3, batch_seqs=4)
    c = {}
    for m in ("off", "bf16"):
        torch.manual_seed(0)
        c[m] = evaluate_chunked(GPT(cfg.model), val, luts, ev, ttt, "cpu", collect_stats=False, autocast=m)
    assert c["bf16"].ttt_steps == c["off"].ttt_steps > 0
    assert c["bf16"].sums.val_bpb == pytest.approx(c["off"].sums.val_bpb, rel=5e-3)
