"""Guard tests for the architecture: golf_core imports no ray, mlflow, workers or orchestrator;
workers import no orchestrator."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import golf_core

FORBIDDEN = ("ray", "mlflow", "workers", "orchestrator")


ROOT = Path(golf_core.__file__).resolve().parent.parent


def _offenders(paths, forbidden) -> list[str]:
    offenders = []
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                if n.split(".")[0] in forbidden:
                    offenders.append(f"{path.name}:{node.lineno} imports {n}")
    return offenders


def test_golf_core_sources_import_no_upper_layer():
    offenders = _offenders(golf_core.source_files(), FORBIDDEN)
    assert not offenders, offenders


def test_workers_never_import_orchestrator():
    paths = sorted((ROOT / "workers").rglob("*.py"))
    assert paths
    offenders = _offenders(paths, ("orchestrator",))
    assert not offenders, offenders


def test_the_guard_sees_an_offending_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom orchestrator.plan.build import Job\n")
    assert _offenders([bad], ("orchestrator",)) == ["bad.py:2 imports orchestrator.plan.build"]


def test_importing_every_golf_core_module_loads_no_ray_or_mlflow():
    root = Path(golf_core.__file__).parent
    mods = []
    for p in golf_core.source_files():
        rel = p.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.append(".".join(parts))
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"golf_core pulled in: {out.stdout.strip()}"
