"""golf_core.model: the GPT of the upstream baseline and of the PR #779 record stack."""
from golf_core.model.config import ModelConfig
from golf_core.model.gpt import CONTROL_TENSOR_PATTERNS, GPT, count_params, crownq_penalty, split_params

__all__ = ["CONTROL_TENSOR_PATTERNS", "GPT", "ModelConfig", "count_params", "crownq_penalty", "split_params"]
