"""golf_core.export: the exported train_gpt.py is a real submission, run as upstream's scripts are."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import golf_core
from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig
from golf_core.export import export_script, script_sizes, write_script
from golf_core.export.bundle import bundle_versions, runtime_modules, runtime_sources
from golf_core.logparse import parse_log_file
from golf_core.presets import load_preset

TORCHRUN = Path(sys.executable).with_name("torchrun")


def test_pr779_script_is_readable_deterministic_and_bundles_only_the_runtime():
    run = load_preset("pr779")
    text = export_script(run, EvalSpec(eval=run.eval), title="pr779")
    compile(text, "train_gpt.py", "exec")
    assert export_script(run, EvalSpec(eval=run.eval), title="pr779") == text  # reproducible bytes
    # readable: every bundled module is in the script verbatim
    sources = runtime_sources()
    for name, src in sources.items():
        assert src in text, name
    mods = set(runtime_modules())
    assert {"golf_core.train.loop", "golf_core.eval.run", "golf_core.envvars", "golf_core.quant.artifact"} <= mods
    # tooling a training run never imports is not shipped
    for tooling in ("golf_core.cli", "golf_core.data.synthetic", "golf_core.data.fineweb", "golf_core.data.cli",
                    "golf_core.eval.cli_mix", "golf_core.train.cli", "golf_core.export", "golf_core.logparse"):
        assert tooling not in mods
    sizes = script_sizes(run, EvalSpec(eval=run.eval), title="pr779")
    assert sizes["readable"] == len(text.encode("utf-8"))
    assert sizes["compressed"] < sizes["readable"] / 2
    compile(export_script(run, EvalSpec(eval=run.eval), title="pr779", compressed=True), "c.py", "exec")


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PYTHONPATH", "MASTER_ADDR", "MASTER_PORT")}
    env.update(GOLF_RECORD_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", **extra)
    return env


def test_unpacked_sources_are_the_bundle_and_hash_to_its_versions(tmp_path):
    script = tmp_path / "train_gpt.py"
    write_script(script, load_preset("tiny"))
    out = subprocess.run([sys.executable, str(script), "--unpack", str(tmp_path / "src")], cwd=tmp_path,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    root = Path(golf_core.__file__).resolve().parent.parent
    written = sorted(p.relative_to(tmp_path / "src").as_posix() for p in (tmp_path / "src").rglob("*.py"))
    assert written == sorted(runtime_sources())
    for rel in written:
        assert (tmp_path / "src" / rel).read_bytes() == (root / rel).read_bytes()
    probe = ("import sys, json; sys.path.insert(0, sys.argv[1]); import golf_core; "
             "print(json.dumps({k: golf_core.code_version(k) for k in ('train', 'eval')}), golf_core.__file__)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "src")], cwd=tmp_path, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)
    versions, where = out.stdout.rsplit(" ", 1)
    assert json.loads(versions) == bundle_versions(runtime_modules())
    assert where.strip().startswith(str(tmp_path / "src"))


@pytest.fixture()
def upstream_checkout(tmp_path, synthetic_data_dir) -> Path:
    """A folder laid out as an upstream checkout: data/datasets/fineweb10B_sp1024 + data/tokenizers."""
    root = tmp_path / "checkout"
    ds = root / "data" / "datasets" / "fineweb10B_sp1024"
    tok = root / "data" / "tokenizers"
    ds.mkdir(parents=True)
    tok.mkdir(parents=True)
    for p in synthetic_data_dir.glob("fineweb_*.bin"):
        shutil.copy(p, ds / p.name)
    shutil.copy(next(synthetic_data_dir.glob("*.model")), tok / "fineweb_1024_bpe.model")
    return root


def test_iterations_3_in_an_upstream_checkout_stops_after_3_steps_with_upstream_lines(tmp_path, upstream_checkout):
    """The issue's done-when: DATA_PATH=... TOKENIZER_PATH=... ITERATIONS=3 python train_gpt.py."""
    run = load_preset("tiny", {"quant": {"compressor": "zlib"}})  # 30 iterations baked in
    write_script(upstream_checkout / "train_gpt.py", run, title="tiny")
    env = _env(tmp_path, DATA_PATH="./data/datasets/fineweb10B_sp1024",
               TOKENIZER_PATH="./data/tokenizers/fineweb_1024_bpe.model", ITERATIONS="3", RUN_ID="it3", SEED="7")
    out = subprocess.run([sys.executable, "train_gpt.py"], cwd=upstream_checkout, env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "logs/it3.txt"
    steps = [ln for ln in lines if re.match(r"step:\d+/\d+ train_loss:", ln)]
    assert [s.split()[0] for s in steps] == ["step:1/3", "step:2/3", "step:3/3"]
    assert re.fullmatch(r"step:3/3 train_loss:\S+ train_time:\d+ms step_avg:[\d.]+ms", steps[-1])
    assert re.fullmatch(r"final_int8_zlib_roundtrip_exact val_loss:\d+\.\d{8} val_bpb:\d+\.\d{8}", lines[-1])
    assert any(re.fullmatch(r"Total submission size int8_zlib: \d+ bytes", ln) for ln in lines)
    # the log file holds every console line (and a few header lines besides)
    logged = (upstream_checkout / "logs" / "it3.txt").read_text().splitlines()
    assert [ln for ln in logged if ln in lines] == lines[1:]
    # golf's own parser reads it as it reads upstream's logs; sizes are the real files'
    summary = parse_log_file(upstream_checkout / "logs" / "it3.txt")
    assert summary.steps == 3 and summary.final_tag == "final_int8_zlib_roundtrip_exact"
    model = upstream_checkout / "final_model.int8.ptz"
    code = (upstream_checkout / "train_gpt.py").stat().st_size
    assert summary.artifact_bytes == model.stat().st_size + code
    result = json.loads((upstream_checkout / "golf_out" / "it3" / "train" / "result.json").read_text())
    assert result["steps"] == 3 and result["seed"] == 7 and result["code_bytes"] == code
    assert summary.val_bpb == pytest.approx(result["val_bpb"], abs=5e-9)
    assert result["code_version"] == bundle_versions(runtime_modules())["train"]  # ran the bundled copy


def test_a_bad_environment_value_is_one_line_naming_the_variable(tmp_path, upstream_checkout):
    write_script(upstream_checkout / "train_gpt.py", load_preset("tiny"))
    out = subprocess.run([sys.executable, "train_gpt.py"], cwd=upstream_checkout,
                         env=_env(tmp_path, ITERATIONS="three"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "ITERATIONS='three'" in out.stderr
    assert not (upstream_checkout / "logs").exists()  # refused before anything ran


def test_environment_names_reach_the_config(tmp_path):
    script = tmp_path / "train_gpt.py"
    write_script(script, load_preset("pr779"), EvalSpec(eval=EvalConfig(seq_len=2048, stride=64)))
    env = _env(tmp_path, NUM_LAYERS="9", MATRIX_LR="0.03", VE_LAYERS="7,8", DTG_ENABLED="1", PRUNE_PCT="0.05",
               EVAL_STRIDE="128", MAX_WALLCLOCK_SECONDS="0", UNRELATED="x")
    out = subprocess.run([sys.executable, str(script), "--print-config"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    assert cfg["run"]["model"]["num_layers"] == 9 and cfg["run"]["model"]["ve_layers"] == [7, 8]
    assert cfg["run"]["model"]["gated_attention"] is True
    assert cfg["run"]["train"]["matrix_lr"] == 0.03 and cfg["run"]["train"]["max_wallclock_seconds"] == 0
    assert cfg["run"]["quant"]["prune_frac"] == 0.05
    assert cfg["eval"]["eval"]["stride"] == 128 and cfg["run"]["eval"]["stride"] == 64  # the record's eval
    assert "UNRELATED" not in cfg["env"]


def test_tilt_environment_names_reach_the_eval_spec(tmp_path):
    """#2135's knobs: NGRAM_TILT_ENABLED, TOKEN_ORDER, TOKEN_THRESHOLD, TOKEN_BOOST."""
    script = tmp_path / "train_gpt.py"
    write_script(script, load_preset("tiny"), EvalSpec(eval=EvalConfig(seq_len=128, stride=64)))
    env = _env(tmp_path, NGRAM_TILT_ENABLED="1", TOKEN_ORDER="12", TOKEN_THRESHOLD="0.7", TOKEN_BOOST="2.0")
    out = subprocess.run([sys.executable, str(script), "--print-config"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    m = cfg["eval"]["mixer"]
    assert (m["mode"], m["tilt_order"], m["tilt_threshold"], m["tilt_boost"]) == ("tilt", 12, 0.7, 2.0)
    assert {"NGRAM_TILT_ENABLED", "TOKEN_ORDER", "TOKEN_THRESHOLD", "TOKEN_BOOST"} <= set(cfg["env"])


def test_tilt_log_states_the_hint_pass_inside_the_eval_timer(tmp_path, capsys, monkeypatch):
    from golf_core.export.entry import UpstreamLog

    monkeypatch.chdir(tmp_path)
    log = UpstreamLog("t1", True)
    log.tag = "int8_zlib"
    spec = EvalSpec(eval=EvalConfig(seq_len=128, stride=64), mixer=MixerConfig(mode="tilt")).model_dump(mode="json")
    log.eval_done(spec, {"val_loss": 2.0, "val_bpb": 1.2, "val_loss_model": 2.1, "val_bpb_model": 1.3,
                         "eval_time_s": 50.0, "tilt_hint_time_s": 4.25, "tilt_gated": 10, "tilt_hits": 7})
    lines = capsys.readouterr().out.splitlines()
    assert "ngram_tilt:precompute_done elapsed=4.25s (inside eval_time)" in lines
    assert any(ln.startswith("ngram_tilt:hints order=16 threshold=0.8 boost=2.625 gated=10 hits=7") for ln in lines)
    assert lines[-1].startswith("final_int8_zlib_sliding_window_ngram_tilt_exact val_loss:2.00000000")


def _eval_spec() -> EvalSpec:
    return EvalSpec(eval=EvalConfig(seq_len=128, stride=64, batch_seqs=32, chunk_tokens=16384),
                    mixer=MixerConfig(mode="normalized", orders=(2, 3), buckets=1 << 14))


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside this interpreter")
def test_two_rank_torchrun_runs_five_times_in_a_row_each_in_time(tmp_path, synthetic_data_dir):
    """One process group per process: train and eval share it (the old export hung 3 of 6 runs)."""
    run = load_preset("tiny", {"train": {"iterations": 1}, "eval": {"stride": 128}})
    rec = tmp_path / "record"
    rec.mkdir()
    # a short evaluation after the training: run_eval in the same process is what hung before
    spec = EvalSpec(eval=EvalConfig(seq_len=128, stride=128, batch_seqs=32, chunk_tokens=4096, max_tokens=8192))
    write_script(rec / "train_gpt.py", run, spec, title="2-rank")
    scores = []
    for i in range(5):
        # without RUN_ID (issue 20): each rank drew its own and rank 1 found no artifact.json
        env = {k: v for k, v in _env(tmp_path, DATA_PATH=str(synthetic_data_dir)).items() if k != "RUN_ID"}
        out = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "train_gpt.py"], cwd=rec,
                             env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        scores.append(out.stdout.splitlines()[-1])
    assert len(set(scores)) == 1  # the same run five times
    assert scores[0].startswith("final_int8_zstd_eval_exact ")
    assert len(list((rec / "golf_out").iterdir())) == 5  # one output folder per run, shared by its ranks


def test_compressed_form_bundles_the_same_sources_and_runs_them(tmp_path):
    """The two forms differ in encoding only: the same files unpack from both, and the compressed
    one imports its bundle and builds the config (the readable one trains in the tests above)."""
    run = load_preset("tiny", {"train": {"iterations": 2}})
    trees, sizes = {}, {}
    for form in ("readable", "compressed"):
        d = tmp_path / form
        d.mkdir()
        sizes[form] = write_script(d / "train_gpt.py", run, _eval_spec(), compressed=form == "compressed")
        out = subprocess.run([sys.executable, "train_gpt.py", "--unpack", "src"], cwd=d, capture_output=True,
                             text=True, timeout=60, env=_env(tmp_path))
        assert out.returncode == 0, out.stderr[-2000:]
        trees[form] = {p.relative_to(d / "src").as_posix(): p.read_bytes() for p in (d / "src").rglob("*.py")}
    assert trees["readable"] == trees["compressed"] and len(trees["readable"]) == len(runtime_modules())
    assert sizes["compressed"] < sizes["readable"] / 2
    out = subprocess.run([sys.executable, "train_gpt.py", "--print-config"], cwd=tmp_path / "compressed",
                         capture_output=True, text=True, timeout=60, env=_env(tmp_path, ITERATIONS="5"))
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = json.loads(out.stdout)
    assert cfg["run"]["train"]["iterations"] == 5 and cfg["eval"]["mixer"]["mode"] == "normalized"
