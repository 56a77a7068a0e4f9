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


def test_planning_and_the_driver_load_no_torch(tmp_path):
    """`golf plan` and a rerun where every job is reused load no torch (issue 21: ~250 MB of a
    ~600 MB rerun): the spec, the plan, the driver, the Ray launcher and the worker's module
    import it only where a job really runs (golf_core.data/model/quant resolve names lazily)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import orchestrator.cli.main, orchestrator.cli.run, orchestrator.run.driver, orchestrator.run.start\n"
        "import orchestrator.records.stats, workers.worker, workers.runner\n"
        "from orchestrator.plan.build import load_plan\n"
        "import golf_core.data, golf_core.model, golf_core.quant\n"
        "golf_core.data.DataConfig, golf_core.model.ModelConfig, golf_core.quant.QuantConfig\n"
        f"load_plan(Path({str(ROOT / 'experiments' / 'smoke.yaml')!r}), workspace=Path({str(tmp_path)!r}))\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "", f"torch loaded: {out.stdout.strip()[:200]}"
    # and the lazy names still resolve to the real objects
    lazy = subprocess.run([sys.executable, "-c", "import golf_core.model as m, golf_core.model.gpt as g; "
                           "print(m.GPT is g.GPT)"], capture_output=True, text=True, check=True)
    assert lazy.stdout.strip() == "True"
