"""QuantConfig: how the trained model becomes the compressed artifact."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from golf_core.config import Frozen


class QuantConfig(Frozen):
    # int8: upstream per-row int8 (clip at the 99.99984th percentile).
    # int6 / int5: per-row, clip chosen by reconstruction-error search over percentiles (#779).
    scheme: Literal["int8", "int6", "int5"] = "int8"
    # Layers (counted from the last) kept at int6 when scheme is int5 (#779's INT6_LAST_N).
    int6_last_n: int = Field(0, ge=0)
    clip_percentiles: tuple[float, ...] = (0.999, 0.9995, 0.9999, 0.99999, 1.0)
    prune_frac: float = Field(0.0, ge=0.0, lt=1.0)  # magnitude pruning before quantization
    keep_float_max_numel: int = 65_536  # small tensors stay in fp16/fp32
    compressor: Literal["zlib", "lzma", "zstd"] = "zlib"
    level: int | None = None  # None = the compressor's max (zlib 9, lzma 9, zstd 22)
