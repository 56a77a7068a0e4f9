"""FineWeb token shards: the challenge's binary format, read, written and validated.

A shard is 256 little-endian int32 (`[0]` = magic 20240520, `[1]` = version 1, `[2]` = token
count), then `count` little-endian uint16 tokens; the file is exactly 1024 + 2·count bytes.
Same format as upstream `write_datafile` / `load_data_shard`, so real and synthetic data are
interchangeable. Every check raises `ShardError` naming the file and the exact problem, and
`check_data_dir` runs them all before any GPU time is spent.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from golf_core.errors import UserError

if TYPE_CHECKING:
    import torch

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4  # 1024
TOKEN_BYTES = 2
SPLITS = ("train", "val")


class ShardError(UserError):
    """A shard or data directory that cannot be used; the message names file and problem."""


def write_shard(path: str | Path, tokens) -> Path:
    """Write `tokens` (any int array-like, each in [0, 65535]) as one shard file."""
    path = Path(path)
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.size >= 2**31:
        raise ShardError(f"{path}: {arr.size} tokens do not fit the int32 count field")
    if arr.dtype != np.uint16:
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= 2**16):
            raise ShardError(f"{path}: token ids must lie in [0, 65535] to be stored as uint16")
        arr = arr.astype(np.uint16)
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, arr.size
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then renamed: a reader never sees a half-written shard under its real name.
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(header.tobytes())
        f.write(arr.astype("<u2", copy=False).tobytes())
    tmp.replace(path)
    return path


def read_header(path: str | Path) -> int:
    """Validate a shard's header and file size; return its token count."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"{path}: shard file not found")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardError(f"{path}: short header ({size} bytes, a shard header is {HEADER_BYTES})")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if int(header[0]) != SHARD_MAGIC:
        raise ShardError(f"{path}: bad magic {int(header[0])} (expected {SHARD_MAGIC})")
    if int(header[1]) != SHARD_VERSION:
        raise ShardError(f"{path}: bad version {int(header[1])} (expected {SHARD_VERSION})")
    count = int(header[2])
    if count < 0:
        raise ShardError(f"{path}: negative token count {count} in header")
    expected = HEADER_BYTES + TOKEN_BYTES * count
    if size != expected:
        raise ShardError(
            f"{path}: size mismatch: header says {count} tokens, expected {expected} bytes, file has {size}"
        )
    return count


def _check_vocab(path: Path, tokens: np.ndarray, vocab_size: int) -> None:
    # np.max over a memmap streams the file once: fast enough for 100M-token shards.
    if tokens.size == 0 or int(tokens.max()) < vocab_size:
        return
    where = int(np.argmax(tokens >= vocab_size))
    raise ShardError(
        f"{path}: token {int(tokens[where])} at index {where} is >= vocab_size {vocab_size}"
    )


def read_shard(path: str | Path, vocab_size: int | None = None) -> np.ndarray:
    """The shard's tokens as a read-only uint16 memmap (validated; vocab checked if given)."""
    path = Path(path)
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    tokens = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))
    if vocab_size is not None:
        _check_vocab(path, tokens, vocab_size)
    return tokens


def split_files(data_dir: str | Path, split: str) -> list[Path]:
    """Sorted `fineweb_{split}_*.bin` files of a data dir (may be empty)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return sorted(Path(data_dir).glob(f"fineweb_{split}_*.bin"))


def load_split(data_dir: str | Path, split: str, vocab_size: int | None = None) -> "torch.Tensor":
    """All shards of a split concatenated in file order, as int64 (a LongTensor)."""
    files = split_files(data_dir, split)
    if not files:
        raise ShardError(f"{data_dir}: no fineweb_{split}_*.bin shards")
    parts = [np.asarray(read_shard(f, vocab_size), dtype=np.int64) for f in files]
    import torch  # here, not at the top: checking a data dir (every `golf plan`) needs no torch

    return torch.from_numpy(np.concatenate(parts) if len(parts) > 1 else parts[0])


def find_tokenizer(data_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """The data dir's SentencePiece `*.model` (golf's flat dir or upstream's layout), or
    `tokenizer` when given (golf_core.data.layout)."""
    from golf_core.data.layout import resolve_tokenizer

    return resolve_tokenizer(data_dir, tokenizer)


def check_data_dir(data_dir: str | Path, vocab_size: int, splits: tuple[str, ...] = SPLITS,
                   *, min_tokens: dict[str, tuple[int, str]] | None = None,
                   tokenizer: str | Path | None = None) -> None:
    """Validate a data dir (every shard's header, size, max token in `splits`; the tokenizer).

    One streaming pass per shard, run before any GPU time is spent, so a truncated download
    fails in seconds with the file's name, not mid-training. An evaluation passes
    splits=("val",): it never reads the ~16 GB of training shards. An empty shard is refused,
    and so is a split with fewer tokens than `min_tokens[split] = (n, what needs them)`, e.g.
    `{"val": (129, "one eval window (seq_len 128 + 1)")}`: a job would otherwise train to the
    end and only then fail to score.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ShardError(f"{data_dir}: data directory not found")
    for split in splits:
        files = split_files(data_dir, split)
        if not files:
            raise ShardError(f"{data_dir}: no fineweb_{split}_*.bin shards")
        total = 0
        for f in files:
            n = read_shard(f, vocab_size).size
            if n == 0:
                raise ShardError(f"{f}: empty shard (0 tokens)")
            total += n
        need, what = (min_tokens or {}).get(split, (1, ""))
        if total < need:
            raise ShardError(f"{data_dir}: the {split} split holds {total:,} tokens, fewer than the {need:,} "
                             f"{what or 'needed'}")
    model = find_tokenizer(data_dir, tokenizer)
    import sentencepiece as spm  # local: shard reading alone needs no tokenizer library

    try:
        sp_vocab = int(spm.SentencePieceProcessor(model_file=str(model)).vocab_size())
    except Exception as e:  # sentencepiece raises OSError/RuntimeError for a bad file
        raise ShardError(f"{model}: not a loadable SentencePiece model ({e})") from None
    # Upstream train_gpt.py refuses a VOCAB_SIZE that differs from the tokenizer's.
    if sp_vocab != vocab_size:
        raise ShardError(f"{model}: tokenizer vocab_size {sp_vocab} does not match vocab_size {vocab_size}")
