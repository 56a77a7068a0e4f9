"""ModelConfig: one config covers the upstream baseline and the PR #779 record stack.

Defaults are the upstream baseline (train_gpt.py): 9 layers, width 512, 8 heads / 4 KV heads,
relu^2 MLP x2, tied embeddings, softcap 30, RoPE 10000, q gain 1.5 -> 17,059,912 params.
The #779 options are off by default; the `pr779` preset turns them on.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from golf_core.config import MAX_COUNT, MAX_DIM, MAX_SEQ, Frozen


class ModelConfig(Frozen):
    vocab_size: int = Field(1024, ge=2, le=MAX_DIM)
    num_layers: int = Field(9, ge=1, le=MAX_COUNT)
    model_dim: int = Field(512, ge=8, le=MAX_DIM)
    num_heads: int = Field(8, ge=1, le=MAX_COUNT)
    num_kv_heads: int = Field(4, ge=1, le=MAX_COUNT)
    mlp_mult: float = Field(2.0, gt=0, le=64)
    # relu^2 (modded-nanogpt, baseline) or LeakyReLU(0.5)^2 (#779)
    activation: Literal["relu2", "leaky_relu2"] = "relu2"
    leaky_slope: float = 0.5
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = Field(30.0, gt=0)
    rope_base: float = 10000.0
    # partial RoPE: rotate only the first rope_dims of each head (#779: 16 of 64); 0 = all
    rope_dims: int = Field(0, ge=0, le=MAX_DIM)
    # NTK-style RoPE base rescale for sequences longer than this (#779's Rotary hard-codes
    # train_seq_len=1024, so at seq 2048 its base is already rescaled); 0 = never (baseline).
    rope_train_seq_len: int = Field(0, ge=0, le=MAX_SEQ)
    qk_gain_init: float = 1.5
    # --- PR #779 record-stack options (all off in the baseline) ---
    xsa_last_n: int = Field(0, ge=0, le=MAX_COUNT)  # exclusive self-attention on the last n layers
    smear_gate: bool = False  # blend each position with the previous one, learned gate
    bigram_vocab_size: int = Field(0, ge=0, le=2**24)  # BigramHash embedding buckets (0 = off)
    bigram_dim: int = Field(128, ge=1, le=MAX_DIM)
    value_embed: bool = False  # shared value embedding added to V on `ve_layers`
    ve_dim: int = Field(128, ge=1, le=MAX_DIM)
    ve_layers: tuple[int, ...] = Field((), max_length=MAX_COUNT)
    ln_scale: bool = False  # scale normed block inputs by 1/sqrt(layer+1)
    gated_attention: bool = False  # learned sigmoid gate on the block update (#779 "dtg")
    orthogonal_init: bool = False  # #779 inits big matrices orthogonally

    @model_validator(mode="after")
    def _check_shapes(self) -> "ModelConfig":
        if self.model_dim % self.num_heads:
            raise ValueError(f"model_dim {self.model_dim} not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} not divisible by num_kv_heads {self.num_kv_heads}")
        head_dim = self.model_dim // self.num_heads
        if head_dim % 2:
            raise ValueError(f"head_dim {head_dim} must be even for RoPE")
        if self.rope_dims and (self.rope_dims > head_dim or self.rope_dims % 2):
            raise ValueError(f"rope_dims {self.rope_dims} must be even and <= head_dim {head_dim}")
        rd = self.rope_dims or head_dim
        if self.rope_train_seq_len and rd <= 2:
            raise ValueError(f"rope_train_seq_len needs more than 2 rotated dims (got {rd})")
        if self.bigram_vocab_size == 1:
            raise ValueError("bigram_vocab_size must be 0 (off) or >= 2")
        if any(i < 0 for i in self.ve_layers):
            raise ValueError(f"ve_layers {self.ve_layers} must be >= 0")
        if any(i >= self.num_layers for i in self.ve_layers):
            raise ValueError(f"ve_layers {self.ve_layers} outside 0..{self.num_layers - 1}")
        return self
