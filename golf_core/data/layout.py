"""Where a data dir's tokenizer is: golf's flat dir or upstream's `data/` layout.

Two layouts are read as they are:
- golf's flat dir: shards and exactly one SentencePiece `*.model` side by side;
- upstream's (data/cached_challenge_fineweb.py): `data/datasets/fineweb10B_sp1024/` holds the
  shards, `data/tokenizers/fineweb_1024_bpe.model` the tokenizer, `data/manifest.json` maps one
  to the other. Every competitor already has this on disk.
An explicit tokenizer path (`--tokenizer`, `data.tokenizer_path`) wins over both.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from golf_core.data.shards import ShardError


def upstream_tokenizer(data_dir: Path) -> Path | None:
    """The tokenizer upstream's layout pairs with `data_dir`, or None if it is not that layout.

    The manifest's dataset entry names the tokenizer and the tokenizer entry its model_path
    (relative to the data root); without a manifest, upstream's naming (`fineweb10B_sp<N>` ->
    `tokenizers/fineweb_<N>_bpe.model`) decides.
    """
    if data_dir.parent.name != "datasets":
        return None
    root = data_dir.parent.parent
    manifest = root / "manifest.json"
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            doc = {}
        entry = next((d for d in doc.get("datasets", []) if d.get("name") == data_dir.name), None)
        if entry is not None:
            tok = next((t for t in doc.get("tokenizers", []) if t.get("name") == entry.get("tokenizer_name")), None)
            if tok and tok.get("model_path"):
                return root / tok["model_path"]
    m = re.fullmatch(r"fineweb10B_sp(\d+)", data_dir.name)
    if m:
        return root / "tokenizers" / f"fineweb_{m.group(1)}_bpe.model"
    return None


def resolve_tokenizer(data_dir: str | Path, tokenizer: str | Path | None = None) -> Path:
    """The SentencePiece model for `data_dir`: `tokenizer` if given, else the flat dir's one
    `*.model`, else upstream's pairing. ShardError names what is missing."""
    data_dir = Path(data_dir)
    if tokenizer is not None:
        tok = Path(tokenizer)
        if not tok.is_file():
            raise ShardError(f"{tok}: tokenizer file not found")
        return tok
    if not data_dir.is_dir():
        raise ShardError(f"{data_dir}: data directory not found")
    models = sorted(data_dir.glob("*.model"))
    if len(models) > 1:
        names = ", ".join(m.name for m in models)
        raise ShardError(f"{data_dir}: expected exactly one *.model tokenizer, found {len(models)}: {names}"
                         " (pass --tokenizer / data.tokenizer_path to choose)")
    if models:
        return models[0]
    paired = upstream_tokenizer(data_dir)
    if paired is not None:
        if paired.is_file():
            return paired
        raise ShardError(f"{data_dir}: upstream layout, but its tokenizer {paired} is missing "
                         "(download it, or pass --tokenizer / data.tokenizer_path)")
    raise ShardError(f"{data_dir}: no SentencePiece *.model tokenizer file "
                     "(pass --tokenizer / data.tokenizer_path)")
