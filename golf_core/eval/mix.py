"""Mix saved token stats with an n-gram pass: one config (`mix_nll`) or a grid (`mix_bpb`).

The neural pass runs once and saves per-token stats (token_stats.npz, keys in
docs/ARCHITECTURE.md); the n-gram pass runs once per distinct `MixerConfig.table_key()`;
every alpha setting (base, range, slope, centers, clamp) is then a cheap elementwise mix over
the same arrays. `mix_bpb` evaluates many configs at once, blocked over configs x positions,
with float64 sums (so 62M tokens add up without drift).
"""
from __future__ import annotations

import itertools
import math
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml

from golf_core.config import ConfigError, build
from golf_core.eval.bpb import bpb
from golf_core.eval.config import MixerConfig
from golf_core.eval.mixer import P_FLOOR, center_table
from golf_core.eval.ngram import NgramResult
from golf_core.errors import UserError

STATS_KEYS = ("target", "prev", "bytes", "p_model", "entropy", "chunk", "pos")
MAX_GRID = 1_000_000


class MixError(UserError):
    """Bad mix input (stats, grid file); one line naming the problem."""


def _ngram_arrays(stats: Mapping[str, Any], ngram) -> tuple[np.ndarray, np.ndarray]:
    if ngram is None:
        if "order" not in stats or "p_ngram" not in stats:
            raise MixError("no n-gram result given and the stats hold no 'order'/'p_ngram'")
        return np.asarray(stats["order"]), np.asarray(stats["p_ngram"])
    if isinstance(ngram, NgramResult):
        return ngram.order, ngram.p_ngram
    return np.asarray(ngram["order"]), np.asarray(ngram["p_ngram"])


def check_stats(stats: Mapping[str, Any], keys=("p_model", "entropy", "bytes")) -> int:
    """Number of scored tokens; raises MixError naming a missing or misshapen key."""
    n = None
    for k in keys:
        if k not in stats:
            raise MixError(f"token stats lack key '{k}'")
        m = np.asarray(stats[k]).shape[0]
        if n is not None and m != n:
            raise MixError(f"token stats key '{k}' has {m} rows, expected {n}")
        n = m
    return int(n or 0)


class MixInputs:
    """One (stats, n-gram pass) pair as every config of its table key mixes it: the float64
    tensors, the order mask and the model-alone NLL made once. A worker scoring a thousand
    configs of one table key pays the conversions once, not per config (issue 21).

    `nll(cfg)` is bit-identical to golf_core.eval.mixer.mixed_nll (tests/golf_core/eval/
    test_mix.py compares them bit for bit): the same float64 operations on the same elements
    in the same order, only in place and without the per-config conversions. The warm-up
    positions' alpha is not zeroed first: their mixed value is replaced by the model alone."""

    def __init__(self, stats: Mapping[str, Any], ngram):
        n = check_stats(stats)
        order, p_ng = _ngram_arrays(stats, ngram)
        if order.shape[0] != n:
            raise MixError(f"n-gram result has {order.shape[0]} rows, stats have {n}")
        t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.p_model, self.p_ngram, self.entropy = t(stats["p_model"]), t(p_ng), t(stats["entropy"])
        self.order = torch.from_numpy(np.asarray(order, dtype=np.int64))
        self.active = self.order > 0
        self.alone = -torch.log(self.p_model.clamp(min=torch.finfo(self.p_model.dtype).tiny))

    def nll(self, cfg: MixerConfig) -> np.ndarray:
        """Per-token NLL (nats, float64) of one non-tilt config."""
        if cfg.mode == "none":
            return self.alone.numpy().copy()
        if cfg.entropy_centers:  # #798's per-order centers: a gather, as mixer.alpha does
            a = self.entropy - center_table(cfg, self.entropy.dtype, self.entropy.device)[self.order]
        else:
            a = self.entropy - float(cfg.entropy_center)
        # a = min(base + range * sigmoid(slope (H - c)), alpha_max)
        a.mul_(cfg.entropy_slope).sigmoid_().mul_(cfg.alpha_range).add_(cfg.alpha_base).clamp_(max=cfg.alpha_max)
        # p = (1 - a) p_model + a p_ngram; nll = -log max(p, 1e-12)
        b = torch.mul(a, self.p_ngram)
        a.neg_().add_(1.0).mul_(self.p_model).add_(b).clamp_(min=P_FLOOR).log_().neg_()
        return torch.where(self.active, a, self.alone).numpy()


