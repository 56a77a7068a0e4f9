"""The sweep's PNG plots for its MLflow parent run (matplotlib, Agg: no display needed).

Inputs are plain data from orchestrator.tracking.summary.plot_data; each function writes one file:
- alpha_heatmap.png: alpha_base x alpha_range, seed-mean val_bpb, one panel per mixer mode
- seed_spread.png: val_bpb of each seed per config (how much of a difference is noise)
- train_curves.png: every training run's train_loss, overlaid
- chunk_val_bpb.png: val_bpb per score-first chunk, the model alone vs each mode's winner
  (the mixer's gain grows as its tables fill; a drift across the eval shows here)
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


def _empty(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def alpha_heatmap(grids: dict[str, dict[tuple[float, float], float]], path: Path, title: str = "") -> None:
    n = max(1, len(grids))
    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 4), squeeze=False)
    if not grids:
        _empty(axes[0][0], "alpha grid")
    for ax, (mode, grid) in zip(axes[0], sorted(grids.items())):
        bases = sorted({b for b, _ in grid})
        ranges = sorted({r for _, r in grid})
        z = [[grid.get((b, r), math.nan) for b in bases] for r in ranges]
        im = ax.imshow(z, origin="lower", cmap="viridis_r", aspect="auto")
        ax.set_xticks(range(len(bases)), [f"{b:g}" for b in bases])
        ax.set_yticks(range(len(ranges)), [f"{r:g}" for r in ranges])
        ax.set_xlabel("alpha_base")
        ax.set_ylabel("alpha_range")
        ax.set_title(f"{mode}: seed-mean val_bpb")
        for i, row in enumerate(z):
            for j, v in enumerate(row):
                if math.isfinite(v):
                    ax.text(j, i, f"{v:.4f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax)
    fig.suptitle(title)
    _save(fig, path)


def seed_spread(spread: list[tuple[str, list[tuple[int, float]]]], path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(spread) + 2), 4.5))
    if not spread:
        _empty(ax, "scored config")
    seeds = sorted({s for _, pts in spread for s, _ in pts})
    for k, seed in enumerate(seeds):
        xs = [i for i, (_, pts) in enumerate(spread) for s, _ in pts if s == seed]
        ys = [v for _, pts in spread for s, v in pts if s == seed]
        ax.scatter(xs, ys, s=18, label=f"seed {seed}", zorder=3)
    for i, (_, pts) in enumerate(spread):
        if pts:
            ax.vlines(i, min(v for _, v in pts), max(v for _, v in pts), color="0.6", zorder=2)
    if spread:
        ax.set_xticks(range(len(spread)), [lbl for lbl, _ in spread], rotation=75, ha="right", fontsize=7)
        ax.set_ylabel("val_bpb")
        ax.legend(fontsize=8)
    ax.set_title(f"{title}: val_bpb per seed and config")
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


def chunk_val_bpb(chunks: dict[str, list[tuple[int, float]]], path: Path, title: str = "") -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not chunks:
        _empty(ax, "per-chunk score")
    for name, pts in chunks.items():
        ax.plot([s for s, _ in pts], [v for _, v in pts], marker="o", ms=3, label=name)
    if chunks:
        ax.set_xlabel("score-first chunk")
        ax.set_ylabel("val_bpb (seed mean)")
        ax.legend(fontsize=8)
    ax.set_title(f"{title}: val_bpb per chunk")
    _save(fig, path)


def write_all(data: dict, out_dir: Path, title: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    alpha_heatmap(data.get("alpha") or {}, out_dir / PLOTS[0], title)
    seed_spread(data.get("spread") or [], out_dir / PLOTS[1], title)
    train_curves(data.get("curves") or {}, out_dir / PLOTS[2], title)
    chunk_val_bpb(data.get("chunks") or {}, out_dir / PLOTS[3], title)
    return [out_dir / p for p in PLOTS]
