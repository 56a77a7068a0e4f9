"""`golf plan`'s GPU memory per rank: the meta-device count of the full #779 model against a hand
count from its config, the baseline against its measured peak, and the one-line refusal."""
from __future__ import annotations

from pathlib import Path

import pytest

from golf_core.presets import load_preset
from orchestrator.plan.estimate import (ACT_ELEMS_D, ACT_ELEMS_H, ACT_ELEMS_KV, GIB, LOGIT_COPIES,
                                   RUNTIME_RESERVE_BYTES, train_memory)
from tests.orchestrator.cli.test_spec import golf
from tests.orchestrator.spec.test_sweep import SMOKE

PR779_SPEC = Path(__file__).resolve().parents[3] / "experiments" / "records" / "pr779.yaml"


def test_pr779_memory_matches_a_hand_count():
    run = load_preset("pr779")
    m = run.model
    d, L, V, heads = m.model_dim, m.num_layers, m.vocab_size, m.num_heads
    kv = m.num_kv_heads * d // heads
    h = int(m.mlp_mult * d)
    assert (d, L, kv, h) == (512, 11, 512, 1792)
    # by hand: per block q, k, v, out projections; MLP fc + proj; attn/mlp scales, resid_mix, q_gain
    block_mats = [d * d, kv * d, kv * d, d * d, h * d, d * h]
    block = sum(block_mats) + d + d + 2 * d + heads
    tables = V * d + m.bigram_vocab_size * m.bigram_dim + V * m.ve_dim  # tok_emb, bigram, value embed
    mats = [d * m.bigram_dim] + block_mats * L + [kv * m.ve_dim]  # Muon, in the model's order
    scalars = (L // 2 + 0) * d + 1 + d + len(m.ve_layers) + 1  # skips (5 x d), bigram scale, smear, VE scales
    n = L * block + tables + d * m.bigram_dim + kv * m.ve_dim + scalars
    assert n == 33_317_980  # #779's seed-1337 log: model_params:33317980
    mem = train_memory(run, ranks=8)
    assert mem.n_params == n
    # bf16 embedding tables (upstream_dtypes), fp32 everything else
    assert mem.weights == mem.grads == 2 * tables + 4 * (n - tables)
    adam = 2 * (2 * tables + 4 * (n - tables - sum(mats)))  # exp_avg + exp_avg_sq in the params' dtypes
    muon = 4 * sum(mats[0::8]) + 2 * sum(mats)  # rank 0's momentum share + the bf16 flat update
    assert mem.optimizer == adam + muon
    assert mem.averaging == 4 * n  # EMA 0.997 keeps an fp32 copy
    assert mem.ddp == mem.grads
    micro = 786_432 // 8  # 48 sequences of 2048 per micro-batch
    per_token = L * (ACT_ELEMS_D * d + ACT_ELEMS_KV * kv + ACT_ELEMS_H * h) * 2 + LOGIT_COPIES * V * 4
    assert mem.activations == micro * per_token
    assert 15 * GIB < mem.total < 40 * GIB
    # fp32 (autocast off): the activations double, tables count 4 bytes
    fp32 = train_memory(load_preset("pr779", ["train.autocast=off"]), ranks=8)
    assert fp32.weights == 4 * n and fp32.activations > 1.9 * mem.activations


def test_baseline_memory_near_its_measured_peak():
    # upstream baseline on one H100, 524,288 tokens/step: peak 10.3 GiB (CONTEXT.md anchor)
    mem = train_memory(load_preset("baseline"), ranks=1)
    assert mem.n_params == 17_059_912
    assert mem.total / GIB == pytest.approx(10.3, rel=0.15)
    assert mem.total - RUNTIME_RESERVE_BYTES < 10.3 * GIB


def test_plan_reports_memory_and_refuses_what_does_not_fit(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert golf(["plan", str(PR779_SPEC)]) == 0
    out = capsys.readouterr().out
    assert "GPU memory per rank, train/s1337 (8 ranks, 33,317,980 params)" in out and "fits 80 GiB" in out
    assert golf(["plan", str(PR779_SPEC), "--gpu-mem-gib", "16"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1
    assert "train/s1337: estimated 23.8 GiB per rank does not fit 16 GiB of GPU memory" in cap.err
    # the same limit from the spec
    spec = tmp_path / "small_gpu.yaml"
    spec.write_text(PR779_SPEC.read_text().replace("limits:\n", "limits:\n  gpu_mem_gib: 16\n"))
    assert golf(["plan", str(spec)]) == 2
    assert "does not fit 16 GiB" in capsys.readouterr().err
    # CPU-only sweeps have no GPU memory to report
    assert golf(["plan", str(SMOKE)]) == 0
    assert "GPU memory" not in capsys.readouterr().out
