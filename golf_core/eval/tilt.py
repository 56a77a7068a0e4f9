"""Token-only n-gram tilt (PR #1145, precedent #1514, as PR #2135 runs it): hints and scores.

The hint of the target at stream index i comes from the strict prefix alone: the context is the
previous `order - 1` tokens; an online table keeps, per context, its total count and its top
token (the next token whose pair count first exceeded the current top, strictly). The hint is
that top token, p_top = top_count / total; a context seen for the first time gives no hint. The
table absorbs x_i only after position i's hint is read (C3), one position at a time.

Where p_top >= threshold the model's distribution is tilted toward the hint h with boost b:
    p'(a) = p(a) e^{b [a = h]} / (1 + q (e^b - 1)),  q = p_model(h)
    nll'(y) = nll(y) - b [y = h] + log1p(q (e^b - 1))
and sum_a p'(a) = 1 exactly (C2). The hint never reads x_i, so p' is fixed before x_i (C1).

Equality with PR #2135 (`online_ngram_state.c`, token channel). Its table is keyed by 64-bit
hashes, not by the tokens: context key = XOR_j tok[j] * K[j] over the context (j = 0 the
oldest), pair key = ctx_key * 1000003 XOR tok * K[ctx_len % 32]; two contexts (or pairs) with one
key share one entry. Those keys live below 2^38 for the contexts (tokens < 2^16, K < 2^22), so
key collisions between real contexts are common on 48M tokens, and golf reproduces them by
grouping on the same keys. Its open-addressing table of 2^table_bits slots behaves as an exact
map from key to entry until a table fills, when it fails (rc -2/-3); golf raises TiltError at
the same condition. p_top is the float32 quotient, compared with float32(threshold), as there.

First positions: the reference seeds its ring with the first target token, so its first full
context holds that token twice. golf uses the real stream: the target at stream index i has a
hint only when i >= order - 1 real tokens precede it (val[0] is context, never a target); no
seeding. Fed the stream [targets[0]] + targets, golf gives the reference's output at every
position (tests/golf_core/eval/test_tilt_reference.py).

Not built: the file's within-word and word-start channels. Their gates read whether the
realized token starts a word (PR #1967 ruled that they read the target); #2135 runs with
them off, and so does golf.

The pass is vectorized (no per-token loop): positions are sorted by (context key, position)
with one 64-bit sort of packed keys, pair counts come from a second sort by (token, that rank),
and the top token is a segmented running maximum with the strict-exceeds tie rule. The pass is
memory-bound, so it moves few bytes: the context hash runs a cache-sized chunk at a time (packed
with the position in the same loop), tokens are gathered as uint16, positions, run ids and counts
are int32, and contexts seen once are split off by boolean masks before any per-pair work.
At low orders nearly every context repeats, so the per-pair work is most of the pass (issue 18's
order-4 gap): the pair sort packs (token, rank) into uint32 where the token ids and the count of
repeated positions fit (a 32-bit sort is ~2.5x a 64-bit one), a run's pair key is built from its
context's key (one per repeated context) and the pair-sorted token, and shared pair keys are
looked for by sorting the keys' low 32 bits first. Random gathers and scatters index with intp.
An exact packing of the context tokens in place of the hash (order 4) would not be equal to the
reference: its context keys collide (the 2^30 contexts of 3 tokens from a 1024-token vocabulary
hash to fewer than 2^26 key values).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from golf_core.errors import UserError

# PR #2135's rolling hash multipliers (online_ngram_state.c ROLLING_COEFFS); the same constants
# are needed for the same key collisions.
HASH_K = np.array([
    36313, 27191, 51647, 81929, 131071, 196613, 262147, 393241, 524309, 655373, 786433, 917521,
    1048583, 1179653, 1310729, 1441801, 1572869, 1703941, 1835017, 1966087, 2097169, 2228243,
    2359319, 2490389, 2621471, 2752549, 2883617, 3014687, 3145757, 3276833, 3407903, 3538973,
], dtype=np.uint64)
PAIR_MIX = np.uint64(1000003)
MAX_ORDER = 33  # a context of order - 1 <= 32 tokens: one multiplier per context slot
POS_BITS = 26  # packed sort keys: 38-bit context key + 26-bit position (streams < 2^26 tokens)
KEY_BITS = 38
MAX_TABLE_BITS = 30


class TiltError(UserError):
    """Bad input to the tilt pass (one line naming the problem)."""


def auto_table_bits(n_tokens: int) -> int:
    """#2135's table size for n tokens: 2^ceil(log2(n / 0.55)), clamped to [12, 28]."""
    if n_tokens <= 0:
        return 16
    target = max(int(n_tokens / 0.55), 1)
    return min(max(int(math.ceil(math.log2(target))), 12), 28)


