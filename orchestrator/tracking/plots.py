"""The sweep's PNG plots for its MLflow parent run (matplotlib, Agg: no display needed).

Inputs are plain data from orchestrator.tracking.summary.plot_data; each function writes one file:
- alpha_heatmap.png: alpha_base x alpha_range, seed-mean val_bpb, one panel per mixer mode; a
  non-compliant mode's panel is framed red and titled so
- seed_spread.png: val_bpb of each seed per config (how much of a difference is noise), one row
  per configuration named in full, the top SPREAD_TOP_LEGAL legal ones first (best at the top),
  then the best SPREAD_TOP_NONCOMPLIANT non-compliant ones, marked; each seed its own marker
- train_curves.png: every training run's train_loss, overlaid
- chunk_val_bpb.png: val_bpb per score-first chunk, the model alone vs each mode's winner
  (the mixer's gain grows as its tables fill; a drift across the eval shows here); a
  non-compliant winner's line is dashed and labelled so
A plot with no data still gets a file saying so, so the parent run always has the same set.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless drivers and Ray jobs have no display
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["PLOTS", "write_all", "alpha_heatmap", "seed_spread", "train_curves", "chunk_val_bpb"]

PLOTS = ("alpha_heatmap.png", "seed_spread.png", "train_curves.png", "chunk_val_bpb.png")
SPREAD_TOP_LEGAL = 25  # rows a person reads; the rest is in summary.csv
SPREAD_TOP_NONCOMPLIANT = 5
_MARKERS = "os^Dv<>Pp*hX"
NOT_COMPLIANT = "NOT COMPLIANT"


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def alpha_heatmap(grids: dict[str, dict[tuple[float, float], float]], path: Path, title: str = "",
                  compliant: dict[str, bool] | None = None) -> None:
    n = max(1, len(grids))
    cols = max((len({b for b, _ in g}) for g in grids.values()), default=3)
    # bounded size: a 2,500-point alpha axis must not make a 1,500-inch figure
    fig, axes = plt.subplots(1, n, figsize=(min(12.0, max(4.5, 0.6 * cols + 2)) * n, 4), squeeze=False)
    if not grids:
        _empty(axes[0][0], "alpha grid")
    for ax, (mode, grid) in zip(axes[0], sorted(grids.items())):
        bases = sorted({b for b, _ in grid})
        ranges = sorted({r for _, r in grid})
        z = [[grid.get((b, r), math.nan) for b in bases] for r in ranges]
        im = ax.imshow(z, origin="lower", cmap="viridis_r", aspect="auto")
        xs = range(0, len(bases), max(1, len(bases) // 12))  # at most ~12 tick labels an axis
        ys = range(0, len(ranges), max(1, len(ranges) // 12))
        ax.set_xticks(list(xs), [f"{bases[i]:g}" for i in xs])
        ax.set_yticks(list(ys), [f"{ranges[i]:g}" for i in ys])
        ax.set_xlabel("alpha_base")
        ax.set_ylabel("alpha_range")
        ok = (compliant or {}).get(mode, True)
        ax.set_title(f"{mode}: seed-mean val_bpb" + ("" if ok else f"\n{NOT_COMPLIANT}: not a legal score"),
                     color="black" if ok else "red")
        if not ok:
            for side in ax.spines.values():
                side.set_edgecolor("red")
                side.set_linewidth(3)
        if len(bases) * len(ranges) <= 100:  # numbers in the cells only while they can be read
            for i, row in enumerate(z):
                for j, v in enumerate(row):
                    if math.isfinite(v):
                        ax.text(j, i, f"{v:.4f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    _save(fig, path)


def seed_spread(spread: list[tuple], path: Path, title: str = "", hidden: int = 0) -> None:
    """One row per configuration (label in full), its seeds' val_bpb as points, a line from the
    lowest to the highest. `spread` rows: (label, [(seed, val_bpb)], compliant) in the order to
    draw, top first (plot_data puts the best legal ones first)."""
    rows = [(r[0], r[1], r[2] if len(r) > 2 else True) for r in spread]
    longest = max((len(lbl) for lbl, _, _ in rows), default=10)
    fig, ax = plt.subplots(figsize=(min(22, 6 + 0.075 * longest), 1.4 + 0.32 * max(len(rows), 2)))
    if not rows:
        _empty(ax, "scored config")
    seeds = sorted({s for _, pts, _ in rows for s, _ in pts})
    colors = plt.get_cmap("tab10")
    ys = {i: len(rows) - 1 - i for i in range(len(rows))}  # the first row at the top
    for k, seed in enumerate(seeds):
        for legal in (True, False):
            pts = [(v, ys[i]) for i, (_, p, ok) in enumerate(rows) for s, v in p if s == seed and ok == legal]
            if not pts:
                continue
            # each seed its own colour and marker; a non-compliant point is hollow
            ax.scatter([v for v, _ in pts], [y for _, y in pts], s=36, marker=_MARKERS[k % len(_MARKERS)],
                       facecolors=colors(k % 10) if legal else "none", edgecolors=colors(k % 10), zorder=3,
                       label=f"seed {seed}" if legal or not any(ok for *_, ok in rows) else None)
    for i, (_, pts, _) in enumerate(rows):
        if pts:
            ax.hlines(ys[i], min(v for _, v in pts), max(v for _, v in pts), color="0.6", zorder=2)
    if rows:
        labels = [lbl if ok else f"{lbl}  [{NOT_COMPLIANT}]" for lbl, _, ok in rows]
        ax.set_yticks([ys[i] for i in range(len(rows))], labels, fontsize=8)
        for tick, (_, _, ok) in zip(ax.get_yticklabels(), rows):
            tick.set_color("black" if ok else "red")
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xlabel("val_bpb (lower is better)")
        ax.grid(axis="x", color="0.9")
        ax.legend(fontsize=8, loc="lower right", title="hollow: not compliant" if not all(ok for *_, ok in rows) else None,
                  title_fontsize=7)
    more = f" ({hidden} more configs in summary.csv)" if hidden else ""
    ax.set_title(f"{title}: val_bpb per seed, best legal first{more}", fontsize=9, loc="right")
    _save(fig, path)


def train_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not curves:
        _empty(ax, "training curve")
    for name, pts in sorted(curves.items()):
        ax.plot([s for s, _ in pts], [v for _, v in pts], label=name)
    if curves:
        ax.set_xlabel("step")
        ax.set_ylabel("train_loss")
        ax.legend(fontsize=8)
    ax.set_title(f"{title}: training curves")
    _save(fig, path)


def chunk_val_bpb(chunks: dict[str, list[tuple[int, float]]], path: Path, title: str = "",
                  noncompliant: set[str] | frozenset = frozenset()) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not chunks:
        _empty(ax, "per-chunk score")
    for name, pts in chunks.items():
        bad = name in noncompliant
        ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, linestyle="--" if bad else "-",
                label=f"{name} [{NOT_COMPLIANT}]" if bad else name)
    if chunks:
        ax.set_xlabel("score-first chunk")
        ax.set_ylabel("val_bpb (seed mean)")
        ax.legend(fontsize=7)
    ax.set_title(f"{title}: val_bpb per chunk")
    _save(fig, path)


def write_all(data: dict, out_dir: Path, title: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    alpha_heatmap(data.get("alpha") or {}, out_dir / PLOTS[0], title, data.get("alpha_compliant"))
    seed_spread(data.get("spread") or [], out_dir / PLOTS[1], title, data.get("spread_hidden") or 0)
    train_curves(data.get("curves") or {}, out_dir / PLOTS[2], title)
    chunk_val_bpb(data.get("chunks") or {}, out_dir / PLOTS[3], title, data.get("chunks_noncompliant") or set())
    return [out_dir / p for p in PLOTS]
