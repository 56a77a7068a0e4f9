"""Frozen component configs and `section.key=value` overrides.

Every component keeps one frozen pydantic config beside its code (model/config.py,
train/config.py, ...). Spec files and `--set` flags map onto them 1:1, so a typo is an
error naming the field path, never a silently ignored knob.
"""
from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from golf_core.errors import UserError

T = TypeVar("T", bound=BaseModel)

# Upper bounds shared by the configs: every int has one, so a typo (an extra digit, 2**64)
# is refused when the config is built, never hours into a job.
MAX_SEED = 2**32 - 1  # numpy / torch seeds are 32-bit
MAX_TOKENS = 10**10  # > 100x FineWeb's 8B training tokens
MAX_STEPS = 10**9
MAX_SEQ = 2**20  # tokens per sequence / window
MAX_BATCH = 2**30  # tokens per batch
MAX_COUNT = 2**16  # layers, heads, ranks, sequences per batch, micro-batches
MAX_DIM = 2**16  # widths (and token ids: shards store uint16)


@functools.lru_cache(maxsize=None)
def _leaves(annotation: Any) -> frozenset:
    """The plain types a field's annotation admits (through Annotated, unions, containers;
    nested configs are leaves: they check their own fields)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaves(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return frozenset(type(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType, tuple, list, dict, set, frozenset):
        out: frozenset = frozenset()
        for a in typing.get_args(annotation):
            if a is not Ellipsis:
                out |= _leaves(a)
        return out
    return frozenset([annotation])


def _has_bool(value: Any, into_dicts: bool) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_bool(v, into_dicts) for v in value)
    if into_dicts and isinstance(value, dict):
        return any(_has_bool(k, into_dicts) or _has_bool(v, into_dicts) for k, v in value.items())
    return False


_RULES: dict[tuple[type, str], str | None] = {}


def _bool_rule(cls: type, name: str) -> str | None:
    """What `_bools_are_not_numbers` checks for one field, worked out once per (class, field)
    from its annotation (planning validates ~10^5 configs: issue 21): None = nothing, "bool" =
    must be a bool, "number" / "number_models" = no bool inside (into dicts unless models)."""
    key = (cls, name)
    if key in _RULES:
        return _RULES[key]
    field = cls.model_fields.get(name)
    rule: str | None = None
    if field is not None:
        leaves = _leaves(field.annotation)
        if Any in leaves or object in leaves:
            rule = None
        elif bool in leaves:
            rule = "bool" if leaves <= {bool, type(None)} else None
        elif leaves & {int, float}:  # str / Literal fields refuse a boolean by themselves
            models = any(isinstance(t, type) and issubclass(t, BaseModel) for t in leaves)
            rule = "number_models" if models else "number"
    _RULES[key] = rule
    return rule


class Frozen(BaseModel):
    """Base for every config: immutable, unknown keys rejected, floats finite (NaN/inf refused),
    and booleans kept apart from numbers both ways (pydantic's lax mode turns `true` into 1 and
    1 or "yes" into True; a typo must never become a knob value)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _bools_are_not_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        rule = _bool_rule(cls, info.field_name or "")
        if rule is None:
            return v
        if rule == "bool":
            if not isinstance(v, bool):
                raise PydanticCustomError("golf", "must be true or false (got {v})", {"v": repr(v)})
            return v
        t = type(v)
        if t is int or t is float or t is str:  # the common cases, decided at once
            return v
        if (t is tuple or t is list) and all(type(x) is int or type(x) is float for x in v):
            return v
        if _has_bool(v, into_dicts=rule == "number"):
            raise PydanticCustomError("golf", "must be a number, not true/false (got {v})", {"v": repr(v)})
        return v

    def fingerprint(self) -> str:
        """Stable hash of the config's content (sorted JSON)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ConfigError(UserError):
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
