"""How a spec file becomes plain data, and how problems read: one line per problem.

A spec is data: `yaml.safe_load` semantics (no tags, no code, no `$ENV` interpolation) plus
duplicate keys rejected. Problems are pydantic errors rewritten as `field.path: message`, with
list indices as `[i]` and union tags (`<list>`, `<range>`...) dropped from the path.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from golf_core.config import ConfigError

MAX_SPEC_BYTES = 1_000_000


class SpecError(ConfigError):
    """A bad spec; `lines` holds one line per problem, each naming the field path."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


# ---------------------------------------------------------------------------------------------
# error formatting

_MSG_REWRITES = (
    (re.compile(r"^Input should be greater than or equal to (.+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be less than or equal to (.+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be greater than (.+)$"), r"must be > \1"),
    (re.compile(r"^Input should be less than (.+)$"), r"must be < \1"),
    (re.compile(r"^Input should be a valid integer.*$"), "must be an integer"),
    (re.compile(r"^Input should be a valid number.*$"), "must be a number"),
    (re.compile(r"^Input should be a valid boolean.*$"), "must be true or false"),
    (re.compile(r"^Input should be a valid string.*$"), "must be a string"),
    (re.compile(r"^Input should be a valid (list|tuple|array).*$"), "must be a list"),
    (re.compile(r"^Input should be a valid dictionary.*$"), "must be a mapping"),
    (re.compile(r"^Input should be (.+)$"), r"must be \1"),
)


def clean_msg(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    for pat, rep in _MSG_REWRITES:
        if pat.match(msg):
            return pat.sub(rep, msg)
    return msg


def format_loc(loc: tuple) -> str:
    """('mixer', 'buckets', '<list>', 1) -> 'mixer.buckets[1]' (union tags `<...>` dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith("<") and part.endswith(">"):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("", "__root__"):
            out += f".{part}" if out else str(part)
    return out or "<spec>"


def error_message(e: dict) -> str:
    """The message part of one pydantic error, in our words."""
    typ, msg = e["type"], clean_msg(e["msg"])
    if typ == "extra_forbidden":
        return "unknown key"
    if typ == "missing":
        return "required"
    inp = e.get("input")
    if typ != "golf" and "(got" not in msg and not isinstance(inp, (dict, list, tuple)):
        msg += f" (got {inp!r})"
    return msg


def _branches(node: dict, defs: dict) -> list[dict]:
    """A schema node with $ref resolved and unions (anyOf/oneOf/allOf) spread into branches."""
    if "$ref" in node:
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    out = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, ()):
            out += _branches(sub, defs)
    return out


def keys_at(schema: dict, loc: tuple) -> list[str]:
    """The property names a JSON schema allows at `loc` (pydantic's error location)."""
    defs = schema.get("$defs", {})
    nodes = [schema]
    for part in loc:
        nxt = []
        for n in nodes:
            for b in _branches(n, defs):
                if isinstance(part, str) and part in b.get("properties", {}):
                    nxt.append(b["properties"][part])
                elif isinstance(part, int) and isinstance(b.get("items"), dict):
                    nxt.append(b["items"])
                elif isinstance(part, str) and isinstance(b.get("additionalProperties"), dict):
                    nxt.append(b["additionalProperties"])
        nodes = nxt
    return sorted({k for n in nodes for b in _branches(n, defs) for k in b.get("properties", {})})


def did_you_mean(schema: dict | None, loc: tuple) -> str:
    """`; did you mean 'alpha_base'?` for a misspelt key (difflib), else ''."""
    import difflib

    if not schema or not loc or not isinstance(loc[-1], str):
        return ""
    parent = tuple(p for p in loc[:-1] if not (isinstance(p, str) and p.startswith("<")))
    close = difflib.get_close_matches(loc[-1], keys_at(schema, parent), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_errors(err: ValidationError, schema: dict | None = None) -> list[str]:
    """One line per problem: `path: message (got value)`, duplicates removed. With the model's
    JSON schema, an unknown key gets the closest allowed one ("did you mean")."""
    lines: list[str] = []
    for e in err.errors():
        line = f"{format_loc(e['loc'])}: {error_message(e)}"
        if e["type"] == "extra_forbidden":
            line += did_you_mean(schema, tuple(e["loc"]))
        if line not in lines:
            lines.append(line)
    return lines


def fail(errors: list[tuple[tuple, str]], title: str) -> None:
    """Raise a ValidationError whose errors carry our own locations (merged by parents)."""
    raise ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError("golf", "{msg}", {"msg": msg}), loc=loc, input=None)
        for loc, msg in errors
    ])


def golf_error(msg: str) -> PydanticCustomError:
    return PydanticCustomError("golf", "{msg}", {"msg": msg})


# ---------------------------------------------------------------------------------------------
# loading


class _Loader(yaml.SafeLoader):
    """safe_load semantics, plus duplicate keys are an error (a typo must never pass silently)."""


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    out = {}
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                    k_node.start_mark) from None
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", k_node.start_mark)
        out[key] = loader.construct_object(v_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_yaml(text: str) -> Any:
    """Plain data from YAML text; raises SpecError with one line (line number, problem)."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise SpecError([f"<spec>: larger than {MAX_SPEC_BYTES} bytes"])
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        problem = e.problem or str(e)
        if "constructor for the tag" in problem:
            problem = f"tags are not allowed, a spec is plain data ({problem})"
        raise SpecError([f"{where}: {problem}"]) from None
    except yaml.YAMLError as e:
        raise SpecError([f"<yaml>: {e}"]) from None
