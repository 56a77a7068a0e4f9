"""The optimizers of upstream train_gpt.py, extended to PR #779's extra modules.

Groups come from `golf_core.model.split_params` (by module type and name):
- `embed` (token, BigramHash and value-embedding tables): AdamW at tied_embed_lr (embed_lr if untied)
- `head` (untied lm_head): Adam at head_lr
- `matrix` (2D block weights, #779's bigram / value-embedding projections): Muon at matrix_lr
- `scalar` (vectors, skip weights, control tensors named by pattern): AdamW at scalar_lr

AdamW with weight_decay 0 is exactly upstream's Adam; #779 sets ADAM_WD on the embedding and
scalar groups (not the head) and MUON_WD on Muon. Every group carries `base_lr` for the schedule.
"""
from __future__ import annotations

import torch
from torch import nn

from golf_core.train.config import TrainConfig
from golf_core.train.muon import Muon


def build_optimizers(model: nn.Module, cfg: TrainConfig, tie_embeddings: bool, ns_dtype=torch.bfloat16,
                     compile_ns: bool = False) -> tuple[list[torch.optim.Optimizer], Muon]:
    """All optimizers, in upstream's order (embed, head, Muon, scalar), and the Muon among them."""
    from golf_core.model import split_params

    g = split_params(model)
    fused = next(model.parameters()).is_cuda  # fused Adam kernels exist only on CUDA
    adam_kw = dict(betas=(cfg.beta1, cfg.beta2), eps=cfg.adam_eps, fused=fused)
    token_lr = cfg.tied_embed_lr if tie_embeddings else cfg.embed_lr
    opts: list[torch.optim.Optimizer] = []
    if g["embed"]:
        opts.append(torch.optim.AdamW([{"params": g["embed"], "lr": token_lr, "base_lr": token_lr}],
                                      weight_decay=cfg.adam_wd, **adam_kw))
    if g["head"]:
        opts.append(torch.optim.Adam([{"params": g["head"], "lr": cfg.head_lr, "base_lr": cfg.head_lr}], **adam_kw))
    muon = Muon(g["matrix"], lr=cfg.matrix_lr, momentum=cfg.muon_momentum, backend_steps=cfg.muon_backend_steps,
                weight_decay=cfg.muon_wd, ns_dtype=ns_dtype, compile_ns=compile_ns)
    for group in muon.param_groups:
        group["base_lr"] = cfg.matrix_lr
    opts.append(muon)
    if g["scalar"]:
        opts.append(torch.optim.AdamW([{"params": g["scalar"], "lr": cfg.scalar_lr, "base_lr": cfg.scalar_lr}],
                                      weight_decay=cfg.adam_wd, **adam_kw))
    return opts, muon
