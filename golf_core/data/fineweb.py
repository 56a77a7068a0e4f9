"""The challenge's FineWeb shards from the Hugging Face hub, laid out as upstream lays them out.

Follows upstream data/cached_challenge_fineweb.py: the hub repo (`willdepueoai/parameter-golf`,
a dataset repo, or $MATCHED_FINEWEB_REPO_ID) holds under `datasets/` (or
$MATCHED_FINEWEB_REMOTE_ROOT_PREFIX) a `manifest.json`, the shards in
`datasets/fineweb10B_<variant>/` and the tokenizers in `tokenizers/`. The manifest says how many
train/val shards exist and their token counts; we fetch all val shards, the first N train shards
and every artifact of the variant's tokenizer (`.model` and `.vocab`; byte260's table).

Layout "upstream" (the default) writes exactly the files upstream's script writes, at the same
places under the data root: `manifest.json`, `datasets/fineweb10B_<variant>/*.bin`,
`tokenizers/*` (a competitor's existing `data/` is then also golf's). Layout "flat" puts the
shards, manifest and tokenizer in one dir (golf's older layout).

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
from golf_core.errors import UserError

REPO_ID = "willdepueoai/parameter-golf"
REMOTE_ROOT = "datasets"
# upstream's environment overrides, read at call time (cached_challenge_fineweb.py reads them too)
REPO_ENV, ROOT_ENV = "MATCHED_FINEWEB_REPO_ID", "MATCHED_FINEWEB_REMOTE_ROOT_PREFIX"
LAYOUTS = ("upstream", "flat")

# download_fn(remote_path, dest): put the hub file `remote_path` (relative to the repo root) at `dest`.
DownloadFn = Callable[[str, Path], None]


class DownloadError(UserError):
    """A file could not be fetched from the hub (network, auth, missing file)."""


def dataset_name(variant: str) -> str:
    """Every variant upstream's downloader accepts: `byte260` and `sp<VOCAB>`."""
    if variant == "byte260" or (variant.startswith("sp") and variant[2:].isdigit()):
        return f"fineweb10B_{variant}"
    raise DownloadError(f"unsupported FineWeb variant {variant!r}; expected byte260 or sp<VOCAB>, e.g. sp1024")


def default_repo_id() -> str:
    return os.environ.get(REPO_ENV) or REPO_ID


def default_remote_root() -> str:
    v = os.environ.get(ROOT_ENV)
    return REMOTE_ROOT if v is None else v


def _remote(root: str, rel: str) -> str:
    return f"{root.strip('/')}/{rel}" if root.strip("/") else rel


def local_path(out: Path, remote_rel: str, layout: str) -> Path:
    """Where a file of the hub's root (`manifest.json`, `datasets/<ds>/<f>`, `tokenizers/<f>`,
    relative to the remote root) lands: upstream's local_path_for_remote, or flat."""
    parts = Path(remote_rel).parts
    if layout == "flat":
        return out / parts[-1]
    return out.joinpath(*parts)


def download_command(data_path: str, vocab_size: int) -> str:
    """The command that fills `data_path` (a spec's data.path) with FineWeb sp<vocab_size>."""
    p = Path(data_path)
    if p.parent.name == "datasets" and p.name.startswith("fineweb10B_"):
        return (f"golf data fineweb --variant {p.name[len('fineweb10B_'):]} --train-shards 80 "
                f"--out {p.parent.parent.as_posix()}")
    return f"golf data fineweb --variant sp{vocab_size} --train-shards 80 --layout flat --out {data_path}"


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
    if path.suffix != ".model":  # .vocab, byte260's table: no parser to check them with
        return True
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


