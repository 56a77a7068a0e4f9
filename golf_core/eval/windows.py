"""Sliding-window geometry: which windows exist, which targets each scores, who scores them.

Index conventions (shared by every eval module):
- `total_tokens = len(val_tokens) - 1` = the number of targets. A window starting at `ws`
  feeds inputs x = val[ws : ws+wlen] and predicts targets y = val[ws+1 : ws+wlen+1].
- A target is named by `pos`, its index in the validation stream (1..total_tokens); token 0
  (the first BOS) is context only, never scored.
- Window `i` scores its local positions `score_from[i] : lens[i]`, i.e. targets
  pos in [starts[i] + score_from[i] + 1, starts[i] + lens[i] + 1).

Windows are PR #779's eval_val_sliding: starts every `stride` up to `last_full_start =
max(total - seq_len, 0)`, with `last_full_start` appended when the grid misses it; a window
is [ws, min(ws + seq_len, total)); it scores from `s = 0` (first window) or
`max(wlen - stride, 0)`. One correction: #779 lets the appended last window score its last
`stride` positions even where the previous window already scored some of them (up to
stride-1 targets counted twice when (total - seq_len) % stride != 0). Here that window scores
only the targets not yet scored, which is exactly PR #809's `_build_sliding_segments`: every
target is scored exactly once (ratio_scored == 1). `stride == seq_len` with `eval.tail=drop`
(sliding.truncate_val keeps whole seq_len blocks only) is upstream's eval_val exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(total_tokens: int, seq_len: int, stride: int) -> None:
    if total_tokens < 1:
        raise ValueError(f"need at least 2 validation tokens (got {total_tokens + 1})")
    if seq_len < 1 or stride < 1 or stride > seq_len:
        raise ValueError(f"need 1 <= stride <= seq_len (got stride {stride}, seq_len {seq_len})")


def window_starts(total_tokens: int, seq_len: int, stride: int) -> np.ndarray:
    """Window start offsets (int64) for `total_tokens` targets, as #779 builds them."""
    _check(total_tokens, seq_len, stride)
    last_full_start = max(total_tokens - seq_len, 0)
    starts = np.arange(0, last_full_start + 1, stride, dtype=np.int64)
    if starts[-1] != last_full_start:
        starts = np.append(starts, np.int64(last_full_start))
    return starts


@dataclass(frozen=True)
class Windows:
    """All windows of one evaluation; arrays are aligned, one entry per window, int64."""

    starts: np.ndarray  # ws
    lens: np.ndarray  # wlen = min(ws + seq_len, total) - ws
    score_from: np.ndarray  # first scored local position s
    seq_len: int
    stride: int
    total_tokens: int

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def target_lo(self) -> np.ndarray:
        """First scored target pos of each window."""
        return self.starts + self.score_from + 1

    @property
    def target_hi(self) -> np.ndarray:
        """One past the last scored target pos of each window."""
        return self.starts + self.lens + 1

    @property
    def n_scored(self) -> np.ndarray:
        return self.lens - self.score_from


def sliding_windows(total_tokens: int, seq_len: int, stride: int) -> Windows:
    """Windows with their scored regions; every target 1..total_tokens scored exactly once."""
    starts = window_starts(total_tokens, seq_len, stride)
    lens = np.minimum(starts + seq_len, total_tokens) - starts
    score_from = np.where(starts == 0, 0, np.maximum(lens - stride, 0)).astype(np.int64)
    if len(starts) > 1:
        # The appended tail window: skip what the window before it already scored (#809's fix).
        prev_end = starts[-2] + lens[-2]
        score_from[-1] = max(int(score_from[-1]), int(prev_end - starts[-1]))
    return Windows(starts, lens, score_from, seq_len, stride, total_tokens)


def rank_slice(n: int, rank: int, world_size: int) -> slice:
    """Rank `rank`'s contiguous share of n items (#779: windows[n*r//W : n*(r+1)//W])."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    return slice((n * rank) // world_size, (n * (rank + 1)) // world_size)


def num_chunks(total_tokens: int, chunk_tokens: int) -> int:
    return (total_tokens + chunk_tokens - 1) // chunk_tokens


def window_chunks(windows: Windows, chunk_tokens: int) -> np.ndarray:
    """Chunk index of each window, by where its scored region starts (#779 / #809).

    The scored region's first input index is ws + s, so chunk c holds the windows scoring
    targets pos in (c*C, (c+1)*C] at their start.
    """
    n = num_chunks(windows.total_tokens, chunk_tokens)
    return np.minimum((windows.starts + windows.score_from) // chunk_tokens, n - 1)


def chunk_token_range(chunk: int, total_tokens: int, chunk_tokens: int) -> tuple[int, int]:
    """Stream token indices [lo, hi) that chunk `chunk` hands to the caches/TTT once scored.

    #779 absorbs val[c*C : min((c+1)*C, total)]: every index in it is either token 0 (context
    only) or a target already scored by chunk c or earlier (its input index < (c+1)*C).
    """
    lo = chunk * chunk_tokens
    return lo, min((chunk + 1) * chunk_tokens, total_tokens)


def scored_positions(windows: Windows, idx: np.ndarray | None = None) -> np.ndarray:
    """Concatenated target positions scored by windows `idx` (all windows by default)."""
    sel = np.arange(len(windows)) if idx is None else np.asarray(idx)
    if len(sel) == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = windows.target_lo[sel], windows.target_hi[sel]
    counts = hi - lo
    offs = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return np.arange(int(counts.sum()), dtype=np.int64) + offs
