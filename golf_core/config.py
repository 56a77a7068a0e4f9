"""Frozen component configs and `section.key=value` overrides.

Every component keeps one frozen pydantic config beside its code (model/config.py,
train/config.py, ...). Spec files and `--set` flags map onto them 1:1, so a typo is an
error naming the field path, never a silently ignored knob.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound=BaseModel)


class Frozen(BaseModel):
    """Base for every config: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    def fingerprint(self) -> str:
        """Stable hash of the config's content (sorted JSON)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the field path."""


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """["train.seed=42", "mixer.orders=[2,3]"] -> {"train": {"seed": 42}, "mixer": {...}}.

    Values are parsed as YAML scalars/flow collections, so numbers, bools, lists work.
    """
    out: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        path, raw = item.split("=", 1)
        keys = [k for k in path.strip().split(".") if k]
        if not keys:
            raise ConfigError(f"--set {item!r}: empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({e.problem})") from None
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {k} is both a value and a section")
        node[keys[-1]] = value
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `over` wins. Neither input is modified."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem: 'mixer.buckets: must be a power of two (got 1000)'."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "__root__")
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        inp = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "missing") or isinstance(inp, dict) else f" (got {inp!r})"
        lines.append(f"{loc or '<root>'}: {msg}{shown}")
    return lines


def build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Validate `data` into `cls`, raising ConfigError with one line per problem."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError("; ".join(format_validation_error(e, prefix))) from None


def with_overrides(cfg: T, sets: list[str] | tuple[str, ...] | dict[str, Any]) -> T:
    """A copy of `cfg` with `section.key=value` overrides applied and re-validated."""
    over = parse_sets(list(sets)) if not isinstance(sets, dict) else sets
    merged = deep_merge(cfg.model_dump(mode="python"), over)
    return build(type(cfg), merged)
