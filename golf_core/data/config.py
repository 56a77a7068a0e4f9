"""DataConfig: where shards and the tokenizer live."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from golf_core.config import MAX_DIM, MAX_SEED, MAX_TOKENS, Frozen


class DataConfig(Frozen):
    # A directory holding fineweb_{train,val}_NNNNNN.bin shards (and, in golf's flat layout, one *.model).
    path: str = Field(
        "data/synthetic", description="directory of fineweb_{train,val}_NNNNNN.bin shards (golf's flat layout: "
                                      "and one SentencePiece *.model)")
    # The SentencePiece model, when it is not the dir's one *.model nor upstream's pairing
    # (`data/datasets/fineweb10B_sp1024` -> `data/tokenizers/fineweb_1024_bpe.model`, found alone).
    tokenizer_path: str | None = Field(
        None, description="SentencePiece model path; default: the dir's one *.model or upstream's tokenizers/ pairing")
    vocab_size: int = Field(
        1024, ge=2, le=MAX_DIM, description="tokenizer vocabulary; shards hold uint16 tokens below it")
    # synthetic: when `path` has no shards, `golf run` makes synthetic data there (sizes below).
    # fineweb: the real data; missing shards are an error naming the download command, never
    # silently replaced by synthetic tokens (a record must be scored on FineWeb).
    source: Literal["synthetic", "fineweb"] = Field(
        "synthetic", description="synthetic: made on first use when the dir has no shards; fineweb: missing shards are an error")
    synthetic_train_tokens: int = Field(2_000_000, ge=1, le=MAX_TOKENS, description="train tokens of synthetic data")
    synthetic_val_tokens: int = Field(200_000, ge=1, le=MAX_TOKENS, description="validation tokens of synthetic data")
    synthetic_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the synthetic text generator")
