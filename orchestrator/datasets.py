"""Make sure a plan's data directory holds shards before any job starts."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from golf_core.data.config import DataConfig
from golf_core.data.shards import split_files


def ensure_data(data: DataConfig, ddir: Path, say: Callable[[str], None]) -> None:
    """Synthetic data on first use (the embedded default needs no download); a missing FineWeb
    directory is a one-line input error that says how to get it."""
    if ddir.is_dir() and split_files(ddir, "train") and split_files(ddir, "val"):
        return
    if data.source == "fineweb":
        from golf_core.data.fineweb import download_command

        raise ValueError(f"data.path {data.path}: no train/val shards in {ddir}; download them first: "
                         f"{download_command(data.path, data.vocab_size)}")
    from golf_core.data.synthetic import make_synthetic

    say(f"making synthetic data in {ddir} ({data.synthetic_train_tokens:,} train + "
        f"{data.synthetic_val_tokens:,} val tokens, seed {data.synthetic_seed})")
    make_synthetic(ddir, data.synthetic_train_tokens, data.synthetic_val_tokens, data.synthetic_seed,
                   vocab_size=data.vocab_size)
