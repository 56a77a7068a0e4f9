"""The artifact on disk: `model.ptz` (compressed quantized weights + the model config) and
`artifact.json` (byte accounting, limit verdict, run config, quant stats).

The challenge counts code bytes + compressed model bytes against 16,000,000 (decimal). An
over-limit artifact is still written and reported (`over_limit: true`), never hidden.
"""
from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

import golf_core
from golf_core.config import build
from golf_core.model.config import ModelConfig
from golf_core.model.gpt import GPT
from golf_core.quant.compress import MAX_LEVEL, MAX_OUTPUT_BYTES, CompressionError, compress, decompress, detect
from golf_core.quant.quantize import dequantize_state_dict, quantize_state_dict
from golf_core.errors import UserError

if TYPE_CHECKING:  # presets imports quant.config, so quant must not import presets at load time
    from golf_core.presets import RunConfig

MODEL_FILE = "model.ptz"
INFO_FILE = "artifact.json"
PAYLOAD_FORMAT = "golf_artifact_v1"


class ArtifactError(UserError):
    """A missing or unreadable artifact; the message names the file and the problem."""


@dataclass(frozen=True)
class ArtifactInfo:
    model_bytes: int
    code_bytes: int
    artifact_bytes: int
    over_limit: bool
    limit_bytes: int
    code_version: str
    compressor: str
    run_config: dict[str, Any]
    quant_stats: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # where it was read from / written to; not stored (artifacts move)

    def to_dict(self) -> dict[str, Any]:
        """What artifact.json holds (everything but `path`)."""
        d = asdict(self)
        d.pop("path")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactInfo":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def code_bytes_upper_bound() -> int:
    """Sum of every golf_core source file's bytes: what an unpacked copy of the package weighs."""
    return sum(len(p.read_bytes()) for p in golf_core.source_files())


def code_bytes_for(run_cfg: "RunConfig") -> int:
    """UTF-8 bytes of the single-file train_gpt.py a submission of this run would ship.

    golf_core.export builds it (the package embedded xz-compressed, the config baked in); we
    export it for this run config with the default evaluation around run_cfg.eval. A record's
    script bakes its own EvalSpec in, which differs by the size of that JSON (a few hundred
    bytes), so this is exact up to that. (Before the exporter existed this was the sum of the
    golf_core sources, code_bytes_upper_bound(), about 2.8x larger.)
    """
    from golf_core.eval.config import EvalSpec
    from golf_core.export import export_script

    return len(export_script(run_cfg, EvalSpec(eval=run_cfg.eval)).encode("utf-8"))


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def build_payload(model: nn.Module, model_cfg: ModelConfig, quant_cfg) -> tuple[bytes, dict]:
    """(uncompressed model.ptz payload, quant stats): the quantized state dict and the model config,
    torch.save'd (readable with weights_only=True)."""
    t0 = time.perf_counter()
    sd = _unwrap(model).state_dict()
    obj, stats = quantize_state_dict(sd, quant_cfg, num_layers=model_cfg.num_layers)
    buf = io.BytesIO()
    torch.save({"format": PAYLOAD_FORMAT, "model": json.dumps(model_cfg.model_dump(mode="json")), "quant": obj}, buf)
    raw = buf.getvalue()
    stats.update(raw_bytes=len(raw), quantize_s=round(time.perf_counter() - t0, 3))
    return raw, stats


def serialize(model: nn.Module, model_cfg: ModelConfig, quant_cfg) -> tuple[bytes, dict]:
    """(compressed model.ptz blob, stats)."""
    raw, stats = build_payload(model, model_cfg, quant_cfg)
    t1 = time.perf_counter()
    if quant_cfg.compressor == "best":
        # Every compressor at its max level, keep the smallest (the reader detects which by magic).
        blobs = {name: compress(raw, name, None) for name in MAX_LEVEL}
        stats["bytes_by_compressor"] = {k: len(v) for k, v in blobs.items()}
        blob = min(blobs.values(), key=len)
    else:
        blob = compress(raw, quant_cfg.compressor, quant_cfg.level)
    stats.update(compress_s=round(time.perf_counter() - t1, 3))
    return blob, stats


