"""Training: Muon, the wallclock-capped (distributed) loop, `golf train`.

`run_training(cfg, data_dir, out_dir, on_progress=None) -> dict` is the entry point. It is
imported lazily: golf_core.presets imports golf_core.train.config, and the loop imports the
model, data, quant and eval packages, which import presets.
"""
from __future__ import annotations

__all__ = ["run_training"]


def __getattr__(name: str):
    if name == "run_training":
        from golf_core.train.loop import run_training

        return run_training
    raise AttributeError(f"module 'golf_core.train' has no attribute {name!r}")
