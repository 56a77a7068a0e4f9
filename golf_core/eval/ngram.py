"""Hashed n-gram count tables (PR #779's BackoffNgramMixer) and the score-first n-gram pass.

Tables: for each order n, a context-count and a full-count table of `buckets` int32 counters.
The context hash of order n at target position p XORs `val[p-(n-1)+k] * prime[k]` over
k = 0..n-2 (prime[0] on the oldest token); `ctx_key = hash & mask`,
`full_key = (hash ^ y * prime[n-1]) & mask` (#779). #779 computes this in numpy uint64; here it
is torch int64. The two agree bit for bit: int64 multiply and XOR wrap exactly like uint64
mod 2^64 (two's complement), and `& mask` with mask < 2^63 keeps only low bits, so the sign
never shows (tests/golf_core/eval/test_ngram.py checks it against numpy uint64).

Order selection is target-independent: backing off from the top order, the first order whose
context count is >= min_count is selected; none → order 1 (p = 1/V); tables holding fewer
than warmup_tokens tokens → order 0 (the model alone, alpha = 0). An order n is only tried
where the scorer sees at least n tokens before the target (`n_ctx >= n`): #779 masks window
positions j < n-1 (`valid[:, :cw] = False`), one token more than the context needs;
reproduced.

Two estimates from the selected order:
- hashed_target (#779, non-compliant): p(y) = min(full(y), ctx) / max(ctx, 1), clipped to
  [0, 1]. The key contains y, so summed over the vocabulary this is far above 1. A miss
  (order 1) gets 1/V with V the model's vocabulary, or with mixer.miss_vocab=max_token
  1/(max token id of the validation stream + 1), as #779 sizes its mixer.
- normalized (C2): q(v) = full(v) / sum_u full(u) over all V candidates (uniform where the
  sum is 0): a distribution over the vocabulary fixed before y is seen.

The normalizer sum_u full(u) depends on the context only through its masked key:
`(h ^ u * p) & mask == (h & mask) ^ ((u * p) & mask)` (AND distributes over XOR), so the V
candidate keys of a context are `ctx_key ^ c_u` with the constant offsets c_u = u * p & mask.
`lookup_normalized` therefore sums each distinct (order, ctx_key) of a lookup once (repeated
contexts are common: a context is selected only once it was seen min_count times) and gathers
full(y) alone per position; int32 keys, no float until the final division. The result is
bit-identical to gathering all V candidates per position (the former code, kept as the
reference in tests/golf_core/eval/test_ngram_fast.py).

`ngram_pass` replays the score-first schedule over scored targets in stats order: chunk c is
looked up against tables holding chunks < c, then val[c*C : min((c+1)*C, total)] is absorbed
(#779 `mixer.update(val_tokens[chunk_start:chunk_end])`; n-grams crossing a chunk boundary
are never counted, and a chunk with no scored target is not absorbed, as in #779's
`if not windows: continue`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.windows import chunk_token_range, num_chunks
from golf_core.errors import UserError

NO_CTX = 1 << 30  # n_ctx for "every order's context is available"


class NgramError(UserError):
    """Bad input to the n-gram pass (one line naming the problem)."""


def context_matrix(val: torch.Tensor, pos: torch.Tensor, width: int) -> torch.Tensor:
    """(N, width) tokens before each target, newest last: out[i, k] = val[pos[i] - width + k].

    Indices below 0 read val[0]; callers mask those orders out through n_ctx.
    """
    if width == 0:
        return torch.zeros((pos.numel(), 0), dtype=torch.int64, device=val.device)
    offs = torch.arange(-width, 0, device=val.device, dtype=torch.int64)
    idx = (pos.to(torch.int64)[:, None] + offs[None, :]).clamp_(min=0)
    return val[idx].to(torch.int64)


class NgramTables:
    """Per-order context and full n-gram counts on `device` (int32; 62M tokens fit easily)."""

    def __init__(self, cfg: MixerConfig, vocab_size: int, device: str | torch.device = "cpu",
                 max_token: int | None = None):
        """max_token: the validation stream's largest token id; needed by miss_vocab=max_token."""
        if 1 in cfg.orders:
            raise NgramError("mixer.orders: order 1 is reserved for 'no order hit'; use orders >= 2")
        if vocab_size < 2:
            raise NgramError(f"vocab_size must be >= 2 (got {vocab_size})")
        self.cfg = cfg
        self.V = int(vocab_size)
        self.miss_p = 1.0 / miss_vocab_size(cfg, vocab_size, max_token)  # hashed_target's p on a miss
        self.device = torch.device(device)
        self.orders = tuple(cfg.orders)  # ascending
        self.width = max(self.orders) - 1  # context tokens the top order needs
        self.buckets = cfg.buckets
        self.mask = cfg.buckets - 1
        self.primes = torch.tensor(cfg.primes, dtype=torch.int64, device=self.device)
        n = len(self.orders)
        self.ctx = torch.zeros((n, self.buckets), dtype=torch.int32, device=self.device)
        self.full = torch.zeros((n, self.buckets), dtype=torch.int32, device=self.device)
        self.total_tokens = 0
        # per slot: v * prime[n-1] for every candidate v (the full-key term of lookup_all)
        v = torch.arange(self.V, dtype=torch.int64, device=self.device)
        self._vp = torch.stack([v * self.primes[o - 1] for o in self.orders])  # (n_orders, V)
        self._tprime = torch.stack([self.primes[o - 1] for o in self.orders])  # (n_orders,)
        # masked candidate offsets c_v = (v * prime[n-1]) & mask: candidate key = ctx_key ^ c_v
        self._kdt = torch.int32 if self.mask < 2**31 else torch.int64  # dtype that holds a key
        # sorted per order: a context's V reads then sweep the table in address order (the
        # sum does not care about order), measured ~20% faster gathers than v order on CPU
        self._cmask = (self._vp & self.mask).to(self._kdt).sort(dim=1).values  # (n_orders, V)
        # most candidates sharing one key (1 unless buckets < V or an even prime): bounds a normalizer
        self._cmult = max(int(torch.unique(c, return_counts=True)[1].max()) for c in self._cmask)

    # ---- counting -------------------------------------------------------------------
    def absorb(self, tokens) -> None:
        """Count every n-gram lying wholly inside `tokens` (1-D), then add len(tokens) to total."""
        t = torch.as_tensor(tokens).to(device=self.device, dtype=torch.int64).reshape(-1)
        n = t.numel()
        if n == 0:
            return
        for slot, order in enumerate(self.orders):
            if n < order:
                continue
            m = n - order + 1
            h = torch.zeros(m, dtype=torch.int64, device=self.device)
            for k in range(order - 1):
                h ^= t[k:k + m] * self.primes[k]
            ones = torch.ones(m, dtype=torch.int32, device=self.device)
            self.ctx[slot].index_add_(0, h & self.mask, ones)
            self.full[slot].index_add_(0, (h ^ (t[order - 1:] * self.primes[order - 1])) & self.mask, ones)
        self.total_tokens += n

    # ---- order selection ------------------------------------------------------------
    def _hash(self, ctx: torch.Tensor, order: int) -> torch.Tensor:
        """Context hash of `order` from the last order-1 columns of ctx (N, width)."""
        cw = order - 1
        cols = ctx[:, self.width - cw:]
        h = torch.zeros(ctx.shape[0], dtype=torch.int64, device=self.device)
        for k in range(cw):
            h ^= cols[:, k] * self.primes[k]
        return h

    def select(self, ctx: torch.Tensor, n_ctx: torch.Tensor | None = None):
        """Target-independent backoff. Returns (order int8, slot, hash, ctx_count), each (N,).

        slot/hash/ctx_count are meaningful only where order >= 2.
        """
        ctx = ctx.to(device=self.device, dtype=torch.int64)
        N = ctx.shape[0]
        order = torch.ones(N, dtype=torch.int8, device=self.device)
        slot = torch.zeros(N, dtype=torch.int64, device=self.device)
        hsel = torch.zeros(N, dtype=torch.int64, device=self.device)
        csel = torch.zeros(N, dtype=torch.int64, device=self.device)
        if self.total_tokens < self.cfg.warmup_tokens:
            return order.zero_(), slot, hsel, csel
        hit = torch.zeros(N, dtype=torch.bool, device=self.device)
        nc = None if n_ctx is None else n_ctx.to(device=self.device, dtype=torch.int64)
        for s in range(len(self.orders) - 1, -1, -1):
            o = self.orders[s]
            h = self._hash(ctx, o)
            c = self.ctx[s][h & self.mask].to(torch.int64)
            ok = (c >= self.cfg.min_count) & ~hit
            if nc is not None:
                ok &= nc >= o
            order[ok] = o
            slot[ok] = s
            hsel[ok] = h[ok]
            csel[ok] = c[ok]
            hit |= ok
        return order, slot, hsel, csel

    # ---- lookups --------------------------------------------------------------------
    def lookup_target(self, ctx, target, n_ctx=None):
        """#779's estimate of the realized target: (order int8 (N,), p float64 (N,))."""
        order, slot, h, c = self.select(ctx, n_ctx)
        y = torch.as_tensor(target).to(device=self.device, dtype=torch.int64)
        key = slot * self.buckets + ((h ^ (y * self._tprime[slot])) & self.mask)
        full = self.full.view(-1)[key].to(torch.float64)
        cf = c.to(torch.float64)
        p = (torch.minimum(full, cf) / cf.clamp(min=1.0)).clamp_(0.0, 1.0)
        p = torch.where(order >= 2, p, torch.full_like(p, self.miss_p))
        return order, p

    def _all_counts(self, slot: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """(n, V) full counts of every candidate v at the selected order, as int64."""
        key = ((h[:, None] ^ self._vp[slot]) & self.mask) + slot[:, None] * self.buckets
        return self.full.view(-1)[key].to(torch.int64)

    # contexts per (block, V) normalizer gather: 256 x 1024 int32 keys + values = 2 MiB, which
    # stays in a CPU's L2 (measured faster than 64 and 1024..16384 here); wide on a GPU
    _norm_block = property(lambda self: 1 << 16 if self.device.type == "cuda" else 1 << 8)

    def _block(self) -> int:
        # positions per (block, V) gather: 4096 x 1024 int64 keys = 32 MiB on CPU; bigger on GPU
        return 1 << 15 if self.device.type == "cuda" else 1 << 12

    def lookup_all(self, ctx, n_ctx=None, normalize: bool | None = None, block: int | None = None):
        """(order int8 (N,), probs float64 (N, V)) over the whole vocabulary.

        normalize=True (default in normalized mode): q(v) = full(v) / sum full, uniform if 0.
        normalize=False: #779's per-candidate estimate min(full(v), ctx) / ctx, whose rows sum
        far above 1 (what the audit measures). Orders 0 and 1 give the uniform row (1/V; for
        normalize=False the hashed_target miss value, see miss_vocab).
        """
        if normalize is None:
            normalize = self.cfg.mode == "normalized"
        order, slot, h, c = self.select(ctx, n_ctx)
        N = order.shape[0]
        block = block or self._block()
        fill = 1.0 / self.V if normalize else self.miss_p
        out = torch.full((N, self.V), fill, dtype=torch.float64, device=self.device)
        for a in range(0, N, block):
            b = min(a + block, N)
            act = torch.nonzero(order[a:b] >= 2).reshape(-1) + a
            if act.numel() == 0:
                continue
            full = self._all_counts(slot[act], h[act]).to(torch.float64)  # (n, V)
            if normalize:
                tot = full.sum(1, keepdim=True)
                rows = torch.where(tot > 0, full / tot.clamp(min=1.0), torch.full_like(full, 1.0 / self.V))
            else:
                cf = c[act].to(torch.float64)[:, None]
                rows = (torch.minimum(full, cf) / cf.clamp(min=1.0)).clamp_(0.0, 1.0)
            out[act] = rows
        return order, out

    def normalizers(self, keys: torch.Tensor, block: int | None = None) -> torch.Tensor:
        """sum_v full(ctx_key ^ c_v) at the selected order, int64 (U,), for flat keys
        slot * buckets + ctx_key, sorted ascending (torch.unique's output)."""
        out = torch.empty(keys.shape, dtype=torch.int64, device=self.device)
        block = block or self._norm_block
        # a normalizer is <= cmult * (n-grams counted) <= cmult * total_tokens: where that fits
        # int32, sum in int32 (exact, and ~50x faster than an int64 sum on CPU)
        acc = torch.int32 if self._cmult * self.total_tokens < 2**31 else torch.int64
        bounds = torch.searchsorted(keys, torch.arange(len(self.orders) + 1, device=self.device) * self.buckets)
        bounds = bounds.tolist()
        for s in range(len(self.orders)):
            lo, hi = bounds[s], bounds[s + 1]
            if lo == hi:
                continue
            table, cm = self.full[s], self._cmask[s]  # (buckets,) int32, (V,) key dtype
            local = (keys[lo:hi] - s * self.buckets).to(self._kdt)
            for a in range(0, hi - lo, block):
                k = local[a:a + block]
                cand = k[:, None] ^ cm[None, :]  # (n, V) candidate keys (int32), < buckets
                vals = table.index_select(0, cand.reshape(-1)).view(cand.shape)
                out[lo + a:lo + a + k.numel()] = vals.sum(1, dtype=acc)
        return out

    def lookup_normalized(self, ctx, target, n_ctx=None, block: int | None = None):
        """q(y) of the normalized estimate for the realized targets: (order, p float64 (N,)).

        The normalizer is summed once per distinct (order, ctx_key) of this lookup (the hot
        path on GPU: (block, V) int32 gathers); full(y) is one gather per position.
        """
        order, slot, h, _ = self.select(ctx, n_ctx)
        y = torch.as_tensor(target).to(device=self.device, dtype=torch.int64)
        p = torch.full(order.shape, 1.0 / self.V, dtype=torch.float64, device=self.device)
        act = torch.nonzero(order >= 2).reshape(-1)
        if act.numel() == 0:
            return order, p
        s, ha = slot[act], h[act]
        base = s * self.buckets
        num = self.full.view(-1)[base + ((ha ^ (y[act] * self._tprime[s])) & self.mask)]  # full(y)
        keys, inv = torch.unique(base + (ha & self.mask), return_inverse=True)
        tot = self.normalizers(keys, block)[inv]
        p[act] = torch.where(tot > 0, num.to(torch.float64) / tot.clamp(min=1).to(torch.float64),
                             torch.full_like(p[act], 1.0 / self.V))
        return order, p

    def lookup(self, ctx, target, n_ctx=None):
        """(order, p_ngram of the target) in the configured mode (the fused path's call)."""
        if self.cfg.mode == "normalized":
            return self.lookup_normalized(ctx, target, n_ctx)
        return self.lookup_target(ctx, target, n_ctx)


def miss_vocab_size(cfg: MixerConfig, vocab_size: int, max_token: int | None) -> int:
    """V of hashed_target's uniform 1/V on a miss: the model's vocabulary, or (#779) the
    validation stream's max token id + 1 (`vocab_size=val_tokens.max().item() + 1`)."""
    if cfg.miss_vocab == "model" or cfg.mode != "hashed_target":
        return int(vocab_size)
    if max_token is None:
        raise NgramError("mixer.miss_vocab=max_token needs the validation stream's max token (max_token=)")
    return int(max_token) + 1


@dataclass
class NgramResult:
    """Per scored target, in stats order. order: 0 warm-up, 1 no hit, n = selected order."""

    order: np.ndarray  # (N,) int8
    p_ngram: np.ndarray  # (N,) float64
    audit_p_ngram: np.ndarray | None = None  # (S, V) float64 at stats rows audit_idx
    table_key: tuple | None = None  # MixerConfig.table_key() of the pass
    events: list = field(default_factory=list)  # ("score"|"absorb", lo, hi) in schedule order


def _runs(sorted_pos: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous [lo, hi) runs of a sorted int array."""
    if sorted_pos.size == 0:
        return []
    breaks = np.nonzero(np.diff(sorted_pos) != 1)[0]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks + 1, [sorted_pos.size]))
    return [(int(sorted_pos[s]), int(sorted_pos[e - 1]) + 1) for s, e in zip(starts, ends)]


def ngram_pass(val_tokens, pos, chunk, cfg: MixerConfig, chunk_tokens: int, *, vocab_size: int,
               audit_idx=None, device: str | torch.device = "cpu", n_ctx=None,
               audit_normalize: bool | None = None, targets: bool = True) -> NgramResult:
    """Replay the score-first n-gram schedule over the scored targets of one evaluation.

    val_tokens: the validation stream (total = len - 1 targets); pos (N,): stream index of each
    scored target (its context is val[pos-k .. pos-1]); chunk (N,): its score-first chunk;
    n_ctx (N,): tokens the scorer saw before the target (window-relative, #779's j+1);
    default pos, which equals #779's window rule whenever seq_len - stride >= max order.
    audit_idx (S,): stats rows whose full (V,) n-gram row is returned (for the audit).
    targets=False skips the per-target lookups (order / p_ngram stay 0 / 1/V) and only fills the
    audit rows: the same schedule and tables at a fraction of the cost (the audit's causal probe).
    """
    val = torch.as_tensor(np.asarray(val_tokens) if not isinstance(val_tokens, torch.Tensor) else val_tokens)
    val = val.to(device=device, dtype=torch.int64).reshape(-1)
    pos = np.asarray(pos, dtype=np.int64).reshape(-1)
    chunk = np.asarray(chunk, dtype=np.int64).reshape(-1)
    N = pos.size
    total = val.numel() - 1
    if chunk.size != N:
        raise NgramError(f"pos has {N} entries but chunk has {chunk.size}")
    if chunk_tokens < 1:
        raise NgramError(f"chunk_tokens must be >= 1 (got {chunk_tokens})")
    if N and (pos.min() < 1 or pos.max() > total):
        raise NgramError(f"pos must lie in 1..{total} (the stream has {total + 1} tokens)")
    nch = num_chunks(max(total, 1), chunk_tokens)
    if N and (chunk.min() < 0 or chunk.max() >= nch):
        raise NgramError(f"chunk must lie in 0..{nch - 1} for chunk_tokens={chunk_tokens}")
    max_token = int(val.max()) if val.numel() else 0
    if N and max_token >= vocab_size:
        raise NgramError(f"token id {max_token} >= vocab_size {vocab_size}")
    aidx = None if audit_idx is None else np.asarray(audit_idx, dtype=np.int64).reshape(-1)
    if aidx is not None and aidx.size and (aidx.min() < 0 or aidx.max() >= N):
        raise NgramError(f"audit_idx must index the {N} scored targets")

    order = np.zeros(N, dtype=np.int8)
    p_ng = np.full(N, 1.0 / miss_vocab_size(cfg, vocab_size, max_token), dtype=np.float64)
    audit_rows = None if aidx is None else np.full((aidx.size, vocab_size), 1.0 / vocab_size)
    result = NgramResult(order, p_ng, audit_rows, cfg.table_key())
    if cfg.mode == "none":
        return result

    tables = NgramTables(cfg, vocab_size, device, max_token=max_token)
    # a window never shows more tokens than the stream holds before the target
    nc_all = pos if n_ctx is None else np.minimum(np.asarray(n_ctx, dtype=np.int64).reshape(-1), pos)
    by_chunk = np.argsort(chunk, kind="stable")
    bounds = np.searchsorted(chunk[by_chunk], np.arange(nch + 1))
    for c in range(nch):
        rows = by_chunk[bounds[c]:bounds[c + 1]]
        if rows.size == 0:
            continue  # #779 skips a chunk with no windows, its update included
        for lo, hi in _runs(np.sort(pos[rows])):
            result.events.append(("score", lo, hi))
        pt = torch.from_numpy(pos[rows]).to(device)
        ctx = context_matrix(val, pt, tables.width)
        nc = torch.from_numpy(nc_all[rows]).to(device)
        if targets:
            o, p = tables.lookup(ctx, val[pt], nc)
            order[rows] = o.cpu().numpy()
            p_ng[rows] = p.cpu().numpy()
        if aidx is not None:
            js = np.nonzero(chunk[aidx] == c)[0]
            if js.size:
                # rows is ascending (stable argsort), so searchsorted finds each row's slot
                loc = torch.from_numpy(np.searchsorted(rows, aidx[js])).to(device)
                o_a, probs = tables.lookup_all(ctx[loc], nc[loc], normalize=audit_normalize)
                audit_rows[js] = probs.cpu().numpy()
                if not targets:
                    order[aidx[js]] = o_a.cpu().numpy()
        lo, hi = chunk_token_range(c, total, chunk_tokens)
        tables.absorb(val[lo:hi])
        result.events.append(("absorb", lo, hi))
    return result

