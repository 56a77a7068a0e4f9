"""Straightforward re-implementations used as references by the n-gram / mix tests.

`ref_779_window_scores` follows PR #779's eval_val_sliding_ttt + BackoffNgramMixer semantics
window by window, one position at a time, with Python integers masked to 64 bits standing in
for numpy uint64: windows are assigned to chunks by where their scored region starts; every
window of a chunk is scored against tables holding the earlier chunks; then
val[c*C : min((c+1)*C, total)] is counted (n-grams inside that slice only).
"""
from __future__ import annotations

import math

import numpy as np

PRIMES = (36313, 27191, 51647, 81929, 131071, 174763, 233017)
M64 = (1 << 64) - 1


def ctx_hash(tokens, primes=PRIMES) -> int:
    """XOR of token * prime[k] (k = 0 on the oldest) in uint64 arithmetic."""
    h = 0
    for k, t in enumerate(tokens):
        h ^= (int(t) * primes[k]) & M64
    return h


def ref_779_window_scores(val, seq_len, stride, chunk_tokens, p_model, entropy, V, buckets,
                          orders=(2, 3, 4, 5, 6, 7), min_count=2, warmup=100):
    """{target pos: (order, p_ngram, nll)} under #779's sliding-window, score-first schedule.

    p_model / entropy are indexed by target pos (a stand-in model that is a function of the
    position). Order 0 = warm-up (model alone).
    """
    val = [int(v) for v in val]
    total = len(val) - 1
    mask = buckets - 1
    last = max(total - seq_len, 0)
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    nch = (total + chunk_tokens - 1) // chunk_tokens
    chunk_windows = [[] for _ in range(nch)]
    for ws in starts:
        wlen = min(ws + seq_len, total) - ws
        s = 0 if ws == 0 else max(wlen - stride, 0)
        chunk_windows[min((ws + s) // chunk_tokens, nch - 1)].append(ws)
    ctx_tab = {o: np.zeros(buckets, dtype=np.uint32) for o in orders}
    full_tab = {o: np.zeros(buckets, dtype=np.uint32) for o in orders}
    absorbed = 0
    out = {}
    for ci in range(nch):
        if not chunk_windows[ci]:
            continue
        for ws in chunk_windows[ci]:
            wlen = min(ws + seq_len, total) - ws
            s = 0 if ws == 0 else max(wlen - stride, 0)
            x = val[ws:ws + wlen]
            for j in range(s, wlen):
                pos = ws + j + 1
                y = val[pos]
                pm, H = float(p_model[pos]), float(entropy[pos])
                if absorbed < warmup:
                    out.setdefault(pos, []).append((0, 1.0 / V, -math.log(pm)))
                    continue
                order, p = 1, 1.0 / V
                for o in sorted(orders, reverse=True):
                    cw = o - 1
                    if j < cw:  # #779: valid[:, :cw] = False
                        continue
                    h = ctx_hash(x[j - cw + 1:j + 1])
                    c = float(ctx_tab[o][h & mask])
                    if c >= min_count:
                        f = float(full_tab[o][(h ^ ((y * PRIMES[cw]) & M64)) & mask])
                        order, p = o, min(max(min(f, c) / max(c, 1.0), 0.0), 1.0)
                        break
                a = 0.05 + 0.55 / (1.0 + math.exp(-2.0 * (H - 4.0)))
                mixed = (1 - a) * pm + a * p
                out.setdefault(pos, []).append((order, p, -math.log(max(mixed, 1e-12))))
        lo, hi = ci * chunk_tokens, min((ci + 1) * chunk_tokens, total)
        t = val[lo:hi]
        for o in orders:
            cw = o - 1
            for i in range(len(t) - o + 1):
                h = ctx_hash(t[i:i + cw])
                ctx_tab[o][h & mask] += 1
                full_tab[o][(h ^ ((t[i + cw] * PRIMES[cw]) & M64)) & mask] += 1
        absorbed += len(t)
    return out


def markov_stream(n, V, succ=3, seed=0, order=2):
    """A token stream from a sparse random order-`order` chain: few successors per context,
    so n-grams repeat and every backoff order gets hits."""
    rng = np.random.default_rng(seed)
    table = {}
    out = list(rng.integers(0, V, size=order))
    for _ in range(n - order):
        key = tuple(out[-order:])
        if key not in table:
            table[key] = rng.integers(0, V, size=succ)
        out.append(int(rng.choice(table[key])))
    return np.array(out, dtype=np.int64)
