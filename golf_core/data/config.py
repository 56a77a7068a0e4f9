"""DataConfig: where shards and the tokenizer live."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from golf_core.config import MAX_DIM, MAX_SEED, MAX_TOKENS, Frozen


class DataConfig(Frozen):
    # A directory holding fineweb_{train,val}_NNNNNN.bin shards and one SentencePiece *.model.
    path: str = "data/synthetic"
    vocab_size: int = Field(1024, ge=2, le=MAX_DIM)  # shards store uint16 token ids
    # synthetic: when `path` has no shards, `golf run` makes synthetic data there (sizes below).
    # fineweb: the real data; missing shards are an error naming the download command, never
    # silently replaced by synthetic tokens (a record must be scored on FineWeb).
    source: Literal["synthetic", "fineweb"] = "synthetic"
    synthetic_train_tokens: int = Field(2_000_000, ge=1, le=MAX_TOKENS)
    synthetic_val_tokens: int = Field(200_000, ge=1, le=MAX_TOKENS)
    synthetic_seed: int = Field(0, ge=0, le=MAX_SEED)