def download_fineweb(variant: str = "sp1024", train_shards: int = 80, out_dir: str | Path = "data",
                     repo_id: str | None = None, api=None, download_fn: DownloadFn | None = None,
                     remote_root: str | None = None, log: Callable[[str], None] | None = None,
                     layout: str = "upstream", with_docs: bool = False) -> dict:
    """Fetch val shards, the first `train_shards` train shards and the tokenizer into `out_dir`.

    `out_dir`: the data root (layout "upstream": shards go to out_dir/datasets/fineweb10B_<variant>)
    or the data dir itself (layout "flat"). `repo_id` / `remote_root` default to upstream's env
    vars, then upstream's values. `api`: a huggingface_hub.HfApi (default: a fresh one);
    `download_fn` replaces the hub entirely. Returns a summary dict (dir, data_dir, tokenizer,
    files, tokens, bytes, downloaded, skipped).
    """
    if train_shards < 0:
        raise DownloadError(f"train_shards must be >= 0, got {train_shards}")
    if layout not in LAYOUTS:
        raise DownloadError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    name = dataset_name(variant)
    repo_id = repo_id or default_repo_id()
    remote_root = default_remote_root() if remote_root is None else remote_root
    download = download_fn or hf_download_fn(repo_id, api)
    log = log or (lambda msg: None)
    out = Path(out_dir)
    data_dir = out if layout == "flat" else out / "datasets" / name
    out.mkdir(parents=True, exist_ok=True)
    for d in {out, data_dir, out / "tokenizers"}:
        for stale in d.glob("*.part") if d.is_dir() else ():
            stale.unlink()  # our own interrupted downloads

    # The manifest is small and the source of truth: always fetch it fresh.
    manifest_path = local_path(out, "manifest.json", layout)
    where = f"{repo_id}:{_remote(remote_root, 'manifest.json')}"
    _fetch(download, _remote(remote_root, "manifest.json"), manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DownloadError(f"{manifest_path}: hub manifest is not valid JSON ({e})") from None
    entry = next((d for d in manifest.get("datasets", []) if d.get("name") == name), None)
    if entry is None:
        raise DownloadError(f"dataset {name} not in {where}")
    stats = entry.get("stats") or {}
    n_train, n_val = int(stats.get("files_train", 0)), int(stats.get("files_val", 0))
    if train_shards > n_train:
        raise DownloadError(f"{variant} has {n_train} train shards on {repo_id}, requested {train_shards}")
    tok_entry = next((t for t in manifest.get("tokenizers", []) if t.get("name") == entry.get("tokenizer_name")), None)
    tok_files = [str(tok_entry[k]) for k in ("model_path", "vocab_path", "path") if tok_entry and tok_entry.get(k)]
    if not tok_files:
        raise DownloadError(f"tokenizer {entry.get('tokenizer_name')!r} of {name} has no downloadable files in {where}")
    shard_size = manifest.get("shard_size")
    vocab_size = entry.get("vocab_size")

    jobs = []  # (remote, dest, expected size)
    for split, n in (("val", n_val), ("train", train_shards)):
        sizes = _expected_shard_sizes(stats, shard_size, split, int(stats.get(f"files_{split}", 0)))
        for i in range(n):
            rel = f"datasets/{name}/fineweb_{split}_{i:06d}.bin"
            jobs.append((_remote(remote_root, rel), local_path(out, rel, layout), sizes[i]))

    summary = {"dir": str(out), "data_dir": str(data_dir), "variant": variant, "layout": layout,
               "downloaded": [], "skipped": []}
    for remote, dest, expected in jobs:
        if _shard_ok(dest, expected):
            summary["skipped"].append(dest.name)
            continue
        log(f"fetch {remote}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        _fetch(download, remote, dest)
        try:
            _verify_shard(dest, expected, remote)
        except ShardError:
            dest.unlink()  # never leave a bad shard that a later resume would trust
            raise
        summary["downloaded"].append(dest.name)

    tok_paths = []
    for rel in tok_files:
        tok_remote, tok_dest = _remote(remote_root, rel), local_path(out, rel, layout)
        tok_paths.append(tok_dest)
        if _tokenizer_ok(tok_dest, vocab_size):
            summary["skipped"].append(tok_dest.name)
            continue
        log(f"fetch {tok_remote}")
        tok_dest.parent.mkdir(parents=True, exist_ok=True)
        _fetch(download, tok_remote, tok_dest)
        if not _tokenizer_ok(tok_dest, vocab_size):
            tok_dest.unlink()
            raise ShardError(f"{tok_dest}: downloaded tokenizer is not a SentencePiece model with vocab {vocab_size}")
        summary["downloaded"].append(tok_dest.name)

    if with_docs:  # upstream's --with-docs: the selected documents, for retraining a tokenizer
        for rel in ("docs_selected.jsonl", "docs_selected.source_manifest.json"):
            dest = local_path(out, rel, layout)
            if dest.is_file() and dest.stat().st_size > 0:
                summary["skipped"].append(dest.name)
                continue
            log(f"fetch {_remote(remote_root, rel)}")
            _fetch(download, _remote(remote_root, rel), dest)
            summary["downloaded"].append(dest.name)

    shards = [dest for _, dest, _ in jobs]
    model = next((p for p in tok_paths if p.suffix == ".model"), tok_paths[0])
    summary["files"] = len(shards) + len(tok_paths)
    summary["train_shards"] = train_shards
    summary["val_shards"] = n_val
    summary["tokens"] = sum((p.stat().st_size - HEADER_BYTES) // TOKEN_BYTES for p in shards)
    summary["bytes"] = sum(p.stat().st_size for p in shards + tok_paths)
    summary["tokenizer"] = model.name
    summary["tokenizer_path"] = str(model)
    return summary
