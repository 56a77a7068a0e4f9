"""Data: FineWeb shards, the tokenizer's byte tables, the training token stream, synthetic data.

- `shards`: the binary shard format, validation (`check_data_dir`), split loading.
- `luts`: per-token byte counts for bits-per-byte (`build_byte_luts`).
- `stream`: `DistributedTokenLoader`, upstream's deterministic sequential stream.
- `synthetic`: `make_synthetic`, an English-like corpus + a real SentencePiece tokenizer.
- `fineweb`: `download_fineweb`, the challenge's data from the Hugging Face hub.
"""
from __future__ import annotations

from golf_core import lazy

# Names resolve lazily (as golf_core.eval's do): the spec and plan import golf_core.data.config,
# and an eager package would pull torch (luts, stream) into every `golf plan` and every rerun
# where nothing runs (~250 MB of a ~600 MB rerun, issue 21).
_LAZY = {
    "DataConfig": "golf_core.data.config",
    "ByteLUTs": "golf_core.data.luts",
    "build_byte_luts": "golf_core.data.luts",
    "SHARD_MAGIC": "golf_core.data.shards",
    "ShardError": "golf_core.data.shards",
    "check_data_dir": "golf_core.data.shards",
    "find_tokenizer": "golf_core.data.shards",
    "load_split": "golf_core.data.shards",
    "read_shard": "golf_core.data.shards",
    "split_files": "golf_core.data.shards",
    "write_shard": "golf_core.data.shards",
    "DistributedTokenLoader": "golf_core.data.stream",
    "TokenStream": "golf_core.data.stream",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy.getattr_of(__name__, _LAZY)
