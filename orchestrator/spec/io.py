"""How a spec file becomes plain data, and how problems read: one line per problem.

A spec is data: `yaml.safe_load` semantics (no tags, no code, no `$ENV` interpolation) plus
duplicate keys rejected. Problems are pydantic errors rewritten as `field.path: message`, with
list indices as `[i]` and union tags (`<list>`, `<range>`...) dropped from the path.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from golf_core.cli import shown
from golf_core.config import ConfigError

MAX_SPEC_BYTES = 1_000_000
MAX_DEPTH = 64  # nesting levels; the deepest real spec uses 5
MAX_NODES = 1_000_000  # values after alias expansion


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
        msg += f" (got {shown(inp)})"
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
    """safe_load semantics, plus duplicate keys are an error (a typo must never pass silently),
    nesting is bounded (PyYAML composes recursively: 10,000 `[` would be a RecursionError) and
    so is the tree after aliases are expanded (a "billion laughs" spec is refused, not walked)."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    # Duplicates are looked for among the keys written in this mapping; keys a merge (`<<: *x`)
    # brings in may be overridden by them, as YAML's merge-key spec says.
    written = set()
    for k_node, _ in node.value:
        if k_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(k_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain value",
                                                    k_node.start_mark) from None
        if key in written:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k_node.start_mark)
        written.add(key)
    loader.flatten_mapping(node)  # merged keys first, then the written ones: the written win
    out = {}
    for k_node, v_node in node.value:
        out[loader.construct_object(k_node, deep=deep)] = loader.construct_object(v_node, deep=deep)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the tree with every alias expanded (memoized: aliases share node objects)."""
    memo: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in memo:
            return memo[id(node)]
        memo[id(node)] = MAX_NODES + 1  # a cycle (`&a [*a]`) counts as too large
        if isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            n = 1
        memo[id(node)] = n = min(n, MAX_NODES + 1)
        return n

    return size(root)


def parse_yaml(text: str) -> Any:
    """Plain data from YAML text; raises SpecError with one line (line number, problem)."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise SpecError([f"<spec>: larger than {MAX_SPEC_BYTES} bytes"])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise SpecError([f"<spec>: more than {MAX_NODES:,} values once aliases are expanded"])
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        problem = e.problem or str(e)
        if "constructor for the tag" in problem:
            problem = f"tags are not allowed, a spec is plain data ({problem})"
        raise SpecError([f"{where}: {problem}"]) from None
    except yaml.YAMLError as e:
        raise SpecError([f"<yaml>: {' '.join(str(e).split())}"]) from None
    except RecursionError:  # belt and braces: MAX_DEPTH keeps PyYAML well inside the stack
        raise SpecError([f"<spec>: nested deeper than {MAX_DEPTH} levels"]) from None
    finally:
        loader.dispose()


def read_spec(path: str | Path) -> str:
    """A spec file's text: the size is checked before reading (a 10 GB file or /dev/zero is
    refused, never loaded), and bytes that are not UTF-8 are an error naming the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"spec {p}: no such file")
    if p.stat().st_size > MAX_SPEC_BYTES:
        raise SpecError([f"<spec>: {p} is larger than {MAX_SPEC_BYTES:,} bytes"])
    with p.open("rb") as f:
        raw = f.read(MAX_SPEC_BYTES + 1)  # a file that grows while read is still bounded
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError([f"<spec>: {p} is larger than {MAX_SPEC_BYTES:,} bytes"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError([f"<spec>: {p} is not UTF-8 text (byte {raw[e.start]:#04x} at line {line})"]) from None
