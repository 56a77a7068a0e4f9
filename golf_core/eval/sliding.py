"""Sliding-window scoring: the model's NLL (and, on request, entropy and audit rows) for
every target of a set of windows, and the plain sliding-window evaluation built on it.

`evaluate_sliding` is what training's roundtrip score and a no-TTT, no-mixer eval run:
windows split across ranks (#779: contiguous shares), float64 sums all-reduced.
"""
from __future__ import annotations

from golf_core.errors import UserError
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from golf_core.accel import autocast_for
from golf_core.eval.bpb import BpbSums
from golf_core.eval.config import EvalConfig
from golf_core.eval.windows import Windows, rank_slice, sliding_windows


def apply_temperature(logits: torch.Tensor, eval_cfg: EvalConfig) -> torch.Tensor:
    """Logits (n, V) fp32 divided by eval.temperature (#779: TTT_TEMPERATURE=0.98).

    With eval.adaptive_temperature, #779's per-position form: T' = clamp(1 - (1 - T)(1 - H/ln V),
    0.9, 1.05), H the entropy (nats) of the unscaled distribution. #779 applies this whenever
    its temperature != 1, so its record run (0.98) used the adaptive form, T' in [0.98, 1].
    """
    T = eval_cfg.temperature
    if T == 1.0:
        return logits
    if not eval_cfg.adaptive_temperature:
        return logits / T
    logp = F.log_softmax(logits, dim=-1)
    ent = -(logp.exp() * logp).sum(-1)  # (n,)
    t = (1.0 - (1.0 - T) * (1.0 - ent / math.log(logits.size(-1)))).clamp(0.9, 1.05)
    return logits / t[:, None]


