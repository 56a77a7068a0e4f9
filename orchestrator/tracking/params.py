"""Turn configs and run facts into values MLflow accepts (keys, lengths, flat dotted params).

MLflow rejects a whole log_batch call when one key is malformed or one param value is too long
(and the server silently truncates over-long values, which would make a replayed batch differ
from the stored one). Everything is made valid here, on the caller's side, before it is queued.
"""
from __future__ import annotations

import functools
import json
import posixpath
import re
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any, Mapping

__all__ = [
    "MAX_KEY_LEN", "MAX_PARAM_VALUE_LEN", "MAX_TAG_VALUE_LEN",
    "clean_key", "clean_metrics", "clean_params", "clean_tags", "flatten_params", "system_tags",
]

# mlflow.utils.validation (3.17): MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH
MAX_KEY_LEN = 250
MAX_PARAM_VALUE_LEN = 6000
MAX_TAG_VALUE_LEN = 8000
_TRUNCATED = "...[truncated]"
# alphanumerics, underscores, dashes, periods, spaces, slashes (colons are not valid on Windows
# servers, so they are replaced too)
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- ]")


def clean_key(key: Any) -> str:
    """A key MLflow accepts: allowed characters only, no path tricks, at most 250 chars."""
    if isinstance(key, str):  # a sweep repeats the same few dozen keys on every run
        return _clean_str_key(key)
    return _clean_str_key(str(key))


@functools.lru_cache(maxsize=4096)
def _clean_str_key(key: str) -> str:
    k = _BAD_KEY_CHARS.sub("_", key).strip()
    # MLflow treats names as paths: "a//b", "a/", "./a", "/a" would resolve to other names
    parts = [p for p in k.split("/") if p not in ("", ".", "..")]
    k = "/".join(parts) or "_"
    if posixpath.normpath(k) != k:  # pragma: no cover - guarded by the split above
        k = k.replace("/", "_")
    return k[:MAX_KEY_LEN]


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - len(_TRUNCATED)] + _TRUNCATED


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value).lower() if isinstance(value, bool) else "null"  # JSON's spelling
    if isinstance(value, (int, float)):
        return repr(value)
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dict -> {"model.num_layers": "11", ...}.

    Lists and tuples stay one param (JSON), since their length is part of the value; an empty
    dict becomes "{}" so the key still shows that the section exists.
    """
    out: dict[str, str] = {}
    for k, v in config.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        t = type(v)
        # the common types first, by exact type (isinstance against typing's Mapping is an ABC
        # check: 150,000 of them cost ~0.3 s in a 50,000-job plan, issue 21); same strings as _to_str
        if t is str:
            out[key] = v
            continue
        if t is float or t is int:
            out[key] = repr(v)
            continue
        if t is bool or v is None:
            out[key] = _to_str(v)
            continue
        if t is list or t is tuple:
            out[key] = _seq_str(v)
            continue
        if t is dict:
            if v:
                out.update(flatten_params(v, key))
            else:
                out[key] = "{}"
            continue
        if hasattr(v, "model_dump"):  # a pydantic config
            v = v.model_dump(mode="json")
        if isinstance(v, Mapping):
            if v:
                out.update(flatten_params(v, key))
            else:
                out[key] = "{}"
        elif isinstance(v, (list, tuple)):
            out[key] = _seq_str(v)
        else:
            out[key] = _to_str(v)
    return out


_SEQ: dict[tuple, str] = {}


def _seq_str(v: list | tuple) -> str:
    """A list param's JSON, made once per distinct value (a plan repeats the same `orders` and
    `primes` in every one of its 50,000 mix jobs: issue 21). Keyed with each item's type, so
    [1, 2] and [1.0, 2.0] stay apart."""
    try:
        key = (tuple(v), tuple(map(type, v)))  # C-speed: no per-item pair (issue 21)
        hit = _SEQ.get(key)
    except TypeError:  # nested lists, dicts: not hashable, serialized each time
        return _to_str(list(v))
    if hit is None:
        if len(_SEQ) > 4096:
            _SEQ.clear()
        hit = _SEQ[key] = _to_str(list(v))
    return hit


def clean_params(params: Mapping[str, Any]) -> dict[str, str]:
    flat = flatten_params(params)
    return {clean_key(k): _truncate(v, MAX_PARAM_VALUE_LEN) for k, v in flat.items()}


def clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    return {clean_key(k): _truncate(_to_str(v), MAX_TAG_VALUE_LEN) for k, v in tags.items()}


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numeric values only (bool -> 0/1); anything else is a caller bug and raises TypeError."""
    out = {}
    for k, v in metrics.items():
        if hasattr(v, "item"):  # numpy / torch scalars
            v = v.item()
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)):
            raise TypeError(f"metric {k!r} must be a number, got {type(v).__name__}")
        out[clean_key(k)] = float(v)  # NaN / inf are accepted: the SQL store encodes them
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@lru_cache(maxsize=1)
def _gpu_name() -> str:
    """GPU 0's name, or "cpu". Asks torch only when it is loaded already (importing it costs
    seconds in a driver that may never need it), else nvidia-smi."""
    try:
        torch = sys.modules.get("torch")
        if torch is not None:
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        names = out.stdout.strip().splitlines()
        if out.returncode == 0 and names:
            return names[0].strip()
    except Exception:  # noqa: BLE001 - no driver, no nvidia-smi, a broken CUDA setup
        pass
    return "cpu"


@lru_cache(maxsize=1)
def system_tags() -> dict[str, str]:
    """What made a run (STYLE.md rule 6): golf_core code version, library versions, GPU.

    Taken on the process that logs (the driver); a worker on another node may override
    `golf.gpu` with what it saw, through RunHandle.set_tags.
    """
    import golf_core

    return {
        "golf.code_version": golf_core.code_version(),
        "golf.python_version": sys.version.split()[0],
        "golf.torch_version": _version("torch"),
        "golf.ray_version": _version("ray"),
        "golf.mlflow_version": _version("mlflow"),
        "golf.gpu": _gpu_name(),
    }