@dataclass(frozen=True)
class Hints:
    """Per stream index i (the target val[i]): hint token (-1 = none) and p_top (0 where none)."""

    order: int
    table_bits: int
    hint: np.ndarray  # (M,) int32
    p_top: np.ndarray  # (M,) float32
    contexts: int  # distinct context keys absorbed
    pairs: int  # distinct pair keys absorbed

    @property
    def tag(self) -> str:
        return table_tag(self.order, self.table_bits)


def table_tag(order: int, table_bits: int) -> str:
    """Name of one hint table in token stats keys: o16_b27."""
    return f"o{int(order)}_b{int(table_bits)}"


def context_keys(stream: np.ndarray, ctx_len: int, chunk: int = 1 << 15) -> np.ndarray:
    """(M - ctx_len,) uint64: the context key of stream index i = ctx_len .. M-1."""
    return _packed_context_keys(stream, ctx_len, 0, chunk)


def _packed_context_keys(stream: np.ndarray, ctx_len: int, shift: int, chunk: int = 1 << 15) -> np.ndarray:
    """(key << shift) | k for k = 0 .. M - ctx_len - 1 (shift 0: the key alone).

    Computed a cache-sized chunk at a time: all ctx_len multiply-xor rounds run on a chunk that
    stays in L2, instead of ctx_len passes over the whole uint64 array (the pass is memory-bound).
    """
    m = stream.shape[0] - ctx_len
    out = np.empty(max(m, 0), dtype=np.uint64)
    tmp = np.empty(chunk, dtype=np.uint64)
    u_shift = np.uint64(shift)
    for a in range(0, m, chunk):
        b = min(a + chunk, m)
        w = b - a
        k = out[a:b]
        t = tmp[:w]
        # j = 0 multiplies the oldest token, as the reference's ring walk
        if ctx_len:
            np.multiply(stream[a:b], HASH_K[0], out=k, casting="unsafe")
        else:
            k.fill(0)
        for j in range(1, ctx_len):
            np.multiply(stream[a + j:b + j], HASH_K[j], out=t, casting="unsafe")
            np.bitwise_xor(k, t, out=k)
        if shift:
            k <<= u_shift
            k |= np.arange(a, b, dtype=np.uint64)
    return out


