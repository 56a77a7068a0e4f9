"""golf_core.quant: quantization, pruning, compression and the artifact on disk.

Names resolve lazily: golf_core.presets imports golf_core.quant.config, and an eager package
would pull torch into every spec load where nothing quantizes (issue 21).
"""
from __future__ import annotations

from golf_core import lazy

_LAZY = {
    "ArtifactError": "golf_core.quant.artifact",
    "ArtifactInfo": "golf_core.quant.artifact",
    "load_artifact": "golf_core.quant.artifact",
    "write_artifact": "golf_core.quant.artifact",
    "QuantConfig": "golf_core.quant.config",
    "dequantize_state_dict": "golf_core.quant.quantize",
    "quantize_state_dict": "golf_core.quant.quantize",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy.getattr_of(__name__, _LAZY)
