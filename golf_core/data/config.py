"""DataConfig: where shards and the tokenizer live."""
from __future__ import annotations

from typing import Literal

from golf_core.config import Frozen


class DataConfig(Frozen):
    # A directory holding fineweb_{train,val}_NNNNNN.bin shards (and, in golf's flat layout, one *.model).
    path: str = "data/synthetic"
    # The SentencePiece model, when it is not the dir's one *.model nor upstream's pairing
    # (`data/datasets/fineweb10B_sp1024` -> `data/tokenizers/fineweb_1024_bpe.model`, found alone).
    tokenizer_path: str | None = None
    vocab_size: int = 1024
    # synthetic: when `path` has no shards, `golf run` makes synthetic data there (sizes below).
    # fineweb: the real data; missing shards are an error naming the download command, never
    # silently replaced by synthetic tokens (a record must be scored on FineWeb).
    source: Literal["synthetic", "fineweb"] = "synthetic"
    synthetic_train_tokens: int = 2_000_000
    synthetic_val_tokens: int = 200_000
    synthetic_seed: int = 0
