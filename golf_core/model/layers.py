"""Building blocks shared by both stacks: CastedLinear (with optional late-QAT), RoPE, MLP.

Names of submodules and parameters follow upstream train_gpt.py and PR #779 exactly, so state
dicts are interchangeable with theirs and the quantizer's name rules (control tensors, #779's
attn/mlp/embed classes) apply unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Late QAT clips each row at this quantile of |w| (PR #779 CastedLinear, STE branch).
QAT_ROW_QUANTILE = 0.9995


def fake_quant_ste(w: Tensor, clip_range: int) -> Tensor:
    """Per-row symmetric fake quantization with a straight-through gradient (late QAT, PR #779).

    The row scale is `quantile(|w|, 0.9995) / clip_range`, floored at 1/clip_range like #779's
    (and the exporter's) scale floor, and values are clamped to [-(clip_range+1), clip_range].
    Forward sees the quantized weight; backward sees the identity.
    """
    with torch.no_grad():
        w32 = w.float()
        row_clip = torch.quantile(w32.abs(), QAT_ROW_QUANTILE, dim=1)
        scale = (row_clip / clip_range).clamp_min(1.0 / clip_range)
        wq = torch.clamp(torch.round(w32 / scale[:, None]), -(clip_range + 1), clip_range) * scale[:, None]
    return w + (wq.to(w.dtype) - w).detach()


class CastedLinear(nn.Linear):
    """fp32 master weights cast to the activation dtype at the matmul (upstream), so bf16
    autocast compute keeps fp32 optimizer state.

    `qat_clip_range` > 0 turns on the STE fake-quant in training mode (set by GPT.set_qat;
    an instance attribute rather than #779's class-level global, so two models never share it).
    `zero_init` marks output projections that start at zero (upstream `_zero_init`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, zero_init: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self.zero_init = zero_init
        self.qat_clip_range = 0

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight
        if self.qat_clip_range and self.training:
            w = fake_quant_ste(w, self.qat_clip_range)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, w.to(x.dtype), bias)


def rms_norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


def rope_tables(seq_len: int, rope_dims: int, base: float, train_seq_len: int,
                device: torch.device) -> tuple[Tensor, Tensor]:
    """cos/sin tables, (1, T, 1, rope_dims/2), for the (B, T, H, D) layout.

    When train_seq_len > 0 and seq_len exceeds it, the base is rescaled NTK-style:
    base * (seq_len/train_seq_len)^(d/(d-2)) (PR #779 Rotary). Computed per forward, not
    cached: it is tiny, and a cache filled under inference_mode would poison training.
    """
    if train_seq_len and seq_len > train_seq_len:
        base = base * (seq_len / train_seq_len) ** (rope_dims / (rope_dims - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, rope_dims, 2, dtype=torch.float32, device=device) / rope_dims))
    t = torch.arange(seq_len, dtype=torch.float32, device=device)
    freqs = torch.outer(t, inv_freq)  # (T, rope_dims/2)
    return freqs.cos()[None, :, None, :], freqs.sin()[None, :, None, :]


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first 2*cos.size(-1) dims of x (B, T, H, D) in half-split pairs; the rest
    pass through (partial RoPE, PR #779; all dims in the baseline)."""
    rd = 2 * cos.size(-1)
    x_rope, x_pass = x[..., :rd], x[..., rd:]
    half = rd // 2
    x1, x2 = x_rope[..., :half], x_rope[..., half:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    rotated = torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)
    return rotated if x_pass.size(-1) == 0 else torch.cat((rotated, x_pass), dim=-1)


class MLP(nn.Module):
    """relu^2 (modded-nanogpt, upstream) or LeakyReLU(0.5)^2 (PR #518 via #779); hidden = int(mult*dim)."""

    def __init__(self, dim: int, mlp_mult: float, activation: str, leaky_slope: float):
        super().__init__()
        hidden = int(mlp_mult * dim)
        self.fc = CastedLinear(dim, hidden)
        self.proj = CastedLinear(hidden, dim, zero_init=True)
        self.activation = activation
        self.leaky_slope = leaky_slope

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        h = torch.relu(h) if self.activation == "relu2" else F.leaky_relu(h, negative_slope=self.leaky_slope)
        return self.proj(h.square())
