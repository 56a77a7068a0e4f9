"""The tilt mode in an evaluation: hint tables before the neural pass, the fused hook, the
factorized arrays in token stats, and the audit's tilt checks.

Factorized (DESIGN.md): the hint pass reads tokens only, so it runs once per (order,
table_bits) BEFORE the neural pass; the neural pass records q = p_model(h_t) of each table's
hint from the distribution it scores (after TTT where TTT is on); threshold and boost are then
elementwise (tilt.tilt_nll / tilt.tilt_grid). Token stats carry, per table tag `o16_b0`
(table_bits as configured, 0 = #2135's size for the stream): tilt_hint_<tag> (int32, -1 = no
hint), tilt_ptop_<tag> (float32) and tilt_q_<tag> (float64), one row per scored target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from golf_core.eval.config import MixerConfig
from golf_core.eval.tilt import Hints, TiltError, gate, hint_pass, table_tag, tilt_nll, tilt_row

SUM_TOL = 1e-4


def cfg_tag(cfg: MixerConfig) -> str:
    return table_tag(cfg.tilt_order, cfg.tilt_table_bits)


def build_hints(val_tokens, tables: Iterable[tuple[int, int]]) -> tuple[dict[str, Hints], float]:
    """{tag: Hints} for every (order, table_bits) over the validation stream, and the seconds it
    took (inside the eval timer: #2135 logs it as ngram_tilt:precompute_done)."""
    val = np.asarray(val_tokens.cpu() if hasattr(val_tokens, "cpu") else val_tokens).reshape(-1)
    t0 = time.perf_counter()
    out = {table_tag(o, b): hint_pass(val, int(o), int(b) or None) for o, b in sorted(set(tables))}
    return out, time.perf_counter() - t0


def add_hint_stats(stats: dict, hints: Mapping[str, Hints]) -> None:
    """Per scored target (stats["pos"]): each table's hint and p_top (q came from the neural pass)."""
    pos = np.asarray(stats["pos"], dtype=np.int64)
    for tag, h in hints.items():
        stats[f"tilt_hint_{tag}"] = h.hint[pos]
        stats[f"tilt_ptop_{tag}"] = h.p_top[pos]


@dataclass(frozen=True)
class TiltArrays:
    """One table's per-target arrays from token stats (the factorized 'n-gram result' of tilt)."""

    tag: str
    hint: np.ndarray
    p_top: np.ndarray
    q: np.ndarray
    table_key: tuple | None = None


def tilt_arrays(stats: Mapping[str, Any], cfg: MixerConfig) -> TiltArrays:
    tag = cfg_tag(cfg)
    keys = [f"tilt_{k}_{tag}" for k in ("hint", "ptop", "q")]
    missing = [k for k in keys if k not in stats]
    if missing:
        have = sorted({k.split("_", 2)[2] for k in stats if k.startswith("tilt_q_")})
        raise TiltError(f"token stats hold no tilt table {tag} (order {cfg.tilt_order}, table_bits "
                        f"{cfg.tilt_table_bits}); the eval must list it in eval.tilt_tables (has: {have or 'none'})")
    return TiltArrays(tag, *(np.asarray(stats[k]) for k in keys), table_key=cfg.table_key())


def model_nll_of(stats: Mapping[str, Any]) -> np.ndarray:
    return -np.log(np.maximum(np.asarray(stats["p_model"], dtype=np.float64), np.finfo(np.float64).tiny))


def stats_tilt_nll(stats: Mapping[str, Any], arrays: TiltArrays, cfg: MixerConfig) -> np.ndarray:
    """The factorized path: per-token nll' from the saved stats alone."""
    return tilt_nll(model_nll_of(stats), arrays.q, arrays.hint, arrays.p_top, stats["target"],
                    cfg.tilt_threshold, cfg.tilt_boost)


def tilt_counts(stats: Mapping[str, Any], arrays: TiltArrays, cfg: MixerConfig) -> dict[str, int]:
    """tilt_gated: scored positions tilted; tilt_hits: of those, where the target was the hint."""
    g = gate(arrays.p_top, cfg.tilt_threshold) & (arrays.hint >= 0)
    hits = g & (arrays.hint == np.asarray(stats["target"]))
    return {"tilt_gated": int(g.sum()), "tilt_hits": int(hits.sum())}


@dataclass
class FusedTilt:
    """The record's path: during scoring, each scored target's nll is tilted at once (this
    rank's targets; gated / hits count this rank's)."""

    cfg: MixerConfig
    hints: Hints
    gated: int = 0
    hits: int = 0
    tag: str = field(init=False)

    def __post_init__(self):
        self.tag = cfg_tag(self.cfg)

    def on_scored(self, chunk: int, scored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pos = scored["pos"]
        hint, pt = self.hints.hint[pos], self.hints.p_top[pos]
        q = scored[f"tilt_q_{self.tag}"]
        nll = tilt_nll(scored["nll"], q, hint, pt, scored["target"], self.cfg.tilt_threshold, self.cfg.tilt_boost)
        g = gate(pt, self.cfg.tilt_threshold) & (hint >= 0)
        self.gated += int(g.sum())
        self.hits += int((g & (hint == scored["target"])).sum())
        return {"p_mix": np.exp(-nll), "nll_mix": nll}


# ---- audit ------------------------------------------------------------------------------
def _check(passed: bool, value: Any, detail: str) -> dict:
    return {"passed": bool(passed), "value": value, "detail": detail}


def check_tilt_sum(stats: Mapping[str, Any], arrays: TiltArrays, cfg: MixerConfig, tol: float = SUM_TOL) -> dict:
    """C2: sum_a p'(a) of the FULL tilted distribution (not the closed form) at the audit rows."""
    aidx = np.asarray(stats["audit_idx"], dtype=np.int64)
    rows = np.asarray(stats["audit_p_model"], dtype=np.float64)
    sums = []
    for r, i in zip(rows, aidx):
        h, pt = int(arrays.hint[i]), arrays.p_top[i]
        tilted = h >= 0 and bool(gate(np.asarray([pt]), cfg.tilt_threshold)[0])
        sums.append(float(tilt_row(r, h, cfg.tilt_boost).sum() if tilted else r.sum()))
    s = np.asarray(sums)
    n_t = int(sum(1 for i in aidx if arrays.hint[i] >= 0 and arrays.p_top[i] >= np.float32(cfg.tilt_threshold)))
    dev = float(np.abs(s - 1).max()) if s.size else float("nan")
    return _check(s.size > 0 and dev <= tol, {"max_abs_dev": dev, "positions": int(s.size), "tilted": n_t},
                  f"sum_a p'(a) in [{s.min():.6g}, {s.max():.6g}] over {s.size} positions ({n_t} tilted), "
                  f"tolerance {tol:g}" if s.size else "no audited positions")


def check_tilt_causal(val_tokens, cfg: MixerConfig, probes: int = 64, seed: int = 0,
                      max_tokens: int = 1 << 20) -> dict:
    """C1 and C3 for the hint pass: hints and p_top at positions <= t unchanged when tokens >= t
    (x_t included) are replaced; so the table absorbed x_t only after t was scored. The pass
    runs on a prefix of at most max_tokens (a hint at t reads nothing past t)."""
    val = np.asarray(val_tokens, dtype=np.int64).reshape(-1)
    hi = min(val.size, max_tokens)
    if hi < cfg.tilt_order + 2:
        return _check(False, None, f"stream of {hi} tokens too short for order {cfg.tilt_order}")
    t = hi // 2
    bits = cfg.tilt_table_bits or None
    a = hint_pass(val[:hi], cfg.tilt_order, bits)
    rng = np.random.default_rng(seed)
    pert = val[:hi].copy()
    pert[t:] = rng.integers(0, int(val.max()) + 1, size=hi - t)
    b = hint_pass(pert, cfg.tilt_order, bits)
    probe = np.unique(np.r_[np.arange(max(1, t - probes // 2), t + 1), rng.integers(1, t + 1, size=probes // 2)])
    same = bool(np.array_equal(a.hint[probe], b.hint[probe]) and np.array_equal(a.p_top[probe], b.p_top[probe]))
    whole = bool(np.array_equal(a.hint[: t + 1], b.hint[: t + 1]) and np.array_equal(a.p_top[: t + 1], b.p_top[: t + 1]))
    ok = same and whole
    return _check(ok, int(t), f"hints at all {t} positions <= {t} unchanged after replacing tokens >= {t} "
                  f"(x_{t} included: absorbed only after it was scored)" if ok else
                  f"hints at positions <= {t} changed when tokens >= {t} were replaced")
