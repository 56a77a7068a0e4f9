"""The training result: the keys every consumer (workers, MLflow logging, reports) relies on."""
from __future__ import annotations

import json
import math
from pathlib import Path

# docs/ARCHITECTURE.md's contract; run_training adds a few descriptive extras beside them.
RESULT_KEYS = (
    "val_bpb", "val_loss", "val_bpb_prequant", "val_loss_prequant", "artifact_bytes", "model_bytes",
    "code_bytes", "over_limit", "steps", "train_time_s", "step_avg_ms", "tokens_per_s", "peak_mem_bytes",
    "seed", "config", "code_version", "stopped_by", "world_size", "device", "train_loss_curve",
)


def _clean(v):
    """Strict JSON: non-finite floats become null (json.dumps would write bare NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write_result(out_dir: Path, result: dict) -> Path:
    missing = [k for k in RESULT_KEYS if k not in result]
    if missing:
        raise KeyError(f"training result lacks {missing}")
    path = Path(out_dir) / "result.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_clean(result), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)  # readers never see a half-written file
    return path
