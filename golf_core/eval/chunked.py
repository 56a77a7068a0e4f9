"""Score-first chunked evaluation (PR #779 eval_val_sliding_ttt, PR #809 chunk-synchronous).

The validation targets are cut into `eval.chunk_tokens` chunks; a window belongs to the chunk
where its scored region starts (windows.window_chunks). For each chunk, in order:
1. score: every rank scores its contiguous share of the chunk's windows under inference mode,
   recording per target: target, prev, bytes, p_model, entropy, pos, chunk (and n_ctx);
2. `on_scored(chunk, scored)`: the fused path looks the chunk's targets up in the n-gram tables
   (which hold only earlier chunks) and mixes;
3. `after_score(chunk, (lo, hi))`: the caches absorb the chunk's tokens val[lo:hi]; every rank
   absorbs the WHOLE chunk, so all ranks hold the same tables with no communication (#809);
4. TTT trains on the chunk (not the last one; ttt.py).
Nothing is absorbed or trained on before it is scored: each step is written to an event log
(`{"kind": "score"|"absorb"|"train", "chunk", "lo", "hi", "rank"}`, stream-index ranges
[lo, hi); a score event names the chunk's targets pos in [lo, hi)), and
`check_score_before_update(events)` verifies it (the audit's C3).

Temperature: logits are divided by eval.temperature (sliding.apply_temperature). #779's record
sets TTT_TEMPERATURE=0.98 and, because it is != 1, always uses its adaptive per-position form
(eval.adaptive_temperature). #779 also has Polyak averaging and an adaptive TTT lr, both off in
its record run (USE_POLYAK=0, ADAPTIVE_LR=0); not implemented.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from golf_core.eval.bpb import BpbSums
from golf_core.eval.config import EvalConfig, TTTConfig
from golf_core.eval.sliding import score_windows, truncate_val
from golf_core.eval.stats import DTYPES, gather_stats
from golf_core.eval.ttt import ChunkTTT
from golf_core.eval.windows import chunk_token_range, num_chunks, rank_slice, sliding_windows, window_chunks

OnScored = Callable[[int, dict], "dict[str, np.ndarray] | None"]
AfterScore = Callable[[int, "tuple[int, int]"], None]


@dataclass
class ChunkedResult:
    sums: BpbSums  # the model's own score, summed over all ranks
    mix_sums: BpbSums | None  # the mixed score (when on_scored returned p_mix)
    stats: dict | None  # rank 0: every rank's token stats in scoring order; else None
    events: list = field(default_factory=list)  # rank 0: every rank's events
    total_tokens: int = 0
    n_chunks: int = 0
    eval_time_s: float = 0.0
    ttt_params: int = 0
    ttt_steps: int = 0


def audit_positions(total_tokens: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` distinct target positions in 1..total, sorted; fixed by (total, count, seed)."""
    count = min(count, total_tokens)
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total_tokens, size=count, replace=False).astype(np.int64) + 1)


def check_score_before_update(events: list[dict]) -> tuple[bool, str]:
    """True when every absorbed / trained token index t >= 1 was scored by an earlier event.

    Token 0 is context only (never a target), so it may be absorbed freely. Events are in
    the order they happened on each rank; ranks are checked separately.
    """
    for rank in sorted({e.get("rank", 0) for e in events}):
        scored: list[tuple[int, int]] = []  # merged [lo, hi) of scored targets
        for i, e in enumerate(x for x in events if x.get("rank", 0) == rank):
            lo, hi = int(e["lo"]), int(e["hi"])
            if e["kind"] == "score":
                scored = _merge(scored, (lo, hi))
                continue
            need = (max(lo, 1), hi)
            if need[0] < need[1] and not any(a <= need[0] and need[1] <= b for a, b in scored):
                return False, (f"rank {rank} event {i}: {e['kind']} of tokens [{lo}, {hi}) in chunk "
                               f"{e['chunk']} before they were all scored (scored so far: {scored[:4]})")
    return True, f"{len(events)} events, every update after its tokens were scored"


