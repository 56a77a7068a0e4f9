"""A synthetic token source with a known entropy rate, for the audit's entropy-floor check.

A first-order Markov chain over V tokens: each token has `succ` random successors with
Dirichlet weights, mixed with `eps` of uniform mass so the chain is ergodic. The conditional
entropy H(x_t | x_{t-1}) is known exactly at every step, so any scorer whose probabilities
form a proper causal distribution has E[-log q(x_t) - H_t] = KL(P_t || q_t) >= 0 (Gibbs'
inequality). A scorer that averages clearly below the per-step entropy is not scoring a
normalized distribution: PR #779's target-keyed estimate with 16 buckets goes far below
(with one bucket BPB -> 0, as PR #886 showed).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MarkovSource:
    V: int
    succ_idx: np.ndarray  # (V, K) successor ids of each token
    succ_p: np.ndarray  # (V, K) their sparse weights (rows sum to 1)
    eps: float  # uniform mass mixed in: P(j|i) = (1-eps) sparse(j|i) + eps/V

    def probs(self, prev: np.ndarray) -> np.ndarray:
        """(N, V) float64 rows P(. | prev)."""
        prev = np.asarray(prev, dtype=np.int64)
        out = np.full((prev.size, self.V), self.eps / self.V)
        rows = np.arange(prev.size)[:, None]
        np.add.at(out, (rows, self.succ_idx[prev]), (1 - self.eps) * self.succ_p[prev])
        return out

    def row_entropy(self) -> np.ndarray:
        """(V,) H(x_t | x_{t-1} = i) in nats, exactly."""
        p = self.probs(np.arange(self.V))
        return -(p * np.log(p)).sum(1)

    def entropy_rate(self, iters: int = 500) -> float:
        """Stationary entropy rate (nats/token): sum_i pi_i H_i, pi by power iteration."""
        pi = np.full(self.V, 1.0 / self.V)
        for _ in range(iters):
            nxt = np.full(self.V, self.eps / self.V)
            np.add.at(nxt, self.succ_idx.reshape(-1), ((1 - self.eps) * pi[:, None] * self.succ_p).reshape(-1))
            pi = nxt / nxt.sum()
        return float((pi * self.row_entropy()).sum())


def make_source(V: int = 1024, succ: int = 8, eps: float = 0.01, seed: int = 0,
                concentration: float = 0.5) -> MarkovSource:
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(V, size=succ, replace=False) for _ in range(V)])
    p = rng.dirichlet(np.full(succ, concentration), size=V)
    return MarkovSource(V, idx, p, eps)


def sample(src: MarkovSource, n: int, seed: int = 0) -> np.ndarray:
    """n tokens of the chain (int64), started from a uniform token."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    sparse = rng.random(n) >= src.eps
    uni = rng.integers(0, src.V, size=n)
    cum = np.cumsum(src.succ_p, axis=1)
    out = np.empty(n, dtype=np.int64)
    out[0] = uni[0]
    for t in range(1, n):
        i = out[t - 1]
        if sparse[t]:
            k = min(int(np.searchsorted(cum[i], u[t], side="right")), cum.shape[1] - 1)
            out[t] = src.succ_idx[i, k]
        else:
            out[t] = uni[t]
    return out
