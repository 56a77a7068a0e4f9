"""Hostile specs, each made from experiments/smoke.yaml: refused by `golf validate`, `golf plan`
and `golf run` alike, with one line naming the field, exit 2, before any work.

The three commands run in-process through the real `golf` dispatcher (orchestrator.cli.main.main);
test_the_console_entry_behaves_the_same runs the installed entry point on two of them.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.main import main
from orchestrator.spec.sweep import load_sweep
from tests.orchestrator.spec.test_sweep import edit, to_yaml

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "experiments" / "smoke.yaml"
NAN, INF = math.nan, math.inf


def both(*mutators):
    def apply(d):
        for m in mutators:
            m(d)
    return apply


def RANDOM(d):  # a fresh dict each time: edit() below mutates it
    d["search"] = {"kind": "random", "n": 4}

# (id, a mutator of smoke.yaml or the spec's text/bytes, the field named in the line, a phrase)
HOSTILE = [
    # NaN / inf in float fields, at every depth
    ("nan-entropy-slope", edit(**{"mixer.entropy_slope": NAN}), "mixer.entropy_slope", "finite"),
    ("inf-entropy-center", edit(**{"mixer.entropy_center": -INF}), "mixer.entropy_center", "finite"),
    ("inf-in-axis", edit(**{"mixer.alpha_base": [0.1, INF]}), "mixer.alpha_base[1]", "finite"),
    ("nan-in-range", both(RANDOM, edit(**{"mixer.alpha_base": {"low": NAN, "high": 0.2}})),
     "mixer.alpha_base.low", "finite"),
    ("nan-centers", edit(**{"mixer.entropy_centers": {2: NAN, 3: 4.0, 4: 4.0, 5: 4.0}}),
     "mixer.entropy_centers", "finite"),
    ("nan-temperature", edit(**{"eval.temperature": NAN}), "eval.temperature", "finite"),
    ("nan-ttt-lr", edit(**{"eval.ttt.lr": NAN}), "eval.ttt.lr", "finite"),
    ("inf-wallclock", edit(**{"train.max_wallclock_seconds": INF}), "train.max_wallclock_seconds", "finite"),
    ("inf-override-lr", edit(**{"train.overrides.train.matrix_lr": INF}), "train.overrides.train.matrix_lr",
     "finite"),
    ("nan-eval-seconds", edit(**{"eval.max_eval_seconds": NAN}), "eval.max_eval_seconds", "finite"),
    ("nan-as-text", SMOKE.read_text().replace("entropy_slope: 2.0", "entropy_slope: .NaN"),
     "mixer.entropy_slope", "finite"),
    # seeds outside 0..2^32-1
    ("seed-2^64", edit(**{"train.seeds": [1337, 2**64]}), "train.seeds[1]", "must be <= 4294967295"),
    ("seed-negative", edit(**{"train.seeds": [-1]}), "train.seeds[0]", "must be >= 0"),
    ("search-seed", both(RANDOM, edit(**{"search.seed": 2**32}), edit(**{"mixer.alpha_base": {"low": 0, "high": 0.2}})),
     "search.seed", "must be <= 4294967295"),
    ("synthetic-seed", edit(**{"data.synthetic_seed": 2**32}), "data.synthetic_seed", "must be <= 4294967295"),
    # upper bounds on ints
    ("buckets-2^31", edit(**{"mixer.buckets": 2**31}), "mixer.buckets", "must be <= 1073741824"),
    ("buckets-axis-2^40", edit(**{"mixer.buckets": [1024, 2**40]}), "mixer.buckets[1]", "must be <="),
    ("synthetic-tokens", edit(**{"data.synthetic_train_tokens": 10**11}), "data.synthetic_train_tokens",
     "must be <= 10000000000"),
    ("synthetic-val-zero", edit(**{"data.synthetic_val_tokens": 0}), "data.synthetic_val_tokens", "must be >= 1"),
    ("data-vocab", edit(**{"data.vocab_size": 70_000}), "data.vocab_size", "must be <= 65536"),
    ("eval-batch", edit(**{"eval.batch_seqs": 10**9}), "eval.batch_seqs", "must be <= 65536"),
    ("train-batch", edit(**{"train.overrides.train.train_batch_tokens": 2**40}),
     "train.overrides.train.train_batch_tokens", "must be <="),
    ("iterations", edit(**{"train.overrides.train.iterations": 10**12}), "train.overrides.train.iterations",
     "must be <="),
    ("num-layers", edit(**{"train.overrides.model.num_layers": 10**7}), "train.overrides.model.num_layers",
     "must be <="),
    ("retries", edit(retries=10**6), "retries", "must be <= 100"),
    ("gpus", edit(**{"train.gpus_per_job": 10**6}), "train.gpus_per_job", "must be <= 4096"),
    ("ttt-epochs", edit(**{"eval.ttt.epochs": 10**6}), "eval.ttt.epochs", "must be <= 1000"),
    ("search-n", both(RANDOM, edit(**{"search.n": 10**9})), "search.n", "must be <= 100000"),
    ("max-jobs", edit(**{"limits.max_jobs": 10**9}), "limits.max_jobs", "must be <= 100000"),
    ("chunk-tokens", edit(**{"eval.chunk_tokens": 10**12}), "eval.chunk_tokens", "must be <="),
    ("warmup-tokens", edit(**{"mixer.warmup_tokens": 10**12}), "mixer.warmup_tokens", "must be <="),
    ("seq-len", edit(**{"eval.seq_len": 2**30}), "eval.seq_len", "must be <="),
    ("wallclock-huge", edit(**{"train.max_wallclock_seconds": 1e300}), "train.max_wallclock_seconds", "must be <="),
    # booleans are not numbers, numbers are not booleans
    ("bool-min-count", edit(**{"mixer.min_count": True}), "mixer.min_count", "not true/false"),
    ("bool-retries", edit(retries=True), "retries", "not true/false"),
    ("bool-seed", edit(**{"train.seeds": [True]}), "train.seeds", "not true/false"),
    ("bool-stride", edit(**{"eval.stride": True}), "eval.stride", "not true/false"),
    ("bool-in-axis", edit(**{"mixer.alpha_base": [False, 0.1]}), "mixer.alpha_base", "not true/false"),
    ("bool-override", edit(**{"train.overrides.train.iterations": False}), "train.overrides.train.iterations",
     "not true/false"),
    ("int-as-bool", edit(**{"eval.ttt.enabled": 1}), "eval.ttt.enabled", "must be true or false"),
    ("yes-as-bool", edit(**{"eval.audit": "yes"}), "eval.audit", "must be true or false"),
    ("external-as-string", edit(**{"data.external": "on"}), "data.external", "must be true or false"),
    ("override-bool", edit(**{"train.overrides.model.tie_embeddings": 0}), "train.overrides.model.tie_embeddings",
     "must be true or false"),
    ("override-compile-mode", edit(**{"train.overrides.train.compile": 0}), "train.overrides.train.compile",
     "must be 'auto', 'on' or 'off'"),
    # names, strings, paths
    ("name-newline", edit(name="smoke\n"), "name", "must be a slug"),
    ("name-trailing-space", edit(name="smoke "), "name", "must be a slug"),
    ("description-huge", edit(description="x" * 20_000), "description", "at most 10000"),
    ("data-nul", edit(**{"data.path": "data/a\0b"}), "data.path", "NUL"),
    # the file itself
    ("deep-nesting", "name: smoke\ndescription: " + "[" * 200 + "]" * 200 + "\n", "line 2", "nested deeper"),
    ("billion-laughs", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")) + "name: smoke\n",
     "<spec>", "aliases are expanded"),
    ("not-utf8", SMOKE.read_bytes().replace(b"tiny preset", b"tiny \xff\xfe preset"), "<spec>", "not UTF-8"),
    ("duplicate-key", SMOKE.read_text() + "retries: 3\n", "line", "duplicate key 'retries'"),
]


def _write(tmp_path: Path, case) -> Path:
    spec = tmp_path / "hostile.yaml"
    if isinstance(case, bytes):
        spec.write_bytes(case)
    else:
        spec.write_text(case if isinstance(case, str) else to_yaml(case))
    return spec


def test_the_table_is_large_enough():
    assert len(HOSTILE) >= 40 and len({c[0] for c in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case,field,phrase", [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_refused_alike_by_validate_plan_and_run(tmp_path, monkeypatch, capsys, case, field, phrase):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = _write(tmp_path, case)
    for cmd in (["validate"], ["plan"], ["run", "--no-progress"]):
        assert main([cmd[0], str(spec), *cmd[1:]]) == 2, cmd
        out = capsys.readouterr()
        lines = out.err.strip().splitlines()
        assert len(lines) == 1, (cmd, out.err)
        line = lines[0]
        head = f"{spec}: " if cmd[0] != "run" else f"golf: error: {spec}: "
        assert line.startswith(head + field), (cmd, line)
        assert phrase in line and "Traceback" not in out.err, (cmd, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile.yaml"]  # no data, no store, no work dir


def test_size_is_checked_before_reading(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:  # sparse: 10 GB on paper, nothing on disk; reading it would take minutes
        f.truncate(10**10)
    assert main(["validate", str(big)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"{big}: <spec>: {big} is larger than 1,000,000 bytes"


def test_merge_keys_are_allowed(tmp_path, capsys):
    text = SMOKE.read_text().replace(
        "eval:\n  seq_len: 128\n", "eval:\n  - &e\n    seq_len: 128\n").replace(
        "  ttt:\n    enabled: false\n", "    ttt:\n      enabled: false\n  - <<: *e\n    stride: 32\n")
    text = text.replace("  stride: 64\n  batch_seqs: 16\n  chunk_tokens: 16384\n  max_eval_seconds: 600\n",
                        "    stride: 64\n    batch_seqs: 16\n    chunk_tokens: 16384\n    max_eval_seconds: 600\n")
    spec = tmp_path / "merge.yaml"
    spec.write_text(text)
    sweep = load_sweep(spec)
    strides = [p.stride for p in sweep.eval_points()]
    assert strides == [64, 32] and sweep.eval_points()[1].chunk_tokens == 16384  # merged, then overridden
    assert main(["validate", str(spec)]) == 0 and "8 eval" in capsys.readouterr().out  # 2 points x 2 seeds x (plain, tilt)


def test_address_without_a_scheme_is_one_line(capsys):
    for cmd in ("status", "logs", "cancel"):
        assert main([cmd, "raysubmit_x", "--address", "user:secret@10.0.0.1:8265"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["golf: error: --address 10.0.0.1:8265: the Ray dashboard URL needs a scheme, "
                       "e.g. http://10.0.0.1:8265"]


def test_the_console_entry_behaves_the_same(tmp_path):
    """Two hostile specs through the installed `golf` script (a real process)."""
    golf = Path(sys.executable).with_name("golf")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    for case, field in ((edit(**{"mixer.entropy_slope": NAN}), "mixer.entropy_slope"),
                        (edit(name="smoke\n"), "name")):
        spec = _write(tmp_path, case)
        for cmd in ("validate", "run"):
            p = subprocess.run([str(golf), cmd, str(spec)], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)
            assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
            assert field in p.stderr and "Traceback" not in p.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["hostile.yaml"]


def test_every_example_still_validates():
    for path in sorted((ROOT / "experiments").rglob("*.yaml")):
        load_sweep(path)
    assert yaml.safe_load(SMOKE.read_text())["name"] == "smoke"


def test_an_error_echoes_a_user_value_of_at_most_about_200_characters(tmp_path):
    """Issue 20: a 100 KB value in a spec came back whole in its one-line error."""
    import subprocess
    import sys

    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\ndata: {path: d}\ntrain: {preset: tiny, seeds: ['" + "a" * 100_000 + "']}\n")
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "validate", str(spec)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "(100,002 characters)" in p.stdout + p.stderr
    assert max(len(x) for x in (p.stdout + p.stderr).splitlines()) < 400 + len(str(spec))
