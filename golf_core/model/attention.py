"""Causal self-attention: GQA through SDPA, q/k RMSNorm, learned per-head q gain, (partial) RoPE,
optional value embedding added to V and optional XSA (PR #779)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf_core.model.layers import CastedLinear, apply_rope, rms_norm


def xsa(y: Tensor, v: Tensor) -> Tensor:
    """Exclusive self-attention (PR #779 `_xsa_efficient`): remove from each head's output its
    component along that position's own (normalized) value vector.

    y: (B, T, H, D) attention output; v: (B, T, Hkv, D). Query heads are grouped onto KV heads
    as SDPA's enable_gqa does (head h uses kv head h // (H/Hkv)).
    """
    B, T, H, D = y.shape
    hkv = v.size(-2)
    y_g = y.reshape(B, T, hkv, H // hkv, D)
    vn = F.normalize(v, dim=-1).unsqueeze(-2)  # (B, T, Hkv, 1, D)
    return (y_g - (y_g * vn).sum(dim=-1, keepdim=True) * vn).reshape(B, T, H, D)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, qk_gain_init: float, use_xsa: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = CastedLinear(dim, dim)
        self.c_k = CastedLinear(dim, kv_dim)
        self.c_v = CastedLinear(dim, kv_dim)
        self.proj = CastedLinear(dim, dim, zero_init=True)
        self.q_gain = nn.Parameter(torch.full((num_heads,), qk_gain_init, dtype=torch.float32))
        self.use_xsa = use_xsa

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None = None) -> Tensor:
        B, T, C = x.shape
        q = self.c_q(x).reshape(B, T, self.num_heads, self.head_dim)
        k = self.c_k(x).reshape(B, T, self.num_kv_heads, self.head_dim)
        v = self.c_v(x)  # (B, T, kv_dim)
        if v_embed is not None:  # shared value embedding (PR #779 "VE")
            v = v + v_embed
        v = v.reshape(B, T, self.num_kv_heads, self.head_dim)
        q = apply_rope(rms_norm(q), cos, sin)
        k = apply_rope(rms_norm(k), cos, sin)
        q = q * self.q_gain.to(q.dtype)[None, None, :, None]
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads,
        ).transpose(1, 2)  # (B, T, H, D)
        if self.use_xsa:
            y = xsa(y, v)
        return self.proj(y.reshape(B, T, C))
