"""One plot of a pruned sweep (the parent run's `prune_curves.png`): every trial's curve against
train time (one line per seed, a trial's seeds in one colour), the rungs as dotted verticals,
and where each pruned trial was stopped as an x at its rung value. Kept apart from
orchestrator.tracking.plots (the sweep summary's plots)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_prune_plot"]


def write_prune_plot(hook: Any, decisions: dict, path: Path) -> bool:
    """Draw `hook.board`'s curves; False (nothing written) when no curve was streamed."""
    board = hook.board
    if not board.curves:
        return False
    import matplotlib

    matplotlib.use("Agg")  # headless drivers and Ray jobs have no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    trials = sorted({t for t, _ in board.curves})
    colours = {t: plt.cm.tab20(i % 20) for i, t in enumerate(trials)}
    stopped = {d.trial: d for d in decisions.values()}
    for (trial, _seed), pts in sorted(board.curves.items()):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colours[trial], lw=1,
                    alpha=0.5 if trial in stopped else 0.9)
    for r in board.rungs_s:
        ax.axvline(r, color="grey", ls=":", lw=1)
    for trial, d in stopped.items():
        v = board.value(trial, d.rung_s)
        if v is not None:
            ax.plot([d.rung_s], [v], "x", color="red", ms=8, mew=2)
    ax.set_xlabel("train time (s)")
    ax.set_ylabel(hook.spec.metric)
    ax.set_title(f"{len(trials)} trials, {len(stopped)} pruned ({hook.spec.kind}); dotted: rungs, x: stopped")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
