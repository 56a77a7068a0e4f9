"""Make sure a plan's data directory holds usable shards before any job starts.

Data is never destroyed: synthetic data is made only into a missing or empty directory, or
one golf made itself (golf_core.data.synthetic's recipe file). A directory holding anything
else that lacks a split (a half-finished download, a typo'd path onto real files) is a
one-line error naming the missing split and the download command; its files stay untouched.
"""
from __future__ import annotations

from golf_core.errors import UserError
import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Callable

from golf_core.data.config import DataConfig
from golf_core.data.paths import check_inside
from golf_core.data.shards import SPLITS, check_data_dir, split_files


# -- content identity (issue 20: 20,000 val tokens changed at the same size, and golf reused the
# old val_bpb): a data dir's identity hashes each shard's bytes. The first hash reads every byte
# (bench/data_identity.py measures it); the digest is cached by (path, size, mtime, inode), so a
# rerun over unchanged files reads none of them (and ctime, which no user can set back).
DIGEST_CACHE = "data-digests.json"


def cache_dir() -> Path:
    """$GOLF_CACHE_DIR, else $XDG_CACHE_HOME/golf, else ~/.cache/golf: a failed `golf run` still
    leaves nothing in the workspace, and one machine's shards are hashed once for every workspace."""
    if os.environ.get("GOLF_CACHE_DIR"):
        return Path(os.environ["GOLF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "golf"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, cache: dict) -> None:
    for key in [k for k in cache if not os.path.exists(k)]:  # files gone: their entries too
        del cache[key]
    try:  # written whole or not at all; a read-only cache dir only costs a rehash next time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def file_digests(files: list[Path], workspace: str | Path = ".") -> dict[Path, str]:
    """sha256 of each file's bytes, from the cache (cache_dir()) when the file's (resolved path,
    size, mtime, ctime, inode) is the one the cache saw."""
    cache_path = cache_dir() / DIGEST_CACHE
    cache = _load_cache(cache_path)
    out, changed = {}, False
    for f in files:
        st = f.stat()
        key = str(f.resolve())
        # ctime too: a write restoring the mtime (touch -r, rsync -t over the same inode) cannot set it
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        hit = cache.get(key)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == stamp and isinstance(hit[1], str):
            out[f] = hit[1]
            continue
        with open(f, "rb") as fh:
            out[f] = hashlib.file_digest(fh, "sha256").hexdigest()
        cache[key] = [stamp, out[f]]
        changed = True
    if changed:
        _save_cache(cache_path, cache)
    return out


def synthetic_as_made(root: Path, shards: list[Path], workspace: str | Path = ".") -> bool:
    """True when golf made `root` (golf_synthetic.json) and its shards still hold the bytes it
    wrote then (a dir made before the recipe recorded digests: True, as before)."""
    from golf_core.data.synthetic import RECIPE_FILE

    try:
        recorded = json.loads((root / RECIPE_FILE).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(recorded, dict):
        return True
    now = file_digests(shards, workspace)
    return {f.name: d for f, d in now.items()} == recorded


def _download(data: DataConfig) -> str:
    from golf_core.data.fineweb import download_command

    return download_command(data.path, data.vocab_size)


def resolve_data_dir(data: DataConfig, workspace: Path, external: bool) -> Path:
    """The data dir, symlinks resolved. A workspace path (relative, no `..`) that resolves
    outside the workspace is refused unless the spec says `data.external: true`."""
    p = PurePosixPath(data.path)
    if external or p.is_absolute():  # an absolute path needs external: true (orchestrator.spec.sweep)
        return (Path(p) if p.is_absolute() else workspace / p).resolve()
    return check_inside(p, workspace, f"data.path {data.path}", "set data.external: true to use it")


def resolve_work_dir(arg: str, workspace: Path) -> Path:
    """--work-dir resolved: a relative one must stay inside the workspace (an absolute one is
    the user's explicit choice, e.g. a cluster's shared scratch)."""
    if Path(arg).is_absolute():
        return Path(arg).resolve()
    return check_inside(arg, workspace, f"--work-dir {arg}", "pass its absolute path to use it")


def ensure_data(data: DataConfig, ddir: Path, say: Callable[[str], None]) -> None:
    """Synthetic data on first use (the embedded default needs no download); missing FineWeb
    shards, or a directory of other files lacking a split, are a one-line input error."""
    from golf_core.data.synthetic import own_files

    present = {s: bool(split_files(ddir, s)) for s in SPLITS} if ddir.is_dir() else dict.fromkeys(SPLITS, False)
    missing = [s for s in SPLITS if not present[s]]
    if not missing:
        return  # complete: used as it is (check_plan_data validates it)
    entries = sorted(e.name for e in ddir.iterdir()) if ddir.is_dir() else []
    own = own_files(ddir) if entries else None
    golf_made = own is not None and not set(entries) - own
    if data.source == "fineweb" or (entries and not golf_made):
        what = " and ".join(missing)
        if not entries:
            raise UserError(f"data.path {data.path}: no train/val shards in {ddir}; download them first: "
                             f"{_download(data)}")
        raise UserError(f"data.path {data.path}: {what} shards (fineweb_{missing[0]}_*.bin) missing in {ddir}, "
                         f"which holds {len(entries)} other file(s) golf leaves untouched; finish the download: "
                         f"{_download(data)}")
    from golf_core.data.synthetic import make_synthetic

    say(f"making synthetic data in {ddir} ({data.synthetic_train_tokens:,} train + "
        f"{data.synthetic_val_tokens:,} val tokens, seed {data.synthetic_seed})")
    make_synthetic(ddir, data.synthetic_train_tokens, data.synthetic_val_tokens, data.synthetic_seed,
                   vocab_size=data.vocab_size)


def token_needs(plan) -> dict[str, tuple[int, str]]:
    """The fewest tokens per split the plan's jobs can run on: one training sequence (+1 for
    the shifted targets) and one evaluation window (the roundtrip eval and every eval job)."""
    train = [(j.run.train.train_seq_len + 1, "one training sequence (train_seq_len {} + 1)")
             for j in plan.by_kind("train")]
    val = [(j.run.eval.seq_len + 1, "one eval window (seq_len {} + 1)") for j in plan.by_kind("train")]
    val += [(j.eval.seq_len + 1, "one eval window (seq_len {} + 1)") for j in plan.by_kind("eval")]
    out = {}
    for split, needs in (("train", train), ("val", val)):
        if needs:
            n, what = max(needs)
            out[split] = (n, what.format(n - 1))
    return out


def check_plan_data(plan, ddir: Path, tokenizer: Path | None = None) -> None:
    """Every shard valid, none empty, each split long enough for the plan (ShardError: one line)."""
    splits = ("train", "val") if plan.by_kind("train") else ("val",)
    check_data_dir(ddir, plan.data.vocab_size, splits=splits, min_tokens=token_needs(plan), tokenizer=tokenizer)