def hint_pass(stream, order: int, table_bits: int | None = None) -> Hints:
    """Hints for every target of `stream` (tokens < 2^16), single left-to-right semantics."""
    s = np.ascontiguousarray(np.asarray(stream))
    if s.ndim != 1:
        raise TiltError(f"tilt: the token stream must be 1-D (got shape {s.shape})")
    if not 2 <= order <= MAX_ORDER:
        raise TiltError(f"mixer.tilt_order must lie in 2..{MAX_ORDER} (got {order})")
    M = int(s.shape[0])
    if M >= 1 << POS_BITS:
        raise TiltError(f"tilt: stream of {M} tokens; at most {(1 << POS_BITS) - 1}")
    if M and (int(s.min()) < 0 or int(s.max()) >= 1 << 16):
        raise TiltError("tilt: token ids must lie in 0..65535 (the reference's uint16 tables)")
    bits = auto_table_bits(max(M - 1, 0)) if table_bits is None else int(table_bits)
    if not 1 <= bits <= MAX_TABLE_BITS:
        raise TiltError(f"mixer.tilt_table_bits must lie in 1..{MAX_TABLE_BITS} (got {bits})")
    L = order - 1
    hint = np.full(M, -1, dtype=np.int32)
    p_top = np.zeros(M, dtype=np.float32)
    n = M - L  # scored-with-context positions: stream index i = L + k
    if n <= 0:
        return Hints(order, bits, hint, p_top, 0, 0)
    # tokens as uint16 (checked above): the random gathers below touch 2 bytes, not 8
    s16 = s.astype(np.uint16)
    tok_bits = max(int(s16.max()).bit_length(), 1)
    tokL = s16[L:]  # tokL[k] = target of scored position k
    u26 = np.uint64(POS_BITS)
    pmask = np.uint32((1 << POS_BITS) - 1)

    # 1. sort by (context key, position): one packed 64-bit sort (np.sort, ~10x an argsort)
    packed = _packed_context_keys(s16, L, POS_BITS)
    packed.sort()
    # low 26 bits of each packed word = position: read the low uint32 half only (little-endian)
    perm = _low_bits(packed, pmask)  # int32, k-th in context order -> position
    packed >>= u26
    key_sorted = packed  # context key per k
    new_ctx = np.empty(n + 1, dtype=bool)
    new_ctx[0] = True
    new_ctx[n] = True
    np.not_equal(key_sorted[1:], key_sorted[:-1], out=new_ctx[1:n])
    n_ctx = int(np.count_nonzero(new_ctx[:n]))
    # a context seen once never gives a hint: the work below is over repeated contexts only.
    # k is a singleton when it starts a group and k + 1 starts the next
    single = new_ctx[:n] & new_ctx[1:]
    # R: positions in repeated contexts (whole groups, in order); S: the singletons. Boolean
    # masks, not index arrays: one compress pass each, no int64 index arrays in memory
    R = ~single
    S = single
    new_ctx = new_ctx[:n]
    posR = perm[R]
    m = int(posR.size)
    tokR = tokL[_ix(posR)]
    newR = new_ctx[R]
    cidR = np.cumsum(newR, dtype=np.int32)  # context id of each R entry (< 2^26)
    cidR -= 1
    # each repeated context's key, once (the run keys below gather from this short array)
    new_ctx &= R
    ckR = key_sorted[new_ctx]
    pos_S = perm[S]
    pk_S = key_sorted[S]
    pk_S *= PAIR_MIX
    tmpS = tokL[_ix(pos_S)].astype(np.uint64)
    tmpS *= HASH_K[L % 32]
    pk_S ^= tmpS
    del key_sorted, packed, perm, new_ctx, R, S, single, tmpS

    # 2. pair counts over (context, token) runs: sort (token, rank in R); rank orders (context, pos).
    # Packed in as few bits as the token ids and m need: uint32 where they fit (a 32-bit sort is
    # ~2.5x a 64-bit one here; at order 4 on 2M tokens nearly every position is in R)
    rb = max(int(m - 1).bit_length(), 1) if m else 1
    wide = np.uint32 if tok_bits + rb <= 32 else np.uint64
    packed = tokR.astype(wide)
    packed <<= wide(rb)
    packed |= np.arange(m, dtype=wide)
    packed.sort()
    j_of = _low_bits(packed, np.uint32((1 << rb) - 1))
    packed >>= wide(rb)
    start = np.ones(m, dtype=bool)
    c_of = cidR[_ix(j_of)]
    if m > 1:
        start[1:] = (packed[1:] != packed[:-1]) | (c_of[1:] != c_of[:-1])
    run = np.cumsum(start, dtype=np.int32)
    run -= 1
    run_start = np.flatnonzero(start)
    del start
    # each run's context and token, read in pair order (increasing indices: no random access)
    tok_run = packed[run_start].astype(np.uint64)
    c_run = c_of[run_start]
    del packed, c_of
    # running pair count, inclusive (int32: counts and run ids stay below 2^26)
    cnt = np.arange(1, m + 1, dtype=np.int32)
    cnt -= run_start.astype(np.int32)[_ix(run)]
    countR = np.empty(m, dtype=np.int32)
    countR[_ix(j_of)] = cnt
    del cnt
    del run_start
    # the reference counts by pair KEY: (context, token) runs sharing a key share one counter
    pk_run = ckR[_ix(c_run)]
    pk_run *= PAIR_MIX
    tok_run *= HASH_K[L % 32]
    pk_run ^= tok_run
    del tok_run, c_run, ckR
    n_pairs = _merge_pair_collisions(pk_run, j_of, run, posR, countR, pk_S, pos_S)
    del pk_run, j_of, run, pk_S, pos_S

    cap = 1 << bits
    if n_ctx > cap or n_pairs > cap:
        need = math.ceil(math.log2(max(n_ctx, n_pairs)))
        raise TiltError(f"mixer.tilt_table_bits={bits}: {max(n_ctx, n_pairs)} distinct keys do not fit "
                        f"2^{bits} slots (the reference fails here too); use >= {need}")
    if m == 0:
        return Hints(order, bits, hint, p_top, n_ctx, n_pairs)

    # 3. per repeated context, the state before absorbing each position (R order)
    gsR = np.flatnonzero(newR).astype(np.int32)
    total = np.arange(m, dtype=np.int32)
    total -= gsR[_ix(cidR)]  # entries before this one in its context (0 where newR)
    runmax = cidR.astype(np.int64)
    runmax <<= POS_BITS
    runmax |= countR
    np.maximum.accumulate(runmax, out=runmax)
    runmax &= (1 << POS_BITS) - 1
    prev_max = np.empty(m, dtype=np.int32)
    prev_max[0] = 0
    prev_max[1:] = runmax[:-1]
    prev_max[newR] = 0
    del runmax, cidR
    record = newR | (countR > prev_max)  # the top changes only on a strict exceed
    # the top token after entry k is the token of the last record at or before k: the
    # (number of records up to k)-th record's token (a cumsum, not a max-scan of indices)
    rec_tok = tokR[record]  # uint16: cast to int32 by the gather below
    last_rec = np.cumsum(record, dtype=np.int32)
    last_rec -= 1  # record[0] holds (a new context), so >= 0
    del record, countR
    top_tok = np.empty(m, dtype=np.int32)
    top_tok[0] = -1
    top_tok[1:] = rec_tok[_ix(last_rec[:-1])]
    del rec_tok, last_rec
    top_tok[newR] = -1
    # prev_max is 0 where the context is new (no hint): 0 / 1 keeps p_top 0 there, no 0/0
    np.maximum(total, 1, out=total)
    pt = prev_max.astype(np.float32)
    pt /= total.astype(np.float32)
    posR = _ix(posR)
    hint[L:][posR] = top_tok
    p_top[L:][posR] = pt
    return Hints(order, bits, hint, p_top, n_ctx, n_pairs)