def mix_nll(stats: Mapping[str, Any], ngram, cfg: MixerConfig, inputs: MixInputs | None = None) -> np.ndarray:
    """Per-token NLL (nats, float64) of one mixer config over the saved stats; `inputs`: the
    pair's MixInputs when the caller scores many configs of it (ignored for tilt)."""
    if cfg.mode == "tilt":  # #2135's tilt: elementwise over the stats' hints and q
        from golf_core.eval.tilt_eval import TiltArrays, stats_tilt_nll, tilt_arrays

        return stats_tilt_nll(stats, ngram if isinstance(ngram, TiltArrays) else tilt_arrays(stats, cfg), cfg)
    return (inputs if inputs is not None else MixInputs(stats, ngram)).nll(cfg)


def mix_bpb(stats: Mapping[str, Any], ngram, cfgs: list[MixerConfig], *, device: str | torch.device = "cpu",
            dtype: torch.dtype = torch.float64, max_elems: int | None = None) -> list[float]:
    """val_bpb of every config in `cfgs` over the same stats and n-gram pass.

    Configs must share one n-gram pass (same table_key, or mode none). Work is done in tiles
    of (configs x positions) of at most `max_elems` elements; per-config sums in float64.
    dtype=float32 halves the memory traffic on GPU (per-tile sums still float64).
    """
    if not cfgs:
        return []
    if any(c.mode == "tilt" for c in cfgs):
        return _mix_bpb_tilt(stats, ngram, cfgs, device=device, dtype=dtype, max_elems=max_elems)
    n = check_stats(stats)
    order_np, png_np = _ngram_arrays(stats, ngram)
    if order_np.shape[0] != n:
        raise MixError(f"n-gram result has {order_np.shape[0]} rows, stats have {n}")
    keys = {c.table_key() for c in cfgs if c.mode != "none"}
    if len(keys) > 1:
        raise MixError("mix_bpb: configs need different n-gram passes; group them by table_key()")
    if isinstance(ngram, NgramResult) and keys and ngram.table_key is not None and ngram.table_key not in keys:
        raise MixError("mix_bpb: the n-gram result was made with a different table config")
    dev = torch.device(device)
    if max_elems is None:  # one (configs x positions) tile: 64 MiB in float64 on CPU, 512 MiB on GPU
        max_elems = 1 << 26 if dev.type == "cuda" else 1 << 23
    pm_all = np.asarray(stats["p_model"], dtype=np.float64)
    byte_sum = float(np.asarray(stats["bytes"], dtype=np.float64).sum())
    if byte_sum <= 0:
        raise MixError("token stats hold no bytes")
    order_np = np.asarray(order_np, dtype=np.int64)
    active = order_np > 0
    # warm-up positions (order 0) score the model alone for every config
    base_nll = float(-np.log(np.maximum(pm_all[~active], np.finfo(np.float64).tiny)).sum())
    model_nll = base_nll + float(-np.log(np.maximum(pm_all[active], np.finfo(np.float64).tiny)).sum())

    # positions grouped by selected order, so a config's center is one scalar per segment
    # (per-order centers, #798) instead of a (configs x positions) gather
    act_idx = np.nonzero(active)[0]
    act_idx = act_idx[np.argsort(order_np[act_idx], kind="stable")]
    o_sorted = order_np[act_idx]
    seg_orders = np.unique(o_sorted)
    seg_bounds = np.searchsorted(o_sorted, np.r_[seg_orders, seg_orders[-1] + 1]) if seg_orders.size else []
    H = torch.from_numpy(np.asarray(stats["entropy"], dtype=np.float64)[act_idx]).to(dev, dtype)
    pm = torch.from_numpy(pm_all[act_idx]).to(dev, dtype)
    dp = torch.from_numpy(np.asarray(png_np, dtype=np.float64)[act_idx]).to(dev, dtype) - pm  # p_ngram - p_model

    mixed = [c for c in cfgs if c.mode != "none"]
    sums = torch.zeros(len(mixed), dtype=torch.float64, device=dev)
    B = max(1, min(len(mixed), 256))
    T = max(1, max_elems // B)
    for b0 in range(0, len(mixed), B):
        blk = mixed[b0:b0 + B]
        col = lambda f: torch.tensor([f(c) for c in blk], dtype=dtype, device=dev)[:, None]  # noqa: E731
        base, rng, slope, amax = (col(lambda c: c.alpha_base), col(lambda c: c.alpha_range),
                                  col(lambda c: c.entropy_slope), col(lambda c: c.alpha_max))
        ctab = torch.stack([center_table(c, dtype, dev) for c in blk])  # (B, 17)
        for si, o in enumerate(seg_orders):
            center = ctab[:, int(o)][:, None]  # (B, 1)
            for t0 in range(int(seg_bounds[si]), int(seg_bounds[si + 1]), T):
                t1 = min(t0 + T, int(seg_bounds[si + 1]))
                h, p1, d = H[t0:t1], pm[t0:t1], dp[t0:t1]
                # in place, one (B, T) buffer: a = min(base + rng * sigmoid(slope (H - c)), amax)
                x = h[None, :] - center
                x.mul_(slope).sigmoid_().mul_(rng).add_(base)
                torch.minimum(x, amax, out=x)
                # p = p_model + a (p_ngram - p_model) = (1 - a) p_model + a p_ngram; nll = -log max(p, 1e-12)
                x.mul_(d[None, :]).add_(p1[None, :]).clamp_(min=P_FLOOR).log_()
                sums[b0:b0 + len(blk)] -= x.sum(1, dtype=torch.float64)
    mixed_sums = (sums.cpu().numpy() + base_nll).tolist()
    it = iter(mixed_sums)
    return [bpb(model_nll if c.mode == "none" else next(it), byte_sum) for c in cfgs]


def _mix_bpb_tilt(stats, ngram, cfgs, **kw) -> list[float]:
    """Tilt points by prefix sums per hint table (tilt.tilt_grid); the others as mix_bpb does."""
    from golf_core.eval.tilt import tilt_grid
    from golf_core.eval.tilt_eval import model_nll_of, tilt_arrays

    out = [math.nan] * len(cfgs)
    other = [i for i, c in enumerate(cfgs) if c.mode not in ("tilt", "none")]
    if other:
        for i, b in zip(other, mix_bpb(stats, ngram, [cfgs[i] for i in other], **kw)):
            out[i] = b
    byte_sum = float(np.asarray(stats["bytes"], dtype=np.float64).sum())
    nll = model_nll_of(stats)
    for i, c in enumerate(cfgs):
        if c.mode == "none":
            out[i] = bpb(float(nll.sum()), byte_sum)
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        if c.mode == "tilt":
            groups.setdefault(c.table_key(), []).append(i)
    for idx in groups.values():
        arr = tilt_arrays(stats, cfgs[idx[0]])
        sums = tilt_grid(nll, arr.q, arr.hint, arr.p_top, stats["target"],
                         [cfgs[i].tilt_threshold for i in idx], [cfgs[i].tilt_boost for i in idx])
        for i, s in zip(idx, sums.nll):
            out[i] = bpb(float(s), byte_sum)
    return out


# ---- grids -----------------------------------------------------------------------------
_TUPLE_FIELDS = ("orders", "primes")


def _axis(name: str, value: Any) -> list:
    """Grid axis values of one field: a list is an axis, except a flat list for a tuple field."""
    if name in _TUPLE_FIELDS:
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            return value
        return [value]
    if isinstance(value, list):
        if not value:
            raise MixError(f"mixer.{name}: empty list (a grid axis needs at least one value)")
        return value
    return [value]


def grid_from_dict(doc: Any, source: str = "grid") -> list[MixerConfig]:
    """{mixer: {field: value | [values...]}} -> the validated cartesian product."""
    if not isinstance(doc, dict) or set(doc) != {"mixer"} or not isinstance(doc["mixer"], dict):
        raise MixError(f"{source}: expected a mapping with exactly one key 'mixer' holding field: values")
    fields = MixerConfig.model_fields
    axes = {}
    for name, value in doc["mixer"].items():
        if name not in fields:
            raise MixError(f"{source}: mixer.{name}: unknown key")
        axes[name] = _axis(name, value)
    size = math.prod(len(v) for v in axes.values()) if axes else 1
    if size > MAX_GRID:
        raise MixError(f"{source}: grid has {size} points (max {MAX_GRID})")
    out = []
    names = list(axes)
    for i, combo in enumerate(itertools.product(*(axes[k] for k in names))):
        point = dict(zip(names, combo))
        try:
            out.append(build(MixerConfig, point, prefix="mixer"))
        except ConfigError as e:
            raise MixError(f"{source}: grid point {i} {point}: {e}") from None
    return out


def load_grid(path: str | Path) -> list[MixerConfig]:
    """Read a mix grid YAML; every point is validated, errors name the field."""
    p = Path(path)
    if not p.is_file():
        raise MixError(f"grid file not found: {p}")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise MixError(f"{p}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return grid_from_dict(doc, str(p))


# ---- stats files -----------------------------------------------------------------------
def load_stats(path: str | Path) -> dict[str, np.ndarray]:
    """token_stats.npz as a dict of arrays, checked for the contract's keys."""
    p = Path(path)
    if not p.is_file():
        raise MixError(f"token stats not found: {p}")
    from golf_core.eval import stats as contract

    try:
        with np.load(p, allow_pickle=False) as z:
            stats = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise MixError(f"{p}: not a readable .npz ({str(e).splitlines()[0][:200]})") from None
    missing = [k for k in STATS_KEYS if k not in stats]
    if missing:
        raise MixError(f"{p}: lacks keys {missing}")
    try:  # shapes and dtypes too: a 0-d or 2-D array must be one line, not an IndexError
        contract.check_stats(stats)
    except contract.StatsError as e:
        raise MixError(f"{p}: {e}") from None
    check_stats(stats, STATS_KEYS)
    return stats


def stream_from_stats(stats: Mapping[str, Any]) -> np.ndarray:
    """The validation stream val[0..max pos] rebuilt from (pos, target, prev).

    val[pos] = target and val[pos-1] = prev; every index must be covered (a full evaluation
    scores every target once, so it is) and the two must agree.
    """
    pos = np.asarray(stats["pos"], dtype=np.int64)
    if pos.size == 0:
        raise MixError("token stats hold no scored tokens")
    n = int(pos.max()) + 1
    val = np.full(n, -1, dtype=np.int64)
    val[pos - 1] = np.asarray(stats["prev"], dtype=np.int64)
    tgt = np.asarray(stats["target"], dtype=np.int64)
    clash = (val[pos] >= 0) & (val[pos] != tgt)
    if clash.any():
        raise MixError(f"token stats disagree at stream index {int(pos[clash][0])} (prev vs target)")
    val[pos] = tgt
    if (val < 0).any():
        raise MixError(f"token stats do not cover stream index {int(np.nonzero(val < 0)[0][0])}; "
                       "pass the data dir to read the validation tokens")
    return val
