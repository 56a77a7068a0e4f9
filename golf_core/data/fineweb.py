"""The challenge's FineWeb shards from the Hugging Face hub, into one flat data dir.

Follows upstream data/cached_challenge_fineweb.py: the hub repo (`willdepueoai/parameter-golf`,
a dataset repo) holds under `datasets/` a `manifest.json`, the shards in
`datasets/fineweb10B_<variant>/` and the tokenizers in `tokenizers/`. The manifest says how many
train/val shards exist and their token counts; we fetch all val shards, the first N train shards
and the tokenizer `.model`, and lay them out flat (docs/ARCHITECTURE.md "Data directory layout").

Resumable: a file already present with the right size (and a valid header) is kept; a partial or
corrupt one is fetched again. Downloads go to `<name>.part` and are renamed only once verified.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from golf_core.data.shards import HEADER_BYTES, TOKEN_BYTES, ShardError, read_header

REPO_ID = "willdepueoai/parameter-golf"
REMOTE_ROOT = "datasets"

# download_fn(remote_path, dest): put the hub file `remote_path` (relative to the repo root) at `dest`.
DownloadFn = Callable[[str, Path], None]


class DownloadError(ValueError):
    """A file could not be fetched from the hub (network, auth, missing file)."""


def dataset_name(variant: str) -> str:
    # byte260 (upstream's pure-byte export) has no SentencePiece model, which a data dir needs.
    if variant.startswith("sp") and variant[2:].isdigit():
        return f"fineweb10B_{variant}"
    raise ValueError(f"unsupported FineWeb variant {variant!r}; expected sp<VOCAB>, e.g. sp1024")


def hf_download_fn(repo_id: str = REPO_ID, api=None) -> DownloadFn:
    """A download function backed by huggingface_hub (the HF cache, then a hard link or copy)."""

    def download(remote_path: str, dest: Path) -> None:
        from huggingface_hub import HfApi

        hub = api or HfApi()
        remote = Path(remote_path)
        try:
            cached = Path(hub.hf_hub_download(
                repo_id=repo_id,
                filename=remote.name,
                subfolder=remote.parent.as_posix() if remote.parent != Path(".") else None,
                repo_type="dataset",
            )).resolve(strict=True)  # cache entries are symlinks to blobs: materialize a real file
        except Exception as e:  # network / auth / missing-file errors of many types: one line
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise DownloadError(f"{repo_id}:{remote_path}: download failed ({type(e).__name__}: {msg})") from e
        try:
            os.link(cached, dest)
        except OSError:
            shutil.copyfile(cached, dest)

    return download


def local_download_fn(hub_root: str | Path) -> DownloadFn:
    """A download function that copies from a local directory laid out like the hub repo
    (a mirror on a shared filesystem; the tests' fake hub)."""
    root = Path(hub_root)

    def download(remote_path: str, dest: Path) -> None:
        src = root / remote_path
        if not src.is_file():
            raise FileNotFoundError(f"{src}: not found in local hub mirror {root}")
        shutil.copyfile(src, dest)

    return download


def _expected_shard_sizes(stats: dict, shard_size: int | None, split: str, n_files: int) -> list[int | None]:
    """Byte sizes implied by the manifest: every shard full except the split's last one."""
    tokens = stats.get(f"tokens_{split}")
    if not shard_size or tokens is None:
        return [None] * n_files
    counts = [shard_size] * n_files
    if n_files:
        counts[-1] = int(tokens) - shard_size * (int(stats[f"files_{split}"]) - 1)
    return [HEADER_BYTES + TOKEN_BYTES * c for c in counts]


def _shard_ok(path: Path, expected: int | None) -> bool:
    if not path.is_file():
        return False
    try:
        read_header(path)
    except ShardError:
        return False
    return expected is None or path.stat().st_size == expected


def _verify_shard(path: Path, expected: int | None, remote: str) -> None:
    read_header(path)  # raises ShardError naming the file and the problem
    actual = path.stat().st_size
    if expected is not None and actual != expected:
        raise ShardError(f"{path}: size mismatch for {remote}: manifest implies {expected} bytes, got {actual}")


def _tokenizer_ok(path: Path, vocab_size: int | None) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    import sentencepiece as spm

    try:
        sp = spm.SentencePieceProcessor(model_file=str(path))
    except Exception:  # a truncated model fails to parse
        return False
    return vocab_size is None or int(sp.vocab_size()) == vocab_size


def _fetch(download: DownloadFn, remote: str, dest: Path) -> None:
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    download(remote, part)
    part.replace(dest)


def download_fineweb(variant: str = "sp1024", train_shards: int = 80, out_dir: str | Path = "data/fineweb10B_sp1024",
                     repo_id: str = REPO_ID, api=None, download_fn: DownloadFn | None = None,
                     remote_root: str = REMOTE_ROOT, log: Callable[[str], None] | None = None) -> dict:
    """Fetch val shards, the first `train_shards` train shards and the tokenizer into `out_dir`.

    `api`: a huggingface_hub.HfApi (default: a fresh one); `download_fn` replaces the hub entirely.
    Returns a summary dict (files, tokens, bytes, downloaded, skipped).
    """
    if train_shards < 0:
        raise ValueError(f"train_shards must be >= 0, got {train_shards}")
    name = dataset_name(variant)
    download = download_fn or hf_download_fn(repo_id, api)
    log = log or (lambda msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.part"):
        stale.unlink()

    # The manifest is small and the source of truth: always fetch it fresh.
    manifest_path = out / "manifest.json"
    _fetch(download, f"{remote_root}/manifest.json", manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{manifest_path}: hub manifest is not valid JSON ({e})") from None
    entry = next((d for d in manifest.get("datasets", []) if d.get("name") == name), None)
    if entry is None:
        raise ValueError(f"dataset {name} not in {repo_id}:{remote_root}/manifest.json")
    stats = entry.get("stats") or {}
    n_train, n_val = int(stats.get("files_train", 0)), int(stats.get("files_val", 0))
    if train_shards > n_train:
        raise ValueError(f"{variant} has {n_train} train shards on {repo_id}, requested {train_shards}")
    tok_entry = next((t for t in manifest.get("tokenizers", []) if t.get("name") == entry.get("tokenizer_name")), None)
    if tok_entry is None or not tok_entry.get("model_path"):
        raise ValueError(f"tokenizer {entry.get('tokenizer_name')!r} of {name} has no model_path in the manifest")
    shard_size = manifest.get("shard_size")
    vocab_size = entry.get("vocab_size")

    jobs = []  # (remote, dest, expected size)
    for split, n in (("val", n_val), ("train", train_shards)):
        sizes = _expected_shard_sizes(stats, shard_size, split, int(stats.get(f"files_{split}", 0)))
        for i in range(n):
            fname = f"fineweb_{split}_{i:06d}.bin"
            jobs.append((f"{remote_root}/datasets/{name}/{fname}", out / fname, sizes[i]))

    summary = {"dir": str(out), "variant": variant, "downloaded": [], "skipped": []}
    for remote, dest, expected in jobs:
        if _shard_ok(dest, expected):
            summary["skipped"].append(dest.name)
            continue
        log(f"fetch {remote}")
        _fetch(download, remote, dest)
        try:
            _verify_shard(dest, expected, remote)
        except ShardError:
            dest.unlink()  # never leave a bad shard that a later resume would trust
            raise
        summary["downloaded"].append(dest.name)

    tok_remote = f"{remote_root}/{tok_entry['model_path']}"
    tok_dest = out / Path(tok_entry["model_path"]).name
    for other in out.glob("*.model"):  # exactly one tokenizer per data dir
        if other != tok_dest:
            other.unlink()
    if _tokenizer_ok(tok_dest, vocab_size):
        summary["skipped"].append(tok_dest.name)
    else:
        log(f"fetch {tok_remote}")
        _fetch(download, tok_remote, tok_dest)
        if not _tokenizer_ok(tok_dest, vocab_size):
            tok_dest.unlink()
            raise ShardError(f"{tok_dest}: downloaded tokenizer is not a SentencePiece model with vocab {vocab_size}")
        summary["downloaded"].append(tok_dest.name)

    shards = [dest for _, dest, _ in jobs]
    summary["files"] = len(shards) + 1
    summary["train_shards"] = train_shards
    summary["val_shards"] = n_val
    summary["tokens"] = sum((p.stat().st_size - HEADER_BYTES) // TOKEN_BYTES for p in shards)
    summary["bytes"] = sum(p.stat().st_size for p in shards) + tok_dest.stat().st_size
    summary["tokenizer"] = tok_dest.name
    return summary