def truncate_val(val_tokens: torch.Tensor, eval_cfg: EvalConfig) -> torch.Tensor:
    """`eval.max_tokens` > 0 keeps the first max_tokens targets (max_tokens + 1 tokens); then
    `eval.tail == "drop"` keeps whole seq_len blocks of targets only (upstream eval_val's
    `usable = ((N - 1) // seq_len) * seq_len`)."""
    if val_tokens.ndim != 1 or val_tokens.numel() < 2:
        raise ValueError(f"validation tokens must be a 1-D stream of >= 2 tokens (got shape {tuple(val_tokens.shape)})")
    if eval_cfg.max_tokens and eval_cfg.max_tokens + 1 < val_tokens.numel():
        val_tokens = val_tokens[: eval_cfg.max_tokens + 1]
    if eval_cfg.tail == "drop":
        usable = ((val_tokens.numel() - 1) // eval_cfg.seq_len) * eval_cfg.seq_len
        if usable <= 0:
            raise UserError(f"eval.tail=drop: {val_tokens.numel() - 1} targets hold no whole seq_len "
                             f"{eval_cfg.seq_len} block")
        val_tokens = val_tokens[: usable + 1]
    return val_tokens


@dataclass
class Scored:
    """Per-target results of scored windows, on the device until `numpy()`."""

    pos: list = field(default_factory=list)  # target index in the stream
    target: list = field(default_factory=list)
    prev: list = field(default_factory=list)
    bytes: list = field(default_factory=list)
    nll: list = field(default_factory=list)  # nats, float32 (softmax in fp32)
    entropy: list = field(default_factory=list)  # nats, only when stats are wanted
    n_ctx: list = field(default_factory=list)  # tokens the window shows before the target (j + 1)
    audit_pos: list = field(default_factory=list)
    audit_p: list = field(default_factory=list)  # (k, V) float64 model distributions
    q_hint: dict = field(default_factory=dict)  # tilt table tag -> [(n,) p_model(hint)] (0 where no hint)
    with_entropy: bool = False  # entropy / n_ctx keys present even when no window was scored

    def numpy(self) -> dict[str, np.ndarray]:
        def cat(parts, dtype):
            if not parts:
                return np.zeros(0, dtype=dtype)
            return torch.cat(parts).cpu().numpy().astype(dtype, copy=False)

        out = {
            "pos": cat(self.pos, np.int64),
            "target": cat(self.target, np.int64),
            "prev": cat(self.prev, np.int64),
            "bytes": cat(self.bytes, np.int64),
            "nll": cat(self.nll, np.float64),
        }
        if self.with_entropy:
            out["entropy"] = cat(self.entropy, np.float32)
            out["n_ctx"] = cat(self.n_ctx, np.int32)
        for tag, parts in self.q_hint.items():
            out[f"tilt_q_{tag}"] = cat(parts, np.float64)
        if self.audit_pos:
            out["audit_pos"] = cat(self.audit_pos, np.int64)
            out["audit_p_model"] = torch.cat(self.audit_p).cpu().numpy().astype(np.float64)
        return out


def score_windows(
    model: torch.nn.Module,
    tokens: torch.Tensor,  # (N,) int64 on `device`: the whole (truncated) val stream
    windows: Windows,
    idx: np.ndarray,  # which windows to score, in order
    luts,
    eval_cfg: EvalConfig,
    device: torch.device,
    want_entropy: bool = False,
    audit_pos: torch.Tensor | None = None,  # sorted int64 positions whose full distribution is kept
    out: Scored | None = None,
    autocast: str = "auto",  # golf_core.accel modes: auto = bf16 on CUDA, as the records evaluate
    hints: dict | None = None,  # tilt table tag -> (N,) int64 hint per stream index (-1: none), on device
) -> Scored:
    """Score windows `idx` in batches of eval.batch_seqs; caller holds inference mode."""
    out = out or Scored()
    out.with_entropy = out.with_entropy or want_entropy
    seq_len, B = windows.seq_len, eval_cfg.batch_seqs
    idx = np.asarray(idx, dtype=np.int64)
    ar = torch.arange(seq_len, device=device)
    for b in range(0, len(idx), B):
        sel = idx[b : b + B]
        ws = torch.as_tensor(windows.starts[sel], device=device)
        wl = torch.as_tensor(windows.lens[sel], device=device)
        sf = torch.as_tensor(windows.score_from[sel], device=device)
        # Gather x/y for all rows at once; positions past a short window's end stay 0.
        grid = ws[:, None] + ar[None, :]  # (b, T)
        valid = ar[None, :] < wl[:, None]
        x = torch.where(valid, tokens[grid.clamp(max=tokens.numel() - 1)], 0)
        y = torch.where(valid, tokens[(grid + 1).clamp(max=tokens.numel() - 1)], 0)
        with autocast_for(device, autocast):
            logits = model.forward_logits(x)  # (b, T, V)
        scored = valid & (ar[None, :] >= sf[:, None])  # (b, T)
        rows, cols = scored.nonzero(as_tuple=True)  # row-major: window order, then position
        # Only the scored positions go through the fp32 softmax (stride of seq_len per window).
        lg = apply_temperature(logits[rows, cols].float(), eval_cfg)  # (n, V)
        logp = F.log_softmax(lg, dim=-1)
        tgt, prv = y[rows, cols], x[rows, cols]
        pos = ws[rows] + cols + 1
        out.nll.append(-logp.gather(1, tgt[:, None]).squeeze(1))
        for tag, h in (hints or {}).items():
            # tilt (#2135): the scored distribution's probability of each position's hint, q
            hp = h[pos]
            q = logp.gather(1, hp.clamp(min=0)[:, None]).squeeze(1).double().exp()
            out.q_hint.setdefault(tag, []).append(torch.where(hp >= 0, q, torch.zeros_like(q)))
        out.pos.append(pos)
        out.target.append(tgt)
        out.prev.append(prv)
        out.bytes.append(luts.target_bytes(prv, tgt).to(torch.int64))
        if want_entropy:
            out.entropy.append(-(logp.exp() * logp).sum(-1))
            out.n_ctx.append(cols + 1)
        if audit_pos is not None and audit_pos.numel():
            hit = torch.isin(pos, audit_pos)
            if bool(hit.any()):
                out.audit_pos.append(pos[hit])
                out.audit_p.append(F.softmax(lg[hit].double(), dim=-1))  # float64: sums to 1 exactly
    return out


def evaluate_sliding(
    model: torch.nn.Module,
    val_tokens: torch.Tensor,
    luts,
    eval_cfg: EvalConfig,
    device: torch.device | str,
    rank: int = 0,
    world_size: int = 1,
    autocast: str = "auto",
) -> dict:
    """Sliding-window val_loss / val_bpb of `model` (every rank calls it; all get the result)."""
    device = torch.device(device)
    val_tokens = truncate_val(val_tokens, eval_cfg)
    total = val_tokens.numel() - 1
    windows = sliding_windows(total, eval_cfg.seq_len, eval_cfg.stride)
    mine = np.arange(len(windows))[rank_slice(len(windows), rank, world_size)]
    tokens = val_tokens.to(device=device, dtype=torch.int64)
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    with torch.inference_mode():
        scored = score_windows(model, tokens, windows, mine, luts, eval_cfg, device, autocast=autocast)
        nll = torch.cat(scored.nll).double() if scored.nll else torch.zeros(0, dtype=torch.float64)
        nbytes = torch.cat(scored.bytes) if scored.bytes else torch.zeros(0, dtype=torch.int64)
    local = BpbSums()
    local.add(nll, nbytes)
    sums = local.all_reduce(device)
    model.train(was_training)
    return {
        "val_loss": sums.val_loss,
        "val_bpb": sums.val_bpb,
        "tokens_scored": int(sums.tokens),
        "ratio_scored": sums.tokens / total,
        "bytes": int(sums.bytes),
        "nll_sum": sums.nll,
        "eval_time_s": time.perf_counter() - t0,
    }