def _ix(idx: np.ndarray) -> np.ndarray:
    """An index array as intp for a random gather or scatter. The pass keeps its indices int32
    (half the bytes), but numpy's fancy indexing with a non-intp index takes a slow path
    (measured here: a random 1.4M-element gather 2-10x slower than the cast plus an intp one)."""
    return idx.astype(np.intp)


def _low_bits(packed: np.ndarray, mask: np.uint32) -> np.ndarray:
    """int32 (packed & mask) for a uint64 (or uint32) array and a mask below 2^31, reading only
    the low 32-bit half of each word (one pass, half the bytes of a 64-bit mask-and-cast)."""
    low = packed if packed.dtype == np.uint32 else packed.view(np.uint32)[0 if np.little_endian else 1::2]
    out = np.empty(packed.shape[0], dtype=np.int32)
    np.bitwise_and(low, mask, out=out, casting="unsafe")
    return out


def _shared_keys(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """(the keys occurring more than once, sorted unique; how many entries repeat an earlier one).

    A 32-bit sort of the low halves first (~2.5x faster than sorting the 64-bit keys): a key
    whose low half no other key has is unique. The others (low-half coincidences: a few hundred
    among 1.4M keys) all pass a 2^16-entry filter on their low 16 bits, with under 1% of the
    others, and those are compared in full (np.isin against such spread values sorts: ~100 ms)."""
    low = keys.astype(np.uint32)
    srt = np.sort(low)
    lows = srt[1:][srt[1:] == srt[:-1]]
    del srt
    if not lows.size:
        return keys[:0], 0
    filt = np.zeros(1 << 16, dtype=bool)
    filt[lows.astype(np.uint16).astype(np.intp)] = True  # a cast keeps the low 16 bits
    cand = keys[np.take(filt, low.astype(np.uint16))]
    cand.sort()
    dup = cand[1:] == cand[:-1]
    return np.unique(cand[1:][dup]), int(dup.sum())


def _merge_pair_collisions(pk_run, j_of, run, posR, countR, pk_S, pos_S) -> int:
    """Where distinct (context, token) runs share a pair key, recount those positions as one
    counter in stream order (rare; exact). Runs of repeated contexts: pk_run; R entries in pair
    order j_of with their run ids run; positions posR and counts countR (updated, R order);
    singleton positions: pk_S, pos_S
    (they count toward a shared key, their own count is never read). Returns distinct keys."""
    keys = np.concatenate([pk_run, pk_S])
    shared, repeats = _shared_keys(keys)  # the few keys two runs share
    del keys
    n_keys = int(pk_run.size + pk_S.size) - repeats
    if not shared.size:
        return n_keys

    def is_shared(keys):
        j = np.minimum(np.searchsorted(shared, keys), shared.size - 1)
        return shared[j] == keys

    # R entries (in pair-sorted order j_of, run ids run) whose run's key is shared; only built
    # here, on the rare path, so the common one never scatters run ids back to R order
    in_shared = is_shared(pk_run)[run]
    selR = j_of[in_shared]
    runR_sel = run[in_shared]
    selS = np.flatnonzero(is_shared(pk_S))
    key = np.concatenate([pk_run[runR_sel], pk_S[selS]])
    pos = np.concatenate([posR[selR], pos_S[selS]])
    o = np.lexsort((pos, key))
    ks = key[o]
    first = np.ones(ks.size, dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    grp_start = np.flatnonzero(first)
    cnt = np.empty(ks.size, dtype=np.int64)
    cnt[o] = np.arange(ks.size) - grp_start[np.cumsum(first) - 1] + 1
    countR[selR] = cnt[: selR.size]
    return n_keys


def gate(p_top: np.ndarray, threshold: float) -> np.ndarray:
    """Positions tilted: a hint whose p_top >= threshold, compared in float32 as #2135."""
    return np.asarray(p_top, dtype=np.float32) >= np.float32(threshold)


def tilt_nll(nll, q, hint, p_top, target, threshold: float, boost: float) -> np.ndarray:
    """Per-token nll' (nats, float64): nll - b [y = h] + log1p(q (e^b - 1)) where gated."""
    nll = np.asarray(nll, dtype=np.float64)
    g = gate(p_top, threshold) & (np.asarray(hint) >= 0)
    hit = g & (np.asarray(hint) == np.asarray(target))
    out = nll.copy()
    out[g] += np.log1p(np.asarray(q, dtype=np.float64)[g] * math.expm1(boost))
    out[hit] -= boost
    return out


def tilt_row(p_row, hint: int, boost: float) -> np.ndarray:
    """The full tilted distribution p'(.) from the model's (V,) row (the audit's sum check)."""
    p = np.asarray(p_row, dtype=np.float64)
    w = p.copy()
    w[int(hint)] *= math.exp(boost)
    return w / (1.0 + p[int(hint)] * math.expm1(boost))


@dataclass(frozen=True)
class TiltSums:
    """Per config: sum of nll' (nats), positions tilted and of those the hits."""

    nll: np.ndarray
    gated: np.ndarray
    hits: np.ndarray


def tilt_grid(nll, q, hint, p_top, target, thresholds, boosts) -> TiltSums:
    """sum nll' for each (thresholds[i], boosts[i]) over one hint table, by prefix sums.

    Positions with a hint are sorted by p_top descending once; a threshold's gated set is a
    prefix of that order, so per distinct boost one cumulative sum of log1p(q (e^b - 1)) serves
    every threshold: 1,000 configs cost a few passes over the hinted positions, not 1,000.
    """
    nll = np.asarray(nll, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    boosts = np.asarray(boosts, dtype=np.float64)
    base = float(nll.sum())
    hint = np.asarray(hint)
    has = np.flatnonzero(hint >= 0)
    pt = np.asarray(p_top, dtype=np.float32)[has]
    # p_top descending by one packed sort: a non-negative float32's bits order as its value
    key = (np.uint64(0xFFFFFFFF) - pt.view(np.uint32).astype(np.uint64)) << np.uint64(32)
    key |= np.arange(has.size, dtype=np.uint64)
    key.sort()
    order = (key & np.uint64(0xFFFFFFFF)).astype(np.int64)
    del key
    neg = -pt[order]  # ascending
    # gated count per threshold: p_top >= float32(threshold)
    n_gated = np.searchsorted(neg, -thresholds.astype(np.float32), side="right")
    top = int(n_gated.max()) if n_gated.size else 0  # positions below every threshold never count
    idx = has[order[:top]]
    qd = np.asarray(q, dtype=np.float64)[idx]
    hit = (hint[idx] == np.asarray(target)[idx])
    cum_hit = np.concatenate([[0], np.cumsum(hit, dtype=np.int64)])
    out = np.empty(len(thresholds), dtype=np.float64)
    for b in np.unique(boosts):
        sel = np.nonzero(boosts == b)[0]
        cum = np.concatenate([[0.0], np.cumsum(np.log1p(qd * math.expm1(b)))])
        out[sel] = base + cum[n_gated[sel]] - b * cum_hit[n_gated[sel]]
    return TiltSums(out, n_gated.astype(np.int64), cum_hit[n_gated])
