"""Evaluation configs: sliding windows and chunks, the n-gram mixer, score-first TTT.

Names here are the names in spec files and `--set`: eval.seq_len, eval.stride,
eval.chunk_tokens, mixer.mode, mixer.orders, mixer.buckets, mixer.min_count,
mixer.alpha_base, mixer.alpha_range, mixer.entropy_slope, mixer.entropy_center,
mixer.tilt_order, mixer.tilt_threshold, mixer.tilt_boost, mixer.tilt_table_bits, ttt.enabled, ttt.lr.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from golf_core.rules import EVAL_CAP_S
from golf_core.config import MAX_COUNT, MAX_SEQ, MAX_TOKENS, Frozen

# PR #779's hash primes; prime[0] multiplies the oldest context token.
DEFAULT_PRIMES = (36313, 27191, 51647, 81929, 131071, 174763, 233017)


class EvalConfig(Frozen):
    """The roundtrip score: sliding-window evaluation of the dequantized artifact."""

    seq_len: int = Field(1024, ge=8, le=MAX_SEQ, description="sliding-window length in tokens (2048 in the records)")
    stride: int = Field(
        64, ge=1, description="window advance: each token is scored once, in a window's last `stride` positions")
    batch_seqs: int = Field(32, ge=1, le=MAX_COUNT, description="windows per forward batch (memory, not score)")
    # Score-first chunks (#809: 1,048,576 tokens): score a chunk, then absorb it, then TTT on it.
    chunk_tokens: int = Field(
        1_048_576, ge=1, le=MAX_TOKENS,
        description="score-first chunk (tokens): scored, then absorbed into the tables / TTT")
    max_tokens: int = Field(0, ge=0, le=MAX_TOKENS, description="validation tokens to score; 0 = the whole split")
    # The targets past the last whole seq_len: "score" them (#779's sliding eval, every target
    # once) or "drop" them as upstream's eval_val does (it keeps ((N-1) // seq_len) * seq_len
    # targets); drop with stride == seq_len is eval_val exactly. Applied after max_tokens.
    tail: Literal["score", "drop"] = Field(
        "score", description="targets past the last whole seq_len: score them (#779) or drop them (upstream eval_val)")
    max_eval_seconds: float = Field(
        EVAL_CAP_S, ge=0, le=10**8, description="eval time cap (s), audited; the challenge's is 600")
    temperature: float = Field(1.0, gt=0, le=100, description="logits divided by this (#779: 0.98 after TTT)")
    # #779's variant: per position T' = clamp(1 - (1 - T)(1 - H/ln V), 0.9, 1.05), H = entropy
    # of the unscaled distribution (confident positions sharpen more); off = plain division.
    adaptive_temperature: bool = Field(
        False, description="#779's per-position temperature from the model's entropy")
    audit: bool = Field(True, description="run the compliance audit (C1-C4, ratio_scored, sizes, times)")
    audit_positions: int = Field(32, ge=0, le=MAX_COUNT, description="positions where sum_v p(v) = 1 is measured")
    # (order, table_bits) of the tilt hint tables whose hints the neural pass prices (q = p(h));
    # set by the plan from the sweep's tilt points, () = none (then not part of the identity)
    tilt_tables: tuple[tuple[Annotated[int, Field(ge=2, le=33)], Annotated[int, Field(ge=0, le=30)]], ...] = Field(
        (), max_length=64, description="(order, table_bits) tilt hint tables priced by the neural pass")

    @model_validator(mode="after")
    def _stride_fits(self) -> "EvalConfig":
        if self.stride > self.seq_len:
            raise ValueError(f"stride {self.stride} larger than seq_len {self.seq_len}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        """tilt_tables only when set: configs without tilt dump (and hash: train, eval and mix
        identities) exactly as before the field existed."""
        d = handler(self)
        if not self.tilt_tables:
            d.pop("tilt_tables", None)
        return d

    def identity_dump(self) -> dict:
        return self.model_dump(mode="json")


class MixerConfig(Frozen):
    # none: the model alone. hashed_target: #779's estimator, exact, always non-compliant.
    # normalized: same tables, selected order's counts over all V candidates renormalized (C2).
    # tilt: #2135's token-only tilt (#1145): one prefix hint boosted, closed-form renormalized.
    mode: Literal["none", "hashed_target", "normalized", "tilt"] = Field(
        "none", description="none = model alone; hashed_target = #779 (never compliant); normalized = legal; "
                            "tilt = #2135's token-only n-gram tilt (legal)")
    orders: tuple[int, ...] = Field(
        (2, 3, 4, 5, 6, 7), description="n-gram orders, each >= 2, backed off from the highest")
    buckets: int = Field(  # 2^30 = 8 GiB of int64 counts per order and table
        4_194_304, le=2**30, description="hash buckets per order and table, a power of two (#779: 2^22), <= 2^30")
    min_count: int = Field(
        2, ge=1, le=MAX_TOKENS, description="backoff picks the first order whose context count >= this")
    primes: tuple[Annotated[int, Field(ge=1, le=2**31 - 1)], ...] = Field(
        DEFAULT_PRIMES, max_length=16, description="context hash primes; prime[0] multiplies the oldest token")
    warmup_tokens: int = Field(
        100, ge=0, le=MAX_TOKENS, description="model alone until the tables hold this many tokens")
    # entropy-adaptive alpha (#779): alpha = base + range * sigmoid(slope * (H - center))
    alpha_base: float = Field(
        0.05, ge=0.0, le=1.0, description="alpha = base + range * sigmoid(slope * (H - center)) (#779)")
    alpha_range: float = Field(
        0.55, ge=0.0, le=1.0, description="alpha's entropy-dependent part; base + range <= 1")
    entropy_slope: float = Field(2.0, ge=-1e6, le=1e6, description="sigmoid slope of the entropy-adaptive alpha")
    entropy_center: float = Field(4.0, ge=-1e6, le=1e6, description="entropy (nats) where alpha = base + range / 2")
    # per-order centers (#798): {7: 3.0, 6: 3.2, 5: 3.5, 4: 3.8, 3: 4.2, 2: 4.5}; None = one center
    entropy_centers: dict[Annotated[int, Field(ge=1, le=16)], Annotated[float, Field(ge=-1e6, le=1e6)]] | None = Field(
        None, description="per-order centers (#798), e.g. {7: 3.0, ..., 2: 4.5}; null = one center")
    alpha_max: float = Field(1.0, ge=0.0, le=1.0, description="upper clamp on alpha")
    # hashed_target's uniform 1/V on a miss: V = the model's vocabulary, or max_token = the
    # validation stream's max token id + 1 (#779 sizes its mixer so). normalized always uses
    # the model's V (its rows are distributions over the model's vocabulary).
    miss_vocab: Literal["model", "max_token"] = Field(
        "model", description="hashed_target's 1/V on a miss: V of the model, or the stream's max token + 1")

    # token-only tilt (PR #2135: TOKEN_ORDER=16 TOKEN_THRESHOLD=0.800 TOKEN_BOOST=2.625)
    tilt_order: int = Field(16, ge=2, le=33, description="tilt: context of order - 1 previous tokens (#2135: 16)")
    tilt_threshold: float = Field(
        0.8, ge=0.0, le=1.0, description="tilt fires where the hint's share p_top >= this (#2135: 0.800)")
    tilt_boost: float = Field(2.625, ge=0.0, le=50.0, description="tilt: log-boost of the hint token (#2135: 2.625)")
    tilt_table_bits: int = Field(
        0, ge=0, le=30, description="tilt hash table 2^bits slots; 0 = #2135's size for the stream (n / 0.55)")

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
        if self.mode == "tilt":
            return ("tilt", self.tilt_order, self.tilt_table_bits)
        miss = self.miss_vocab if self.mode == "hashed_target" else "model"
        return (self.mode, self.orders, self.buckets, self.min_count, self.primes, self.warmup_tokens, miss)


    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        """A tilt point dumps only its mode and tilt fields; any other point only the fields it
        had before tilt existed, so its fingerprint, params and job identity are unchanged."""
        d = handler(self)
        if self.mode == "tilt":
            return {k: v for k, v in d.items() if k == "mode" or k in TILT_FIELDS}
        return {k: v for k, v in d.items() if k not in TILT_FIELDS}

    def identity_dump(self) -> dict:
        return self.model_dump(mode="json")


TILT_FIELDS = ("tilt_order", "tilt_threshold", "tilt_boost", "tilt_table_bits")


class TTTConfig(Frozen):
    """Drift-free score-first TTT (#779): adapt after a chunk is scored, never before."""

    enabled: bool = Field(False, description="score-first TTT: adapt on a chunk only after it is scored")
    lr: float = Field(3e-5, gt=0, description="TTT learning rate")
    epochs: int = Field(1, ge=0, le=1000, description="TTT passes over each scored chunk")
    batch_seqs: int = Field(32, ge=1, le=MAX_COUNT, description="sequences per TTT step")
    last_k_blocks: int = Field(1, ge=0, le=MAX_COUNT, description="the last k blocks' Q projections adapt")
    adapt_norms: bool = Field(True, description="norm / scale parameters adapt too")
    weight_decay: float = Field(0.0, ge=0, description="TTT weight decay")
    grad_clip: float = Field(1.0, ge=0, description="TTT gradient-norm clip")
    byte_weighted: bool = Field(True, description="TTT cross entropy weighted by each target's byte count")
    cosine: bool = Field(True, description="TTT lr cosine-decays across chunks")


class EvalSpec(Frozen):
    """Everything an evaluation job needs besides the artifact and the data."""

    eval: EvalConfig = EvalConfig()
    mixer: MixerConfig = MixerConfig()
    ttt: TTTConfig = TTTConfig()
