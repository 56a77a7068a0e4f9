"""golf_core.model: the GPT of the upstream baseline and of the PR #779 record stack.

Names resolve lazily: golf_core.presets imports golf_core.model.config, and an eager package
would pull torch into every spec load, `golf plan` and rerun where nothing trains (issue 21).
"""
from __future__ import annotations

from golf_core import lazy

_LAZY = {
    "ModelConfig": "golf_core.model.config",
    "CONTROL_TENSOR_PATTERNS": "golf_core.model.gpt",
    "GPT": "golf_core.model.gpt",
    "count_params": "golf_core.model.gpt",
    "crownq_penalty": "golf_core.model.gpt",
    "split_params": "golf_core.model.gpt",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy.getattr_of(__name__, _LAZY)
