"""QuantConfig: how the trained model becomes the compressed artifact."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from golf_core.config import MAX_COUNT, Frozen


class QuantConfig(Frozen):
    """How the trained model becomes the compressed artifact: scheme, clipping, storage, compressor."""

    # int8: upstream per-row int8 (clip at the 99.99984th percentile).
    # int6 / int5: per-row, clip chosen by reconstruction-error search over percentiles (#779).
    # In every scheme embeddings and non-block tensors stay int8 (#779 mixed_quantize_int6).
    scheme: Literal["int8", "int6", "int5"] = Field(
        "int8", description="Block-weight quantization: int8 (upstream per-row) or int6/int5 with clip search (PR #779)")
    # Layers (counted from the last) kept at int6 when scheme is int5 (#779's INT6_LAST_N).
    int6_last_n: int = Field(0, ge=0, le=MAX_COUNT,
                             description="Last n layers kept at int6 when scheme is int5 (PR #779 INT6_LAST_N)")
    clip_percentiles: tuple[float, ...] = Field((0.999, 0.9995, 0.9999, 0.99999, 1.0), max_length=64,
                                                description="Candidate clip percentiles (fractions in (0, 1]) for int6/int5")
    # "tensor": one percentile per matrix, the one with the lowest mean squared error (#779);
    # "row": the best percentile for each row separately (never worse in MSE, same bytes layout).
    clip_search: Literal["row", "tensor"] = Field(
        "row", description="Clip search granularity: best percentile per row, or per matrix (PR #779)")
    # Row scales are floored at 1/clip_range (upstream int8: 1/127; #779 int5: 1/15), which for
    # rows with max|w| < 1 makes the grid coarser than the clip asks for; #779's QAT trains
    # against the same floor. False = scale from the clip alone.
    scale_floor: bool = Field(True, description="Floor row scales at 1/clip_range (upstream, PR #779); False = clip alone")
    prune_frac: float = Field(0.0, ge=0.0, lt=1.0,  # magnitude pruning before quantization
                              description="Fraction of weights magnitude-pruned before quantization")
    keep_float_max_numel: int = Field(65_536, ge=0, le=2**31,  # small tensors stay in fp16/fp32
                                      description="Tensors with at most this many elements stay in float")
    # Small control tensors (attn_scale, resid_mix, q_gain, ...) kept fp32 (upstream) or fp16 (#779).
    control_fp32: bool = Field(True, description="Keep small control tensors in fp32 (upstream); False = fp16 (PR #779)")
    # How int5/int6 values are stored before compression: in int8 containers (the compressor
    # squeezes the unused bits, as #779) or bit-packed. bench/quant_compressors.py measures both.
    storage: Literal["int8", "packed"] = Field(
        "int8", description="int5/int6 storage before compression: int8 containers (PR #779) or bit-packed")
    # zstd by measurement (bench/RESULTS.md "quant"): smallest or within 3.3% in every case measured,
    # 0.5-1.8 MB smaller than zlib on int5 data, 0.2% smaller on int8. Upstream used zlib, #779 zstd-22.
    # "best": all three at their max level, the smallest kept (compression time x3).
    compressor: Literal["zlib", "lzma", "zstd", "best"] = Field(
        "zstd", description="Artifact compressor (upstream zlib, PR #779 zstd); best = smallest of all three")
    level: int | None = Field(None,  # None = the compressor's max (zlib 9, lzma 9e, zstd 22)
                              description="Compression level; None = the compressor's max (zlib 9, lzma 9e, zstd 22)")

    @model_validator(mode="after")
    def _check(self) -> "QuantConfig":
        if not self.clip_percentiles or any(not 0.0 < p <= 1.0 for p in self.clip_percentiles):
            raise ValueError(f"clip_percentiles must be non-empty, each in (0, 1] (got {self.clip_percentiles})")
        if self.compressor == "best" and self.level is not None:
            raise ValueError("level must be unset (max) with compressor 'best'")
        ranges = {"zlib": (0, 9), "lzma": (0, 9), "zstd": (1, 22), "best": (0, 0)}
        lo, hi = ranges[self.compressor]
        if self.level is not None and not lo <= self.level <= hi:
            raise ValueError(f"level {self.level} outside {lo}..{hi} for {self.compressor}")
        return self
