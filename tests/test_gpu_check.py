"""bench/gpu_check.sh: the GPU check's CPU rehearsal (--dry-run) end to end, its refusal without
a GPU, and its toy specs (same presets and model options as the GPU specs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _env(**extra) -> dict:
    return dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT), **extra)


def test_without_a_gpu_it_refuses_in_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the real check would run")
    p = subprocess.run(["bash", str(SCRIPT), "--out", str(tmp_path)], env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and p.stderr.strip() == "gpu_check: no CUDA GPU here (use --dry-run for the CPU rehearsal)"
    p = subprocess.run(["bash", str(SCRIPT), "--bogus"], env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown argument --bogus" in p.stderr


@pytest.mark.parametrize("spec", ["gpu_check", "gpu_check_pr779"])
def test_toy_specs_keep_presets_and_validate(spec, tmp_path):
    from bench.gpu_check import toy_spec
    from orchestrator.spec.sweep import load_sweep

    src = ROOT / "experiments" / f"{spec}.yaml"
    toy_spec(src, tmp_path / "toy.yaml")
    gpu, toy = load_sweep(src), load_sweep(tmp_path / "toy.yaml")
    assert toy.train.preset == gpu.train.preset
    assert gpu.run_config(1337).train.device == "cuda" and toy.run_config(1337).train.device == "cpu"
    assert set(toy.mixer.modes) == set(gpu.mixer.modes) >= {"hashed_target", "normalized"}
    assert toy.counts() == gpu.counts()
    if gpu.train.preset == "pr779":
        m = toy.run_config(1337).model
        assert m.xsa_last_n and m.bigram_vocab_size and m.value_embed and m.smear_gate


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path):
    results_md = ROOT / "bench" / "RESULTS.md"
    before = results_md.read_bytes()
    p = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)], env=_env(), cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert results_md.read_bytes() == before  # a dry run never writes RESULTS.md
    report = (tmp_path / "gpu_check_results.md").read_text()
    assert "DRY RUN" in report and "not GPU figures" in report
    rows = [ln for ln in report.splitlines() if ln.startswith("| baseline") or ln.startswith("| pr779")]
    assert len(rows) == 2 and all("| cpu |" in r for r in rows)
    assert "normalized" in report and "hashed_target" in report and "compliant: false" in report
    assert report.count("device=cpu") == 4  # two n-gram modes, two mix dtypes
    if os.environ.get("GOLF_REFERENCE_DIR"):
        assert (tmp_path / "bench" / "train_throughput_plan.json").is_file()
    else:
        assert "skipped: GOLF_REFERENCE_DIR" in report
