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
    """The network: shape, activation, RoPE and the PR #779 record-stack options."""

    vocab_size: int = Field(1024, ge=2, le=MAX_DIM, description="Tokenizer vocabulary size (tokens)")
    num_layers: int = Field(9, ge=1, le=MAX_COUNT, description="Number of transformer blocks")
    model_dim: int = Field(512, ge=8, le=MAX_DIM, description="Residual stream width (channels)")
    num_heads: int = Field(8, ge=1, le=MAX_COUNT, description="Attention (query) heads per layer")
    num_kv_heads: int = Field(4, ge=1, le=MAX_COUNT,
                              description="Key/value heads per layer (grouped-query attention); divides num_heads")
    mlp_mult: float = Field(2.0, gt=0, le=64, description="MLP hidden width as a multiple of model_dim")
    # relu^2 (modded-nanogpt, baseline) or LeakyReLU(0.5)^2 (#779)
    activation: Literal["relu2", "leaky_relu2"] = Field(
        "relu2", description="MLP activation: relu^2 (modded-nanogpt, baseline) or LeakyReLU^2 (PR #779)")
    leaky_slope: float = Field(0.5, description="Negative slope of leaky_relu2 (PR #779: 0.5)")
    tie_embeddings: bool = Field(True, description="Share the input embedding and output head weights")
    tied_embed_init_std: float = Field(0.005, description="Init std of the tied embedding matrix")
    logit_softcap: float = Field(30.0, gt=0, description="Tanh soft cap on output logits (logit units)")
    rope_base: float = Field(10000.0, description="RoPE frequency base")
    # partial RoPE: rotate only the first rope_dims of each head (#779: 16 of 64); 0 = all
    rope_dims: int = Field(0, ge=0, le=MAX_DIM,
                           description="Partial RoPE: rotate only the first n dims of each head (PR #779: 16 of 64); 0 = all")
    # NTK-style RoPE base rescale for sequences longer than this (#779's Rotary hard-codes
    # train_seq_len=1024, so at seq 2048 its base is already rescaled); 0 = never (baseline).
    rope_train_seq_len: int = Field(
        0, ge=0, le=MAX_SEQ,
        description="NTK-style RoPE base rescale for sequences longer than this (tokens; PR #779 uses 1024); 0 = never")
    qk_gain_init: float = Field(1.5, description="Initial learned gain on queries/keys before attention")
    # --- PR #779 record-stack options (all off in the baseline) ---
    xsa_last_n: int = Field(0, ge=0, le=MAX_COUNT,  # exclusive self-attention on the last n layers
                            description="Exclusive self-attention on the last n layers (PR #779); 0 = off")
    smear_gate: bool = Field(False,  # blend each position with the previous one, learned gate
                             description="Blend each position with the previous one via a learned gate (PR #779)")
    bigram_vocab_size: int = Field(0, ge=0, le=2**24,  # BigramHash embedding buckets (0 = off)
                                   description="BigramHash embedding buckets (PR #779); 0 = off")
    bigram_dim: int = Field(128, ge=1, le=MAX_DIM, description="BigramHash embedding width (channels, PR #779)")
    value_embed: bool = Field(False,  # shared value embedding added to V on `ve_layers`
                              description="Shared value embedding added to V on ve_layers (PR #779)")
    ve_dim: int = Field(128, ge=1, le=MAX_DIM, description="Value embedding width (channels, PR #779)")
    ve_layers: tuple[int, ...] = Field((), max_length=MAX_COUNT,
                                       description="Layer indices (0-based) that get the value embedding")
    ln_scale: bool = Field(False,  # scale normed block inputs by 1/sqrt(layer+1)
                           description="Scale normed block inputs by 1/sqrt(layer+1) (PR #779)")
    gated_attention: bool = Field(False,  # learned sigmoid gate on the block update (#779 "dtg")
                                  description="Learned sigmoid gate on the block update (PR #779 \"dtg\")")
    orthogonal_init: bool = Field(False,  # #779 inits big matrices orthogonally
                                  description="Initialise big matrices orthogonally (PR #779)")

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
