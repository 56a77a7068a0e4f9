"""What a user sees around a spec: described schema fields, "did you mean" for a misspelt key,
`golf schema | head` ending quietly, and `golf plan` GPU counts taken from the spec."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from golf_core.cli import run_cli
from orchestrator.spec.sweep import parse_sweep
from orchestrator.spec.io import SpecError
from tests.orchestrator.spec.test_sweep import ROOT, SMOKE

GOLF = [sys.executable, "-m", "orchestrator.cli.main"]


def _properties(node, path=""):
    """(path, property schema) of every property in a JSON schema, nested ones included."""
    if isinstance(node, dict):
        for k, v in node.get("properties", {}).items():
            yield f"{path}.{k}", v
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from _properties(v, f"{path}/{k}")
    elif isinstance(node, list):
        for x in node:
            yield from _properties(x, path)


def test_every_schema_property_has_a_description(capsys):
    assert run_cli("golf", ("orchestrator.cli.spec",), ["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    props = list(_properties(schema))
    # every property is described, train.overrides' (RunConfig: model/train/quant/eval) included
    own = props
    assert len(own) >= 58
    missing = [p for p, v in own if not v.get("description")]
    assert not missing, missing
    bounded = {p.rsplit(".", 1)[-1] for p, v in own if "minimum" in v or "exclusiveMinimum" in v
               or any("minimum" in b or "exclusiveMinimum" in b for b in v.get("anyOf", []))}
    assert {"vocab_size", "synthetic_train_tokens", "seq_len", "chunk_tokens", "max_jobs"} <= bounded


@pytest.mark.parametrize("wrong, right", [
    ("alpha_base:", "alpah_base:"), ("seeds:", "sedes:"), ("stride:", "strid:"), ("retries:", "retry:")])
def test_unknown_key_says_did_you_mean(wrong, right):
    with pytest.raises(SpecError) as e:
        parse_sweep(SMOKE.read_text().replace(wrong, right, 1))
    line = next(ln for ln in e.value.lines if "unknown key" in ln)
    assert line.endswith(f"did you mean {wrong.rstrip(':')!r}?"), line


def test_unknown_key_far_from_any_gets_no_guess():
    with pytest.raises(SpecError) as e:
        parse_sweep(SMOKE.read_text() + "zzzqqq: 1\n")
    assert e.value.lines == ["zzzqqq: unknown key"]


def test_schema_into_a_closed_pipe_ends_quietly():
    p = subprocess.run(" ".join(GOLF) + " schema | head -1", shell=True, cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.stdout.strip() == "{" and "Broken pipe" not in p.stderr and "Error" not in p.stderr, p.stderr


def test_plan_shows_gpu_counts_from_the_spec(tmp_path, capsys):
    assert run_cli("golf", ("orchestrator.cli.spec",), ["plan", str(SMOKE), "--jobs",
                                                        "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"]) == 0
    out = capsys.readouterr().out
    assert "1 (cpu)" in out  # gpus_per_job: 1 on a preset pinned to the CPU, not "GPUs 0"
