"""`golf export RUN_DIR --out DIR`: a trained run's config as train_gpt.py + requirements.txt."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from golf_core.cli import main
from golf_core.eval.config import EvalConfig, EvalSpec
from golf_core.export import REQUIREMENTS
from golf_core.presets import load_preset
from golf_core.train import run_training


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_data_dir):
    out = tmp_path_factory.mktemp("run")
    cfg = load_preset("tiny", {"train": {"iterations": 2, "seed": 5}, "model": {"num_layers": 1}})
    run_training(cfg, synthetic_data_dir, out, on_progress=lambda e: None)
    return out


def _baked(script) -> dict:
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "GOLF_RECORD_CACHE": str(script.parent / "c")}
    out = subprocess.run([sys.executable, str(script), "--print-config"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_export_writes_the_runs_config_and_refuses_to_overwrite(run_dir, tmp_path, capsys):
    dest = tmp_path / "sub"
    assert main(["export", str(run_dir), "--out", str(dest)]) == 0
    said = capsys.readouterr().out
    assert "readable" in said and "compressed" in said
    assert (dest / "requirements.txt").read_text().split() == list(REQUIREMENTS)
    baked = _baked(dest / "train_gpt.py")
    saved = json.loads((run_dir / "artifact.json").read_text())["run_config"]
    assert baked["run"] == saved and baked["run"]["train"]["seed"] == 5 and baked["eval"] is None
    size = (dest / "train_gpt.py").stat().st_size
    assert f"{size:,} bytes" in said
    # a second export does not replace the files without --force
    (dest / "train_gpt.py").write_text("# mine\n")
    assert main(["export", str(run_dir), "--out", str(dest)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (dest / "train_gpt.py").read_text() == "# mine\n"
    assert main(["export", str(run_dir), "--out", str(dest), "--force", "--compressed"]) == 0
    assert (dest / "train_gpt.py").stat().st_size < size / 2


def test_export_with_an_evaluation_bakes_its_spec(run_dir, tmp_path):
    ev = tmp_path / "eval"
    ev.mkdir()
    spec = EvalSpec(eval=EvalConfig(seq_len=128, stride=32))
    (ev / "result.json").write_text(json.dumps({"val_bpb": 1.0, "spec": spec.model_dump(mode="json")}))
    assert main(["export", str(run_dir), "--eval", str(ev), "--out", str(tmp_path / "s")]) == 0
    assert _baked(tmp_path / "s" / "train_gpt.py")["eval"] == spec.model_dump(mode="json")


def test_export_of_a_dir_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "artifact.json" in err
    assert not (tmp_path / "o").exists()
