"""golf_core.eval: scoring an artifact on the validation split.

Neural side: windows (sliding-window geometry), bpb (exact float64 bits per byte), sliding
(`evaluate_sliding`), chunked (score-first chunks, event log), ttt (drift-free TTT), stats
(token_stats.npz), run (`run_eval`, the fused path), cli (`golf eval`).
N-gram side: ngram (`ngram_pass`), mixer / mix (`mix_nll`, `mix_bpb`), audit (`audit`), cli_mix.

Names are resolved lazily: golf_core.presets imports golf_core.eval.config, and importing
the whole package there would pull torch.distributed setup and the n-gram code into every
config import (and risk an import cycle through golf_core.train).
"""
from __future__ import annotations

from golf_core import lazy

from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig, TTTConfig

_LAZY = {
    "run_eval": "golf_core.eval.run",
    "evaluate_sliding": "golf_core.eval.sliding",
    "evaluate_chunked": "golf_core.eval.chunked",
    "check_score_before_update": "golf_core.eval.chunked",
    "sliding_windows": "golf_core.eval.windows",
    "window_starts": "golf_core.eval.windows",
    "BpbSums": "golf_core.eval.bpb",
    "bpb": "golf_core.eval.bpb",
    "save_stats": "golf_core.eval.stats",
    "load_stats": "golf_core.eval.stats",
    "bpb_from_stats": "golf_core.eval.stats",
    "count_ttt_params": "golf_core.eval.ttt",
    "ngram_pass": "golf_core.eval.ngram",
    "NgramResult": "golf_core.eval.ngram",
    "mix_nll": "golf_core.eval.mix",
    "mix_bpb": "golf_core.eval.mix",
    "audit": "golf_core.eval.audit",
}

__all__ = ["EvalConfig", "EvalSpec", "MixerConfig", "TTTConfig", *_LAZY]

__getattr__ = lazy.getattr_of(__name__, _LAZY)
