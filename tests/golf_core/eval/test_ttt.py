"""Drift-free TTT: which parameters adapt (and how many), that it adapts, ranks stay in sync."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf_core.eval.chunked import evaluate_chunked
from golf_core.eval.config import EvalConfig, TTTConfig
from golf_core.eval.ttt import count_ttt_params, select_ttt_params
from tests.golf_core.eval.neural_kit import tiny_model, val_stream

EC = EvalConfig(seq_len=32, stride=16, batch_seqs=8, chunk_tokens=256, audit_positions=0)


def test_pr779_preset_adapts_273412_params():
    """#779's record log: `ttt:params unfrozen=273412` (last block's c_q + norms/scales)."""
    from golf_core.model import GPT
    from golf_core.presets import load_preset

    with torch.device("meta"):  # shapes only, no memory, no init cost
        model = GPT(load_preset("pr779").model)
    names = [n for n, _ in select_ttt_params(model, TTTConfig())]
    assert count_ttt_params(model, TTTConfig()) == 273_412
    assert "blocks.10.attn.c_q.weight" in names and "blocks.9.attn.c_q.weight" not in names
    assert count_ttt_params(model, TTTConfig(adapt_norms=False)) == 512 * 512
    assert count_ttt_params(model, TTTConfig(last_k_blocks=2)) == 273_412 + 512 * 512


def test_ttt_changes_only_the_intended_params(synthetic_data_dir, byte_luts):
    model = tiny_model(5)
    val = val_stream(synthetic_data_dir, 1025)
    cfg = TTTConfig(enabled=True, lr=1e-2, batch_seqs=4)
    chosen = {n for n, _ in select_ttt_params(model, cfg)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    base = evaluate_chunked(tiny_model(5), val, byte_luts, EC, TTTConfig(), "cpu")
    res = evaluate_chunked(model, val, byte_luts, EC, cfg, "cpu")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= chosen
    assert "blocks.1.attn.c_q.weight" in changed and "blocks.0.attn.c_q.weight" not in changed
    assert res.ttt_params == sum(before[n].numel() for n in chosen)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    # 4 chunks, 8 seqs of 32 per chunk, batches of 4, last chunk untrained: 3 x 2 steps
    assert res.n_chunks == 4 and res.ttt_steps == 6
    # chunk 0 is scored before any update, so it matches the frozen model exactly; later ones differ
    st, st0 = res.stats, base.stats
    first = st["chunk"] == 0
    assert np.array_equal(st["p_model"][first], st0["p_model"][first])
    assert not np.allclose(st["p_model"][~first], st0["p_model"][~first])


def test_lr_schedule_is_cosine_across_chunks(byte_luts):
    from golf_core.eval.ttt import ChunkTTT

    model = tiny_model(0)
    t = ChunkTTT(model, TTTConfig(enabled=True, lr=3e-5), EC, byte_luts, "cpu", 10_000, 5)
    assert [round(t.lr_at(c) / 3e-5, 6) for c in range(5)] == [1.0, 0.853553, 0.5, 0.146447, 0.0]
    t.close()
    with pytest.raises(ValueError, match="no parameters"):
        select_ttt_params(model, TTTConfig(last_k_blocks=0, adapt_norms=False))

# The 2-rank TTT check (ranks stay in sync, uneven shares don't deadlock) shares one spawned
# group with the 2-rank == 1-rank check: test_chunked.py::test_two_ranks_equal_one_rank.
