"""Window geometry: every target scored exactly once, #779's windows, chunk and rank splits."""
from __future__ import annotations

import numpy as np
import pytest

from golf_core.eval.windows import (
    chunk_token_range, num_chunks, rank_slice, scored_positions, sliding_windows, window_chunks,
    window_starts,
)

CASES = [  # (total targets, seq_len, stride)
    (100, 32, 10),  # ragged tail: (100 - 32) % 10 != 0
    (100, 32, 32),  # stride == seq_len, ragged tail
    (96, 32, 32),  # stride == seq_len, exact
    (97, 32, 8),
    (10, 32, 4),  # shorter than one window
    (1, 8, 8),
    (1000, 64, 1),
    (2049, 2048, 64),
]


@pytest.mark.parametrize("total,seq_len,stride", CASES)
def test_every_target_scored_exactly_once(total, seq_len, stride):
    w = sliding_windows(total, seq_len, stride)
    pos = scored_positions(w)
    counts = np.bincount(pos, minlength=total + 1)
    assert counts[0] == 0, "token 0 is context only"
    assert (counts[1:] == 1).all(), f"targets scored != once: {np.nonzero(counts[1:] != 1)[0][:5] + 1}"
    # every window lies inside the stream and scores a non-empty suffix of itself
    assert (w.starts >= 0).all() and (w.starts + w.lens <= total).all()
    assert (w.lens <= seq_len).all() and (w.n_scored >= 1).all()
    assert (w.n_scored[1:] <= stride).all()


@pytest.mark.parametrize("total,seq_len,stride", CASES)
def test_windows_are_779s(total, seq_len, stride):
    """Same starts and, except for the tail fix, the same scored offsets as #779's loop."""
    ref_starts = list(range(0, max(total - seq_len, 0) + 1, stride))
    if ref_starts[-1] != max(total - seq_len, 0):
        ref_starts.append(max(total - seq_len, 0))
    w = sliding_windows(total, seq_len, stride)
    assert window_starts(total, seq_len, stride).tolist() == ref_starts == w.starts.tolist()
    for i, ws in enumerate(ref_starts):
        wlen = min(ws + seq_len, total) - ws
        s = 0 if ws == 0 else max(wlen - stride, 0)
        assert w.lens[i] == wlen
        if i < len(ref_starts) - 1 or (total - seq_len) % stride == 0 or total <= seq_len:
            assert w.score_from[i] == s
        else:  # the appended tail window skips what was scored already (#809's segments)
            assert w.score_from[i] >= s


def test_stride_equals_seq_len_is_non_overlapping():
    w = sliding_windows(4 * 32, 32, 32)
    assert w.starts.tolist() == [0, 32, 64, 96]
    assert w.score_from.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_rank_slices_partition(world):
    for n in (0, 1, 7, 100):
        parts = [np.arange(n)[rank_slice(n, r, world)] for r in range(world)]
        assert np.concatenate(parts).tolist() == list(range(n))
    with pytest.raises(ValueError):
        rank_slice(5, 2, 2)


@pytest.mark.parametrize("total,seq_len,stride,chunk", [(1000, 64, 16, 100), (1000, 64, 64, 256), (999, 32, 5, 97)])
def test_chunks_by_scored_start(total, seq_len, stride, chunk):
    w = sliding_windows(total, seq_len, stride)
    c = window_chunks(w, chunk)
    assert (np.diff(c) >= 0).all(), "chunks follow window order"
    assert c.max() == num_chunks(total, chunk) - 1 or c.max() < num_chunks(total, chunk)
    # a window's chunk is where its scored region starts (input index ws + s)
    assert ((w.starts + w.score_from) // chunk == c).all()
    # everything a chunk hands to the caches was scored by that chunk or an earlier one
    for k in np.unique(c):
        lo, hi = chunk_token_range(int(k), total, chunk)
        done = scored_positions(w, np.nonzero(c <= k)[0])
        assert np.isin(np.arange(max(lo, 1), hi), done).all()


def test_bad_geometry_is_an_error():
    with pytest.raises(ValueError, match="stride"):
        window_starts(100, 16, 32)
    with pytest.raises(ValueError, match="validation tokens"):
        window_starts(0, 16, 16)
