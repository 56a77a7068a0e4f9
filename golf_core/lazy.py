"""Package names that import their module on first use (PEP 562).

golf_core.data, .model, .quant and .eval export names whose modules pull torch; the spec, the
plan and a rerun where nothing runs import only their configs (issue 21). Each such package
holds `_LAZY = {"Name": "golf_core.pkg.module", ...}` (golf_core.version reads that map to count
`from golf_core.model import GPT` as an import of golf_core.model.gpt) and
`__getattr__ = lazy.getattr_of(__name__, _LAZY)`.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["getattr_of"]


def getattr_of(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module __getattr__ that resolves `names` (name -> module) by importing the module."""
    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
