"""bench/train_throughput.py on CPU: argument parsing, --dry-run, log parsing (no GPU runs)."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "bench" / "train_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fake_scripts(tmp_path):
    base, pr = tmp_path / "upstream.py", tmp_path / "pr779.py"
    base.write_text("print('baseline')\n")
    pr.write_text("print('pr779')\n")
    return base, pr


def test_dry_run_prints_plan_and_copies_scripts(bench, tmp_path, capsys):
    base, pr = _fake_scripts(tmp_path)
    work = tmp_path / "_upstream"
    rc = bench.main(["--upstream", str(base), "--pr779-script", str(pr), "--dry-run",
                     "--out", str(tmp_path / "out"), "--work", str(work), "--steps", "120"])
    assert rc == 0
    plan = json.loads(capsys.readouterr().out)
    runs = {(r["pair"], r["side"]): r for r in plan["runs"]}
    assert set(runs) == {(p, s) for p in ("baseline", "pr779") for s in ("ours", "upstream")}
    assert runs["baseline", "upstream"]["env"]["TRAIN_BATCH_TOKENS"] == "524288"
    assert runs["pr779", "upstream"]["env"]["TRAIN_BATCH_TOKENS"] == "786432"
    assert runs["pr779", "upstream"]["env"]["NUM_LAYERS"] == "11"
    assert runs["baseline", "upstream"]["env"]["MLP_MULT"] == "2"
    assert runs["baseline", "upstream"]["env"]["ITERATIONS"] == "120"
    assert runs["baseline", "upstream"]["env"]["WARMDOWN_ITERS"] == "0"  # same constant LR both sides
    ours = runs["pr779", "ours"]["cmd"]
    assert ours[1:5] == ["-m", "golf_core.train", "--preset", "pr779"] and "train.iterations=120" in ours
    assert (work / "train_gpt_baseline.py").read_text() == base.read_text()
    assert (work / "train_gpt_pr779.py").read_text() == pr.read_text()
    assert not (tmp_path / "out").exists()  # a dry run runs and writes nothing else


def test_dry_run_defaults_to_reference_scripts(bench, reference_dir, tmp_path, capsys, monkeypatch):
    """Without --upstream the scripts are $GOLF_REFERENCE_DIR's (the real upstream files)."""
    monkeypatch.setenv("GOLF_REFERENCE_DIR", str(reference_dir.root.parent))
    work = tmp_path / "_upstream"
    rc = bench.main(["--dry-run", "--out", str(tmp_path / "o"), "--work", str(work)])
    assert rc == 0
    assert (work / "train_gpt_baseline.py").read_bytes() == reference_dir.baseline_script.read_bytes()
    assert "def zeropower_via_newtonschulz5" in (work / "train_gpt_baseline.py").read_text()
    assert "BackoffNgramMixer" in (work / "train_gpt_pr779.py").read_text()


def test_no_upstream_and_no_reference_env_exit_2(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GOLF_REFERENCE_DIR", raising=False)
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--dry-run"])
    assert e.value.code == 2 and "GOLF_REFERENCE_DIR" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_dry_run_from_git_repo(bench, reference_dir, tmp_path, capsys):
    """--upstream as a git clone: the baseline comes out of `git show HEAD:train_gpt.py`."""
    repo = tmp_path / "parameter-golf"
    repo.mkdir()
    shutil.copyfile(reference_dir.baseline_script, repo / "train_gpt.py")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "train_gpt.py"], ["commit", "-qm", "upstream"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    (repo / "train_gpt.py").write_text("uncommitted edits are not what git show reads\n")
    work = tmp_path / "_upstream"
    rc = bench.main(["--upstream", str(repo), "--pairs", "baseline", "--dry-run", "--out", str(tmp_path / "o"),
                     "--work", str(work)])
    assert rc == 0
    assert (work / "train_gpt_baseline.py").read_bytes() == reference_dir.baseline_script.read_bytes()


@pytest.mark.parametrize("argv", [
    ["--steps", "5"],
    ["--steps", "100", "--loss-step", "105"],
    ["--pairs", "pr779"],  # no PR script and --upstream is a file
])
def test_bad_arguments_exit_2(bench, tmp_path, argv, monkeypatch):
    monkeypatch.delenv("GOLF_REFERENCE_DIR", raising=False)  # else pr779 defaults to the reference script
    base, _ = _fake_scripts(tmp_path)
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--upstream", str(base), *argv])
    assert e.value.code == 2


def test_bad_override_is_one_line_error(bench, tmp_path, capsys):
    base, _ = _fake_scripts(tmp_path)
    rc = bench.main(["--upstream", str(base), "--pairs", "baseline", "--dry-run", "--set", "train.bogus=1",
                     "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "train.bogus: unknown key" in capsys.readouterr().err


def test_without_gpu_says_so(bench, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    base, _ = _fake_scripts(tmp_path)
    rc = bench.main(["--upstream", str(base), "--pairs", "baseline", "--work", str(tmp_path / "w"),
                     "--out", str(tmp_path / "o")])
    assert rc == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_log_parsing_and_summary(bench):
    # upstream's format (and ours: golf_core.train.loop.print_progress writes the same)
    lines = ["step:1/30 train_loss:6.9000 train_time:500ms step_avg:500.00ms"]
    lines += [f"step:{s}/30 train_loss:{7 - s / 10:.4f} train_time:{500 + 100 * (s - 1)}ms step_avg:1.00ms"
              for s in (10, 20, 30)]
    lines += ["step:30/30 val_loss:3.0 val_bpb:1.5 train_time:3400ms step_avg:113.33ms",
              "peak memory allocated: 10548 MiB reserved: 11000 MiB"]
    s = bench.summarize(bench.parse_log(lines), loss_step=20)
    assert s["ms_per_step"] == pytest.approx(100.0)  # (3400 - 1400) / 20
    assert s["loss_at_step"] == pytest.approx(5.0) and s["last_step"] == 30
    assert s["peak_mem_bytes"] == 10548 * 2**20
    report = {"date": "2026-11-25", "gpu": "H100", "torch": "2.x", "pairs": {"baseline": {
        "tokens_per_step": 524288, "ratio": 1.02, "ours": s, "upstream": s}}}
    (row,) = bench.markdown_rows(report)
    assert "| baseline | 524,288 | 100.0 | 100.0 | 1.020 | 5.0000 | 5.0000 |" in row
