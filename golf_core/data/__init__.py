"""Data: FineWeb shards, the tokenizer's byte tables, the training token stream, synthetic data.

- `shards`: the binary shard format, validation (`check_data_dir`), split loading.
- `luts`: per-token byte counts for bits-per-byte (`build_byte_luts`).
- `stream`: `DistributedTokenLoader`, upstream's deterministic sequential stream.
- `synthetic`: `make_synthetic`, an English-like corpus + a real SentencePiece tokenizer.
- `fineweb`: `download_fineweb`, the challenge's data from the Hugging Face hub.
"""
from __future__ import annotations

from golf_core.data.config import DataConfig
from golf_core.data.luts import ByteLUTs, build_byte_luts
from golf_core.data.shards import (
    SHARD_MAGIC,
    ShardError,
    check_data_dir,
    find_tokenizer,
    load_split,
    read_shard,
    split_files,
    write_shard,
)
from golf_core.data.stream import DistributedTokenLoader, TokenStream

__all__ = [
    "SHARD_MAGIC",
    "ByteLUTs",
    "DataConfig",
    "DistributedTokenLoader",
    "ShardError",
    "TokenStream",
    "build_byte_luts",
    "check_data_dir",
    "find_tokenizer",
    "load_split",
    "read_shard",
    "split_files",
    "write_shard",
]
