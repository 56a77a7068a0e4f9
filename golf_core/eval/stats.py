"""Per-token statistics of one evaluation (`token_stats.npz`), in scoring order (sorted by pos).

Neural pass: target, prev, bytes, p_model (float64), entropy (nats, float32), chunk, pos,
and n_ctx (tokens the scoring window showed before the target; #779 tries an n-gram order n
only where n_ctx >= n, so `ngram_pass(..., n_ctx=stats["n_ctx"])` replays the fused path).
After an n-gram pass / mix: order, p_ngram, p_mix. Audit extras: audit_idx (S,) indices into
the arrays above, audit_p_model (S, V) the model's full distribution at those positions.
The mix pass only needs this file and the tokens, so an alpha sweep costs no neural pass.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch.distributed as dist

from golf_core.eval.bpb import bpb_of
from golf_core.errors import UserError

CORE_KEYS = ("target", "prev", "bytes", "p_model", "entropy", "chunk", "pos")
OPTIONAL_KEYS = ("n_ctx", "order", "p_ngram", "p_mix", "audit_idx", "audit_p_model", "audit_p_ngram", "audit_p_mix")
DTYPES = {
    "target": np.int16, "prev": np.int16, "bytes": np.int16, "p_model": np.float64,
    "entropy": np.float32, "chunk": np.int32, "n_ctx": np.int32, "pos": np.int64, "order": np.int8,
    "p_ngram": np.float64, "p_mix": np.float64, "audit_idx": np.int64,
    "audit_p_model": np.float64, "audit_p_ngram": np.float64, "audit_p_mix": np.float64,
}
STATS_FILE = "token_stats.npz"


class StatsError(UserError):
    """A token_stats file or dict that is missing arrays or has inconsistent lengths."""


_VECTORS = CORE_KEYS + ("n_ctx", "order", "p_ngram", "p_mix", "audit_idx")


def check_stats(stats: dict[str, np.ndarray]) -> None:
    """Raise StatsError unless `stats` has the contract's arrays, each of the right shape: the
    per-token ones 1-D numbers of one length, audit rows 2-D with one row per audit index."""
    missing = [k for k in CORE_KEYS if k not in stats]
    if missing:
        raise StatsError(f"token stats lack {missing}")
    arrays = {k: np.asarray(v) for k, v in stats.items() if k in _VECTORS or k.startswith("audit_p")}
    for k, a in arrays.items():
        want = 2 if k.startswith("audit_p") else 1
        if a.ndim != want or a.dtype.kind not in "iuf":
            raise StatsError(f"token stats array {k!r} must be a {want}-D numeric array, "
                             f"got shape {a.shape} of {a.dtype}")
    n = len(arrays["pos"])
    bad = [k for k in _VECTORS if k in arrays and k != "audit_idx" and len(arrays[k]) != n]
    if bad:
        raise StatsError(f"token stats arrays {bad} differ in length from pos ({n})")
    if n > 1 and not np.all(np.diff(arrays["pos"]) > 0):
        raise StatsError("token stats are not in scoring order (pos must increase strictly)")
    audit = [k for k in arrays if k.startswith("audit_p")]
    if audit:
        idx = arrays.get("audit_idx")
        if idx is None:
            raise StatsError(f"token stats have {audit[0]!r} but no 'audit_idx'")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise StatsError(f"token stats 'audit_idx' points outside the {n} scored tokens")
        rows = [k for k in audit if arrays[k].shape[0] != len(idx)]
        if rows:
            raise StatsError(f"token stats arrays {rows} differ in rows from audit_idx ({len(idx)})")


def save_stats(path: str | Path, stats: dict[str, np.ndarray]) -> Path:
    """Write `stats` as an uncompressed npz (fast to write, mmap-friendly to read)."""
    check_stats(stats)
    path = Path(path)
    if path.is_dir():
        path = path / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v, dtype=DTYPES.get(k)) for k, v in stats.items() if v is not None}
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_stats(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if path.is_dir():
        path = path / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: token stats not found")
    try:
        with np.load(path, allow_pickle=False) as z:  # never unpickle a file someone handed us
            stats = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as e:
        raise StatsError(f"{path}: not a readable token stats .npz ({str(e).splitlines()[0][:200]})") from None
    try:
        check_stats(stats)
    except StatsError as e:
        raise StatsError(f"{path}: {e}") from None
    return stats


def model_nll(stats: dict[str, np.ndarray]) -> np.ndarray:
    """The model's NLL (nats, float64) per scored token."""
    return -np.log(np.asarray(stats["p_model"], dtype=np.float64))


def bpb_from_stats(stats: dict[str, np.ndarray], nll: np.ndarray | None = None) -> float:
    """val_bpb of per-token `nll` (default: the model's own) with the stats' byte counts."""
    return bpb_of(model_nll(stats) if nll is None else nll, stats["bytes"])[1]


def concat_stats(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-chunk or per-rank stats dicts and sort by pos (scoring order)."""
    parts = [p for p in parts if p and len(p.get("pos", ())) > 0]
    if not parts:
        return {}
    keys = [k for k in parts[0] if not k.startswith("audit_")]
    out = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    order = np.argsort(out["pos"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    # audit rows travel as (audit_pos, audit_p_*) and become indices into the sorted arrays
    if any("audit_pos" in p for p in parts):
        apos = np.concatenate([p["audit_pos"] for p in parts if "audit_pos" in p])
        a_order = np.argsort(apos, kind="stable")
        out["audit_idx"] = np.searchsorted(out["pos"], apos[a_order])
        for k in sorted(set().union(*parts)):
            if k.startswith("audit_p") and k != "audit_pos":
                rows = np.concatenate([p[k] for p in parts if k in p])
                out[k] = rows[a_order]
    return out


def gather_stats(local: dict[str, np.ndarray], rank: int, world_size: int) -> dict[str, np.ndarray] | None:
    """Rank 0 gets every rank's stats concatenated in scoring order; other ranks get None."""
    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return concat_stats([local])
    parts = [None] * world_size if rank == 0 else None
    dist.gather_object(local, parts, dst=0)
    return concat_stats(parts) if rank == 0 else None
