"""The optimizer split (upstream + #779 modules) and the #779 training extras in the loop."""
from __future__ import annotations

import pytest
import torch

from golf_core.model import GPT
from golf_core.presets import load_preset
from golf_core.train import run_training
from golf_core.train.muon import Muon
from golf_core.train.optim import build_optimizers

# The pr779 stack (bigram hash, value embeddings, smear gate, XSA, ...) at a width for CPU tests.
SMALL_779 = {"model": {"num_layers": 3, "model_dim": 64, "num_heads": 4, "num_kv_heads": 2, "bigram_dim": 32,
                       "bigram_vocab_size": 128, "ve_dim": 32, "ve_layers": [1, 2], "xsa_last_n": 2,
                       "mlp_mult": 2.0, "rope_train_seq_len": 64}}


def test_every_parameter_in_exactly_one_group_with_its_lr():
    cfg = load_preset("pr779", SMALL_779)
    model = GPT(cfg.model)
    opts, muon = build_optimizers(model, cfg.train, cfg.model.tie_embeddings, ns_dtype=torch.float32)
    owner = {}
    for opt in opts:
        for group in opt.param_groups:
            for p in group["params"]:
                assert id(p) not in owner
                owner[id(p)] = (type(opt).__name__, group["lr"], group.get("weight_decay", 0.0))
    names = dict(model.named_parameters())
    assert set(owner) == {id(p) for p in names.values()}
    t = cfg.train
    for name in ("tok_emb.weight", "bigram.embed.weight", "ve_shared.embed.weight"):
        assert owner[id(names[name])] == ("AdamW", t.tied_embed_lr, t.adam_wd), name
    for name in ("bigram.proj.weight", "ve_shared.proj.weight", "blocks.0.attn.c_q.weight"):
        if name in names:
            assert owner[id(names[name])] == ("Muon", t.matrix_lr, t.muon_wd), name
    for name, p in names.items():
        if p.ndim < 2 or "resid_mix" in name or "skip_weights" in name:
            assert owner[id(p)] == ("AdamW", t.scalar_lr, t.adam_wd), name
    assert isinstance(muon, Muon) and all(p.ndim == 2 for p in muon.param_groups[0]["params"])
    assert all(g["base_lr"] == g["lr"] for opt in opts for g in opt.param_groups)


def test_untied_head_gets_plain_adam_at_head_lr():
    cfg = load_preset("tiny", {"model": {"tie_embeddings": False}})
    model = GPT(cfg.model)
    opts, _ = build_optimizers(model, cfg.train, tie_embeddings=False, ns_dtype=torch.float32)
    head = [o for o in opts if any(p is model.lm_head.weight for g in o.param_groups for p in g["params"])]
    assert len(head) == 1 and type(head[0]) is torch.optim.Adam
    assert head[0].param_groups[0]["lr"] == cfg.train.head_lr
    emb = [o for o in opts if any(p is model.tok_emb.weight for g in o.param_groups for p in g["params"])]
    assert emb[0].param_groups[0]["lr"] == cfg.train.embed_lr  # untied: embed_lr, not tied_embed_lr


EXTRAS = ["train.iterations=6", "train.max_wallclock_seconds=0", "train.warmdown_iters=4",
          "train.train_log_every=1", "train.grad_clip_norm=0.3", "train.muon_wd=0.04", "train.adam_wd=0.04",
          "train.late_qat_threshold=0.5", "train.crownq_lambda=0.01", "eval.max_tokens=4096",
          "eval.seq_len=128", "eval.stride=64", "train.train_seq_len=128"]


@pytest.mark.parametrize("averaging, expected", [
    (["train.ema_decay=0.9"], ("ema", 0)),
    # EMA off, SWA every step once the LR scale is below 0.6: steps 5 and 6 (scales 0.5, 0.25)
    (["train.ema_decay=0", "train.swa_every=1", "train.swa_lr_threshold=0.6"], ("swa", 2)),
])
def test_pr779_extras_in_the_loop(synthetic_data_dir, tmp_path, averaging, expected):
    cfg = load_preset("pr779", {**SMALL_779, "train": {"micro_batches": 2, "train_batch_tokens": 4096,
                                                       "warmup_steps": 0, "device": "cpu"}})
    from golf_core.config import with_overrides

    cfg = with_overrides(cfg, EXTRAS + averaging)
    result = run_training(cfg, synthetic_data_dir, tmp_path, on_progress=lambda e: None)
    # step-based warmdown over the last 4 of 6 steps: scales 1, 1, 1, .75, .5, .25 -> QAT from step index 5
    assert result["qat_step"] == 5
    assert (result["final_weights"], result["swa_count"]) == expected
    assert result["nan"] is False and 0 < result["val_bpb"] < 10
    assert len(result["train_loss_curve"]) == 6
