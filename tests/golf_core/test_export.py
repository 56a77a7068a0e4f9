"""golf_core.export: the self-contained train_gpt.py of a record folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import golf_core
from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig
from golf_core.export import export_script, write_script
from golf_core.presets import load_preset


def test_pr779_script_compiles_is_deterministic_and_smaller_than_the_bound():
    run = load_preset("pr779")
    text = export_script(run, EvalSpec(eval=run.eval), title="pr779")
    compile(text, "train_gpt.py", "exec")
    assert export_script(run, EvalSpec(eval=run.eval), title="pr779") == text  # reproducible bytes
    size = len(text.encode("utf-8"))
    bound = sum(len(p.read_bytes()) for p in golf_core.source_files())
    assert 0 < size < bound  # compressed sources + config: below the sum of the sources
    assert f'CODE_VERSION = "{golf_core.code_version()}"' in text
    assert text.isascii()


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "PYTHONPATH")}
    env.update(GOLF_RECORD_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    return env


def test_unpacked_sources_are_golf_core_at_this_code_version(tmp_path):
    script = tmp_path / "train_gpt.py"
    write_script(script, load_preset("tiny"))
    out = subprocess.run([sys.executable, str(script), "--unpack", str(tmp_path / "src")], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    root = Path(golf_core.__file__).resolve().parent
    for p in golf_core.source_files():
        assert (tmp_path / "src" / "golf_core" / p.relative_to(root)).read_bytes() == p.read_bytes()
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import golf_core; "
             "print(golf_core.code_version(), golf_core.__file__)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "src")], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    version, where = out.stdout.split()
    assert version == golf_core.code_version()
    assert where.startswith(str(tmp_path / "src"))


def test_exported_script_trains_and_evaluates_tiny_on_cpu(tmp_path, synthetic_data_dir):
    run = load_preset("tiny", {"train": {"iterations": 3}, "eval": {"stride": 128}})
    spec = EvalSpec(eval=EvalConfig(seq_len=128, stride=128, batch_seqs=32, chunk_tokens=16384),
                    mixer=MixerConfig(mode="normalized", orders=(2, 3), buckets=1 << 14))
    script = tmp_path / "record" / "train_gpt.py"
    script.parent.mkdir()
    write_script(script, run, spec, title="tiny export test")
    # run from inside the record folder, as upstream requires
    out = subprocess.run([sys.executable, "train_gpt.py", "--data", str(synthetic_data_dir), "--out", "out",
                          "--seed", "7"], cwd=script.parent, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout[out.stdout.index("{\n"):])
    assert summary["train"]["steps"] == 3
    assert summary["train"]["val_bpb"] > 0 and summary["eval"]["val_bpb"] > 0
    assert summary["eval"]["ratio_scored"] == pytest.approx(1.0)
    result = json.loads((script.parent / "out" / "train" / "result.json").read_text())
    assert result["seed"] == 7 and result["config"]["train"]["iterations"] == 3
    assert result["code_version"] == golf_core.code_version()  # ran the embedded copy of this golf_core
    assert (script.parent / "out" / "eval" / "result.json").is_file()