def _merge(spans: list[tuple[int, int]], new: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    lo, hi = new
    for a, b in sorted(spans):
        if b < lo or a > hi:
            out.append((a, b))
        else:
            lo, hi = min(lo, a), max(hi, b)
    out.append((lo, hi))
    return sorted(out)


def evaluate_chunked(
    model: torch.nn.Module,
    val_tokens: torch.Tensor,
    luts,
    eval_cfg: EvalConfig,
    ttt_cfg: TTTConfig,
    device: torch.device | str,
    rank: int = 0,
    world_size: int = 1,
    on_scored: OnScored | None = None,
    after_score: AfterScore | None = None,
    on_progress: Callable[[dict], None] | None = None,
    collect_stats: bool = True,
    autocast: str = "auto",  # golf_core.accel modes; auto = bf16 on CUDA (a test forces bf16 on CPU)
    hints: dict | None = None,  # tilt: table tag -> (N,) hint per stream index; q = p(hint) recorded
) -> ChunkedResult:
    """Score-first chunked evaluation with optional TTT; every rank calls it."""
    device = torch.device(device)
    val_tokens = truncate_val(val_tokens, eval_cfg)
    total = val_tokens.numel() - 1
    windows = sliding_windows(total, eval_cfg.seq_len, eval_cfg.stride)
    win_chunk = window_chunks(windows, eval_cfg.chunk_tokens)
    n_chunks = num_chunks(total, eval_cfg.chunk_tokens)
    tokens = val_tokens.to(device=device, dtype=torch.int64)
    audit_pos = None
    if collect_stats and eval_cfg.audit and eval_cfg.audit_positions:
        audit_pos = torch.as_tensor(audit_positions(total, eval_cfg.audit_positions), device=device)

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    ttt = None
    if ttt_cfg.enabled:
        ttt = ChunkTTT(model, ttt_cfg, eval_cfg, luts, device, total, n_chunks, rank, world_size,
                       autocast=autocast)
    events: list[dict] = []
    parts: list[dict] = []
    # mix sums exist on every rank when a hook is given (even one that scores nothing), so
    # the all-reduce below is entered by all ranks or by none
    sums, mix_sums = BpbSums(), (BpbSums() if on_scored is not None else None)
    by_chunk = np.argsort(win_chunk, kind="stable")
    bounds = np.searchsorted(win_chunk[by_chunk], np.arange(n_chunks + 1))
    try:
        for c in range(n_chunks):
            chunk_windows = by_chunk[bounds[c]:bounds[c + 1]]  # ascending window index
            if chunk_windows.size == 0:
                continue  # #779: a chunk without windows is neither absorbed nor trained on
            mine = chunk_windows[rank_slice(chunk_windows.size, rank, world_size)]
            # --- 1. score (inference mode: nothing here can change the model) ---
            with torch.inference_mode():
                scored = score_windows(model, tokens, windows, mine, luts, eval_cfg, device,
                                       want_entropy=True, audit_pos=audit_pos, autocast=autocast,
                                       hints=hints).numpy()
            events.append({"kind": "score", "chunk": c, "rank": rank,
                           "lo": int(windows.target_lo[chunk_windows].min()),
                           "hi": int(windows.target_hi[chunk_windows].max())})
            scored["p_model"] = np.exp(-scored["nll"])
            scored["chunk"] = np.full(scored["pos"].size, c, dtype=np.int32)
            sums.add(scored["nll"], scored["bytes"])
            # --- 2. the fused mixer's lookups against tables of earlier chunks ---
            if on_scored is not None:
                extra = dict(on_scored(c, scored) or {})
                nll_mix = extra.pop("nll_mix", None)
                scored.update(extra)
                if nll_mix is not None:
                    mix_sums.add(nll_mix, scored["bytes"])
            lo, hi = chunk_token_range(c, total, eval_cfg.chunk_tokens)
            # --- 3. absorb the whole chunk (already scored) ---
            if after_score is not None:
                events.append({"kind": "absorb", "chunk": c, "lo": lo, "hi": hi, "rank": rank})
                after_score(c, (lo, hi))
            # --- 4. TTT on the chunk (already scored; never the last chunk) ---
            if ttt is not None:
                ttt.train_chunk(c, tokens, events)
            scored.pop("nll")
            if collect_stats:
                # compact dtypes now: rank 0 gathers ~50 bytes per token (62M tokens: ~3 GB)
                parts.append({k: (v.astype(DTYPES[k], copy=False) if k in DTYPES else v) for k, v in scored.items()})
            if on_progress is not None and rank == 0:
                on_progress({"event": "chunk", "chunk": c, "n_chunks": n_chunks,
                             "elapsed_s": time.perf_counter() - t0, "running_bpb": sums.val_bpb})
    finally:
        if ttt is not None:
            ttt.close()
        model.train(was_training)
    total_sums = sums.all_reduce(device)
    total_mix = mix_sums.all_reduce(device) if mix_sums is not None else None
    if total_mix is not None and total_mix.tokens == 0:
        total_mix = None  # the hook mixed nothing (it only observed)
    stats = None
    if collect_stats:
        stats = gather_stats(_concat_parts(parts), rank, world_size)
    all_events = _gather_events(events, rank, world_size)
    return ChunkedResult(
        sums=total_sums, mix_sums=total_mix, stats=stats, events=all_events, total_tokens=total,
        n_chunks=n_chunks, eval_time_s=time.perf_counter() - t0,
        ttt_params=ttt.n_params if ttt else 0, ttt_steps=ttt.steps if ttt else 0,
    )


def _concat_parts(parts: list[dict]) -> dict[str, np.ndarray]:
    """One rank's per-chunk dicts as one dict; audit rows (audit_*) only where present."""
    if not parts:
        return {}
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if not k.startswith("audit_")}
    for k in sorted({k for p in parts for k in p if k.startswith("audit_")}):
        rows = [p[k] for p in parts if k in p]
        out[k] = np.concatenate(rows)
    return out


def _gather_events(events: list[dict], rank: int, world_size: int) -> list[dict] | None:
    import torch.distributed as dist

    if world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
        return events
    out = [None] * world_size if rank == 0 else None
    dist.gather_object(events, out, dst=0)
    return [e for part in out for e in part] if rank == 0 else None
