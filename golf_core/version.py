"""Code versions that change only when the code a job runs changes.

A job's identity includes the version of the golf_core code it runs, so a result computed by
other code is never reused. Hashing raw source bytes (as golf did first) made a comment fix
invalidate every result in a user's MLflow store. Here a module's version is the hash of its
normalized AST (docstrings dropped; comments never reach the AST), and a job kind's version
covers only the golf_core modules its entry point imports, transitively, found statically.
marin versions its executor steps by what they depend on in the same spirit.
"""
from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

__all__ = ["ENTRY_POINTS", "kind_modules", "kind_version", "module_digest", "normalized_source", "version_of"]

_ROOT = Path(__file__).resolve().parent
_PKG = _ROOT.name  # "golf_core"

# What each job kind runs: the worker calls these modules' entry functions.
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "train": ("golf_core.train.loop",),            # run_training (+ the artifact it writes)
    "eval": ("golf_core.eval.run",),               # run_eval: neural pass, TTT, audit
    "mix": ("golf_core.eval.mix_dir",),            # mix_job: n-gram pass + mix + audit
}


def _path_of(module: str, root: Path = _ROOT) -> Path | None:
    """The source file of a golf_core module (a package's __init__.py) under `root`, or None."""
    parts = module.split(".")
    if parts[0] != _PKG:
        return None
    base = root.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized_source(text: str) -> str:
    """The AST of `text` without docstrings, as a canonical string (comments and layout gone)."""
    return ast.dump(_strip_docstrings(ast.parse(text)), annotate_fields=False, include_attributes=False)


@lru_cache(maxsize=512)
def _analyzed(text: str) -> tuple[str, tuple, dict]:
    """(sha256 of the normalized AST, the import statements, the lazy names) of one source, from
    one parse: every `golf plan` and `golf run` versions ~70 modules, and parsing each twice
    (once for its digest, once for its imports) was a sixth of `golf plan`'s CPU (issue 21).
    Lazy names: a package's module-level `_LAZY = {"name": "golf_core.pkg.module", ...}`, what
    its __getattr__ imports on first use (golf_core.data, .model, .quant, .eval, .train)."""
    tree = ast.parse(text)
    imports = tuple((0, None, tuple(a.name for a in node.names)) if isinstance(node, ast.Import)
                    else (node.level, node.module, tuple(a.name for a in node.names))
                    for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))
    lazy: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["_LAZY"] \
                and isinstance(node.value, ast.Dict):
            lazy = {k.value: v.value for k, v in zip(node.value.keys, node.value.values)
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
    dump = ast.dump(_strip_docstrings(tree), annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest(), imports, lazy


def _digest_text(text: str) -> str:
    return _analyzed(text)[0]


def module_digest(path: Path) -> str:
    """sha256 of a source file's normalized AST."""
    return _digest_text(path.read_text(encoding="utf-8"))


def _lazy_of(module: str, root: Path) -> dict[str, str]:
    """A package's lazy names (name -> the module that defines it); {} for anything else."""
    path = _path_of(module, root)
    if path is None or path.name != "__init__.py":
        return {}
    return _analyzed(path.read_text(encoding="utf-8"))[2]


def _imports(module: str, path: Path, root: Path) -> set[str]:
    """golf_core modules that `module` imports (absolute or relative; `from pkg import sub` too).

    A lazy package's names count as imports of the modules behind them: `from golf_core.model
    import GPT` imports golf_core.model.gpt, and a lazy package imported whole (`import
    golf_core.data`, `from golf_core import data`) may use any of its names. Being the parent of
    an imported module (golf_core.data of golf_core.data.config) runs only its __init__."""
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    found: set[str] = set()
    whole: set[str] = set()
    for level, module_name, names in _analyzed(path.read_text(encoding="utf-8"))[1]:
        if module_name is None and not level:  # `import a.b, c`
            found.update(names)
            whole.update(names)
            continue
        if level:
            base = here[: len(here) - level + 1] if level > 1 else here
            mod = ".".join(base + ([module_name] if module_name else []))
        else:
            mod = module_name or ""
        found.add(mod)
        lazy = _lazy_of(mod, root) if mod.split(".")[0] == _PKG else {}
        for a in names:
            sub = f"{mod}.{a}"
            found.add(sub)  # `from golf_core.eval import ngram`
            if sub.split(".")[0] == _PKG and _path_of(sub, root) is not None:
                whole.add(sub)
            elif a in lazy:
                found.add(lazy[a])
    for w in whole:
        if w.split(".")[0] == _PKG:
            found.update(_lazy_of(w, root).values())
    return {p for name in found if name.split(".")[0] == _PKG
            for p in _with_parents(name) if _path_of(p, root) is not None}


def kind_modules(kind: str, root: Path = _ROOT) -> tuple[str, ...]:
    """Every golf_core module (under `root`) a job of `kind` imports, transitively (sorted)."""
    if kind not in ENTRY_POINTS:
        raise KeyError(f"unknown job kind {kind!r} (known: {', '.join(sorted(ENTRY_POINTS))})")
    seen: set[str] = set()
    todo = [m for e in ENTRY_POINTS[kind] for m in _with_parents(e)]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = _path_of(mod, root)
        if path is not None:
            todo.extend(_imports(mod, path, root) - seen)
    return tuple(sorted(seen))


def _with_parents(module: str) -> list[str]:
    """a.b.c -> [a, a.b, a.b.c]: importing a.b.c runs a/__init__ and a/b/__init__ too."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def version_of(modules: tuple[str, ...] | list[str], root: Path = _ROOT) -> str:
    """12 hex chars over the normalized sources of `modules` (names included, sorted)."""
    h = hashlib.sha256()
    for mod in sorted(modules):
        path = _path_of(mod, root)
        if path is None:
            continue
        h.update(mod.encode())
        h.update(b"\0")
        h.update(module_digest(path).encode())
        h.update(b"\0")
    return h.hexdigest()[:12]


def kind_version(kind: str, root: Path = _ROOT) -> str:
    """The code version of a job kind: what its identity includes."""
    return version_of(kind_modules(kind, root), root)
