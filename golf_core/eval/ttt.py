"""Drift-free score-first test-time training (PR #779, "qTTT" as its record ran it).

After a chunk has been scored, the model trains on that chunk's tokens: only the Q projections
(`c_q`) of the last `last_k_blocks` blocks plus every norm / scale parameter (names containing
"norm" or "scale", all blocks, as #779 selects them; #779 also adds `lm_head`, which the tied
record model lacks), AdamW (betas 0.9/0.999) with lr cosine-decayed across chunks, byte-weighted
cross entropy, gradients averaged over ranks, clipped. The last chunk is never trained on
(nothing is left to score with it). #779's record run: QTTT=1, TTT_FREEZE_BLOCKS=1, lr 3e-5,
1 epoch, 1,048,576-token chunks, batches of 32 x 2048 per rank, ADAPTIVE_LR=0, USE_POLYAK=0;
its log says `ttt:params unfrozen=273412`.
"""
from __future__ import annotations

from golf_core.errors import UserError
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from golf_core.eval.config import EvalConfig, TTTConfig
from golf_core.accel import autocast_for
from golf_core.eval.windows import chunk_token_range, rank_slice


def select_ttt_params(model: torch.nn.Module, cfg: TTTConfig) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, param) that TTT adapts, in model order; everything else stays frozen."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError("TTT needs a model with `.blocks` (the GPT's transformer blocks)")
    n = len(blocks)
    first = max(0, n - cfg.last_k_blocks) if cfg.last_k_blocks else n
    chosen: dict[int, str] = {}
    for i in range(first, n):
        for name, p in blocks[i].named_parameters():
            if "c_q" in name.split("."):
                chosen[id(p)] = f"blocks.{i}.{name}"
    if cfg.adapt_norms:
        for name, p in model.named_parameters():
            if "norm" in name or "scale" in name or "lm_head" in name:
                chosen.setdefault(id(p), name)
    params = [(chosen[id(p)], p) for _, p in model.named_parameters() if id(p) in chosen]
    if not params:
        raise UserError(f"TTT selects no parameters (last_k_blocks={cfg.last_k_blocks}, adapt_norms={cfg.adapt_norms})")
    return params


def count_ttt_params(model: torch.nn.Module, cfg: TTTConfig) -> int:
    return sum(p.numel() for _, p in select_ttt_params(model, cfg))


def _avg_grads(params: list[torch.nn.Parameter], world_size: int) -> None:
    if world_size <= 1:
        return
    # One flat all-reduce instead of one per tensor; SUM / W works on gloo (no AVG there).
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size
    off = 0
    for p, g in zip(params, grads):
        k = g.numel()
        p.grad = flat[off : off + k].view_as(p).clone()
        off += k


class ChunkTTT:
    """Trains `model` in place on scored chunks; logs every token range it trains on."""

    def __init__(self, model, cfg: TTTConfig, eval_cfg: EvalConfig, luts, device, total_tokens: int,
                 n_chunks: int, rank: int = 0, world_size: int = 1, autocast: str = "auto"):
        self.model, self.cfg, self.eval_cfg, self.luts = model, cfg, eval_cfg, luts
        self.device, self.total, self.n_chunks = device, total_tokens, n_chunks
        self.rank, self.world_size, self.autocast = rank, world_size, autocast
        self.named = select_ttt_params(model, cfg)
        self.params = [p for _, p in self.named]
        self._saved_flags = {id(p): p.requires_grad for p in model.parameters()}
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.params:
            p.requires_grad_(True)
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
        self.steps = 0
        self.losses: list[float] = []

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.params)

    def lr_at(self, chunk: int) -> float:
        if not self.cfg.cosine:
            return self.cfg.lr
        # cosine across chunks (#779 / #518): full lr on chunk 0, ~0 on the last trained chunk
        return self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * chunk / max(self.n_chunks - 1, 1)))

    def train_chunk(self, chunk: int, tokens: torch.Tensor, log: list[dict]) -> None:
        """One pass (cfg.epochs) over chunk `chunk`'s full seq_len sequences; not the last chunk."""
        if chunk >= self.n_chunks - 1 or self.cfg.epochs == 0:
            return
        seq_len, B = self.eval_cfg.seq_len, self.cfg.batch_seqs
        lo, hi = chunk_token_range(chunk, self.total, self.eval_cfg.chunk_tokens)
        n_seqs = (hi - lo) // seq_len
        if n_seqs == 0:
            return
        share = rank_slice(n_seqs, self.rank, self.world_size)
        mine = share.stop - share.start
        # Every rank takes the same number of steps (the largest share), so the gradient
        # all-reduce never deadlocks on uneven shares (#779 assumed even ones).
        steps = math.ceil(math.ceil(n_seqs / self.world_size) / B)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(chunk)
        for _ in range(self.cfg.epochs):
            for k in range(steps):
                a, b = min(k * B, mine), min((k + 1) * B, mine)
                self.opt.zero_grad(set_to_none=True)
                if b > a:
                    t0 = lo + (share.start + a) * seq_len
                    t1 = lo + (share.start + b) * seq_len + 1  # + the last target
                    log.append({"kind": "train", "chunk": chunk, "lo": t0, "hi": t1, "rank": self.rank})
                    local = tokens[t0:t1]
                    x = local[:-1].reshape(b - a, seq_len)
                    y = local[1:].reshape(b - a, seq_len)
                    loss = self._loss(x, y)
                    loss.backward()
                    self.losses.append(float(loss.detach()))
                _avg_grads(self.params, self.world_size)
                if self.cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
                self.opt.step()
                self.steps += 1

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast_for(self.device, self.autocast):
            logits = self.model.forward_logits(x)  # (b, T, V)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        if not self.cfg.byte_weighted:
            return ce.mean()
        # byte-weighted CE (#779): tokens that stand for more bytes weigh more, as bpb does
        w = self.luts.target_bytes(x.reshape(-1), y.reshape(-1)).float()
        return (ce * w).sum() / w.sum().clamp(min=1.0)

    def close(self) -> None:
        """Restore every parameter's requires_grad flag."""
        for p in self.model.parameters():
            p.requires_grad_(self._saved_flags.get(id(p), True))
