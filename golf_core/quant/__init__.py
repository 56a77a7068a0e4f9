"""golf_core.quant: quantization, pruning, compression and the artifact on disk."""
from golf_core.quant.artifact import ArtifactError, ArtifactInfo, load_artifact, write_artifact
from golf_core.quant.config import QuantConfig
from golf_core.quant.quantize import dequantize_state_dict, quantize_state_dict

__all__ = ["ArtifactError", "ArtifactInfo", "QuantConfig", "dequantize_state_dict", "load_artifact",
           "quantize_state_dict", "write_artifact"]
