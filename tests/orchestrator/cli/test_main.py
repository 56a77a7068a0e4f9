"""`golf`'s error contract (golf_core.cli.run_cli): a user's error is one line, exit 2; a bug,
a plain ValueError included, keeps its traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from golf_core.errors import UserError
from orchestrator.cli.main import main
from orchestrator.spec.io import SpecError
from tests.orchestrator.spec.test_sweep import SMOKE

ROOT = Path(__file__).resolve().parents[3]

# `golf plan SPEC` whose plan building fails the way the test says (build_plan is what
# cmd_plan calls once the spec parsed), through the real `golf` entry point
FAULTY = """
import sys
import orchestrator.plan.build as build
from orchestrator.spec.io import SpecError

def fail(*a, **k):
    if sys.argv[1] == "spec":
        raise SpecError(["data.path: no such thing"])
    raise ValueError("internal: a bug, not the user's input")

build.build_plan = fail
from orchestrator.cli.main import main
sys.exit(main(["plan", sys.argv[2]]))
"""


def _golf_plan(kind: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", FAULTY, kind, str(SMOKE)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_a_spec_error_is_one_line_exit_2_and_an_internal_value_error_keeps_its_traceback():
    user = _golf_plan("spec")
    assert user.returncode == 2 and user.stderr.strip() == "golf: error: data.path: no such thing", user.stderr
    bug = _golf_plan("internal")
    assert bug.returncode == 1, bug.stderr
    assert bug.stderr.startswith("Traceback (most recent call last):"), bug.stderr
    assert "in fail" in bug.stderr  # where the bug is: the frame that raised it
    assert bug.stderr.strip().endswith("ValueError: internal: a bug, not the user's input")


def test_every_project_error_type_is_a_user_error(monkeypatch, capsys):
    """The project's own input-error types are one line; a plain ValueError is not caught."""
    import orchestrator.plan.build as build
    from golf_core.config import ConfigError
    from golf_core.data.shards import ShardError
    from golf_core.data.synthetic import DataDirError
    from golf_core.quant.artifact import ArtifactError
    from orchestrator.run.lease import LeaseHeld

    for cls in (SpecError, ConfigError, ShardError, DataDirError, ArtifactError, LeaseHeld):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError), cls

    def fail(*a, **k):
        raise ShardError("fineweb_val_000000.bin: empty shard")

    monkeypatch.setattr(build, "build_plan", fail)
    assert main(["plan", str(SMOKE)]) == 2
    assert capsys.readouterr().err == "golf: error: fineweb_val_000000.bin: empty shard\n"

    def bug(*a, **k):
        raise ValueError("internal")

    monkeypatch.setattr(build, "build_plan", bug)
    with pytest.raises(ValueError, match="internal"):
        main(["plan", str(SMOKE)])
