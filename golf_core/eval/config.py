"""Evaluation configs: sliding windows and chunks, the n-gram mixer, score-first TTT.

Names here are the names in spec files and `--set`: eval.seq_len, eval.stride,
eval.chunk_tokens, mixer.mode, mixer.orders, mixer.buckets, mixer.min_count,
mixer.alpha_base, mixer.alpha_range, mixer.entropy_slope, mixer.entropy_center,
ttt.enabled, ttt.lr.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from golf_core.config import MAX_COUNT, MAX_SEQ, MAX_TOKENS, Frozen

# PR #779's hash primes; prime[0] multiplies the oldest context token.
DEFAULT_PRIMES = (36313, 27191, 51647, 81929, 131071, 174763, 233017)


class EvalConfig(Frozen):
    seq_len: int = Field(1024, ge=8, le=MAX_SEQ)
    stride: int = Field(64, ge=1)  # = seq_len for non-overlapping windows
    batch_seqs: int = Field(32, ge=1, le=MAX_COUNT)
    # Score-first chunks (#809: 1,048,576 tokens): score a chunk, then absorb it, then TTT on it.
    chunk_tokens: int = Field(1_048_576, ge=1, le=MAX_TOKENS)
    max_tokens: int = Field(0, ge=0, le=MAX_TOKENS)  # 0 = the whole validation split
    max_eval_seconds: float = Field(600.0, ge=0, le=10**8)  # the challenge's eval cap, audited
    temperature: float = Field(1.0, gt=0, le=100)  # #779 divides logits by 0.98 after TTT
    # #779's variant: per position T' = clamp(1 - (1 - T)(1 - H/ln V), 0.9, 1.05), H = entropy
    # of the unscaled distribution (confident positions sharpen more); off = plain division.
    adaptive_temperature: bool = False
    audit: bool = True
    audit_positions: int = Field(32, ge=0, le=MAX_COUNT)  # positions where sum_v p(v) is measured

    @model_validator(mode="after")
    def _stride_fits(self) -> "EvalConfig":
        if self.stride > self.seq_len:
            raise ValueError(f"stride {self.stride} larger than seq_len {self.seq_len}")
        return self


class MixerConfig(Frozen):
    # none: the model alone. hashed_target: #779's estimator, exact, always non-compliant.
    # normalized: same tables, selected order's counts over all V candidates renormalized (C2).
    mode: Literal["none", "hashed_target", "normalized"] = "none"
    orders: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
    buckets: int = Field(4_194_304, le=2**30)  # 2^22 per order and table; 2^30 = 8 GiB of int64 counts
    min_count: int = Field(2, ge=1, le=MAX_TOKENS)  # backoff: first order (from the top) with ctx count >= this
    primes: tuple[Annotated[int, Field(ge=1, le=2**31 - 1)], ...] = Field(DEFAULT_PRIMES, max_length=16)
    warmup_tokens: int = Field(100, ge=0, le=MAX_TOKENS)  # model alone until the tables hold this many tokens
    # entropy-adaptive alpha (#779): alpha = base + range * sigmoid(slope * (H - center))
    alpha_base: float = Field(0.05, ge=0.0, le=1.0)
    alpha_range: float = Field(0.55, ge=0.0, le=1.0)
    entropy_slope: float = Field(2.0, ge=-1e6, le=1e6)
    entropy_center: float = Field(4.0, ge=-1e6, le=1e6)
    # per-order centers (#798): {7: 3.0, 6: 3.2, 5: 3.5, 4: 3.8, 3: 4.2, 2: 4.5}; None = one center
    entropy_centers: dict[Annotated[int, Field(ge=1, le=16)], Annotated[float, Field(ge=-1e6, le=1e6)]] | None = None
    alpha_max: float = Field(1.0, ge=0.0, le=1.0)  # upper clamp on alpha
    # hashed_target's uniform 1/V on a miss: V = the model's vocabulary, or max_token = the
    # validation stream's max token id + 1 (#779 sizes its mixer so). normalized always uses
    # the model's V (its rows are distributions over the model's vocabulary).
    miss_vocab: Literal["model", "max_token"] = "model"

    @field_validator("buckets")
    @classmethod
    def _pow2(cls, v: int) -> int:
        if v < 1 or v & (v - 1):
            raise ValueError(f"must be a power of two (got {v})")
        return v

    @field_validator("orders")
    @classmethod
    def _orders(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("at least one order")
        if any(o < 1 or o > 16 for o in v):
            raise ValueError(f"orders must lie in 1..16 (got {list(v)})")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _consistent(self) -> "MixerConfig":
        if self.alpha_base + self.alpha_range > 1.0 + 1e-12:
            raise ValueError("alpha_base + alpha_range must be <= 1")
        if max(self.orders) > len(self.primes):
            raise ValueError(f"order {max(self.orders)} needs {max(self.orders)} primes, have {len(self.primes)}")
        if self.entropy_centers is not None:
            missing = set(self.orders) - set(self.entropy_centers)
            if missing:
                raise ValueError(f"entropy_centers lacks orders {sorted(missing)}")
        return self

    def table_key(self) -> tuple:
        """The fields that change the n-gram pass (not the mix): one pass per distinct key."""
        miss = self.miss_vocab if self.mode == "hashed_target" else "model"
        return (self.mode, self.orders, self.buckets, self.min_count, self.primes, self.warmup_tokens, miss)


class TTTConfig(Frozen):
    """Drift-free score-first TTT (#779): adapt after a chunk is scored, never before."""

    enabled: bool = False
    lr: float = Field(3e-5, gt=0)
    epochs: int = Field(1, ge=0, le=1000)
    batch_seqs: int = Field(32, ge=1, le=MAX_COUNT)
    last_k_blocks: int = Field(1, ge=0, le=MAX_COUNT)  # Q projections of the last k blocks adapt
    adapt_norms: bool = True  # plus norm / scale parameters
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    byte_weighted: bool = True  # cross entropy weighted by each target's byte count
    cosine: bool = True  # lr cosine-decays across chunks


class EvalSpec(Frozen):
    """Everything an evaluation job needs besides the artifact and the data."""

    eval: EvalConfig = EvalConfig()
    mixer: MixerConfig = MixerConfig()
    ttt: TTTConfig = TTTConfig()
