"""Input-side extras of the PR #779 stack: SmearGate, BigramHash embedding, shared value embedding."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from golf_core.model.layers import CastedLinear

# Bigram hash primes (PR #779 BigramHashEmbedding; the same constants seed its n-gram mixer).
BIGRAM_PRIME_CUR = 36313
BIGRAM_PRIME_PREV = 27191


class SmearGate(nn.Module):
    """x_t <- (1-g) * x_t + g * x_{t-1}, g = sigmoid(gate) per channel, gate starts at 0 (g = 0.5).
    Causal: position t only sees t-1."""

    def __init__(self, dim: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(dim, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate.to(x.dtype))[None, None, :]
        x_prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        return (1 - g) * x + g * x_prev


def bigram_hash(tokens: Tensor, buckets: int) -> Tensor:
    """Bucket of (prev, cur) per position: (36313*cur XOR 27191*prev) mod (buckets-1); position 0
    (no previous token) gets the last bucket, buckets-1 (PR #779). int32 arithmetic as #779 (token
    ids < 2^15 keep the products in range)."""
    t = tokens.to(torch.int32)
    mod = buckets - 1
    out = torch.empty_like(t)
    out[..., 0] = mod
    out[..., 1:] = torch.bitwise_xor(BIGRAM_PRIME_CUR * t[..., 1:], BIGRAM_PRIME_PREV * t[..., :-1]) % mod
    return out.long()


class BigramHashEmbedding(nn.Module):
    """Hashed embedding of the (previous, current) token pair, projected to model width and scaled
    (learned scale, 0.05 at init). Table and projection start at zero (PR #779)."""

    def __init__(self, buckets: int, bigram_dim: int, model_dim: int):
        super().__init__()
        self.buckets = buckets
        self.embed = nn.Embedding(buckets, bigram_dim)
        nn.init.zeros_(self.embed.weight)
        self.proj = CastedLinear(bigram_dim, model_dim) if bigram_dim != model_dim else None
        if self.proj is not None:
            # Not flagged zero_init: with orthogonal_init on, #779's init loop re-initializes it.
            nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.05, dtype=torch.float32))

    def forward(self, token_ids: Tensor) -> Tensor:
        h = self.embed(bigram_hash(token_ids, self.buckets))
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(h.dtype)


class ValueEmbedding(nn.Module):
    """Token embedding added to the attention values of selected layers (PR #779 "VE"; the
    README's "Value Residual"). One table shared by all `ve_layers`; GPT holds a per-layer scale."""

    def __init__(self, vocab_size: int, ve_dim: int, kv_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, ve_dim)
        nn.init.normal_(self.embed.weight, std=0.01)
        self.proj = CastedLinear(ve_dim, kv_dim) if ve_dim != kv_dim else None
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)
        self.scale = nn.Parameter(torch.tensor(0.1, dtype=torch.float32))

    def forward(self, token_ids: Tensor) -> Tensor:
        h = self.embed(token_ids)
        if self.proj is not None:
            h = self.proj(h)
        return h * self.scale.to(h.dtype)