def max_model_bytes() -> int:
    """The decompressed-size bound for model.ptz ($GOLF_MAX_MODEL_BYTES, default 512 MiB)."""
    v = os.environ.get("GOLF_MAX_MODEL_BYTES", "").strip()
    return int(v) if v.isdigit() else MAX_OUTPUT_BYTES


def deserialize(blob: bytes, name: str = MODEL_FILE) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(model config, dequantized float state dict) from a model.ptz blob. Anything wrong with
    the blob (unknown, truncated or corrupt compression, a decompression bomb, a pickle that is
    not plain tensors, a payload of another shape) is an ArtifactError naming `name`."""
    try:
        raw = decompress(blob, max_model_bytes())
    except CompressionError as e:
        raise ArtifactError(f"{name}: {e}") from None
    try:
        # weights_only: torch's restricted unpickler, so a pickle that would run code is refused
        # before any of it runs (model.ptz files come from other people)
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, zip errors...
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ArtifactError(f"{name}: not a loadable model payload ({why})") from None
    if not isinstance(payload, dict) or payload.get("format") != PAYLOAD_FORMAT:
        raise ArtifactError(f"{name}: not a {PAYLOAD_FORMAT} payload")
    try:
        model_cfg = build(ModelConfig, json.loads(payload["model"]), prefix="model")
        return model_cfg, dequantize_state_dict(payload["quant"])
    except ValueError as e:  # a ConfigError names the field
        raise ArtifactError(f"{name}: {str(e).splitlines()[0]}") from None
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as e:
        raise ArtifactError(f"{name}: malformed payload ({type(e).__name__}: {str(e)[:200]})") from None


def write_artifact(model: nn.Module, run_cfg: "RunConfig", out_dir: str | Path,
                   limit_bytes: int | None = None, code_bytes: int | None = None) -> ArtifactInfo:
    """Write out_dir/model.ptz and out_dir/artifact.json; return what artifact.json holds.
    `code_bytes`: the size of the script that ships with the model (default code_bytes_for)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limit = golf_core.ARTIFACT_LIMIT_BYTES if limit_bytes is None else limit_bytes
    blob, stats = serialize(model, run_cfg.model, run_cfg.quant)
    tmp = out / (MODEL_FILE + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, out / MODEL_FILE)
    model_bytes = (out / MODEL_FILE).stat().st_size
    if code_bytes is None:
        code_bytes = code_bytes_for(run_cfg)
    total = model_bytes + code_bytes
    info = ArtifactInfo(
        model_bytes=model_bytes, code_bytes=code_bytes, artifact_bytes=total, over_limit=total > limit,
        limit_bytes=limit, code_version=golf_core.code_version("train"), compressor=detect(blob),
        run_config=run_cfg.model_dump(mode="json"), quant_stats=stats, path=str(out),
    )
    tmp = out / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    os.replace(tmp, out / INFO_FILE)
    return info


def read_info(artifact_dir: str | Path) -> ArtifactInfo:
    p = Path(artifact_dir) / INFO_FILE
    if not p.is_file():
        raise ArtifactError(f"{p}: missing (not an artifact directory)")
    try:
        return ArtifactInfo.from_dict({**json.loads(p.read_text()), "path": str(Path(artifact_dir))})
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise ArtifactError(f"{p}: unreadable ({str(e)[:200]})") from None


def load_artifact(artifact_dir: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, "RunConfig", ArtifactInfo]:
    """The roundtrip: decompress -> dequantize -> GPT(run_config.model) -> load weights (eval mode)."""
    from golf_core.presets import RunConfig

    info = read_info(artifact_dir)
    run_cfg = build(RunConfig, info.run_config)
    mp = Path(artifact_dir) / MODEL_FILE
    if not mp.is_file():
        raise ArtifactError(f"{mp}: missing")
    model_cfg, sd = deserialize(mp.read_bytes(), str(mp))
    if model_cfg != run_cfg.model:
        raise ArtifactError(f"{mp}: model config differs from {INFO_FILE}'s run_config.model")
    model = GPT(model_cfg)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # missing / unexpected keys, wrong shapes
        raise ArtifactError(f"{mp}: weights do not fit the model ({str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), run_cfg, info
