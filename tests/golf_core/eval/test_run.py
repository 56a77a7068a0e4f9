"""run_eval on a real artifact and `golf eval` end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golf_core.eval.config import EvalConfig, EvalSpec, TTTConfig
from tests.golf_core.eval.neural_kit import TINY, tiny_model

EVAL = EvalConfig(seq_len=32, stride=16, batch_seqs=8, chunk_tokens=512, max_tokens=2048, audit_positions=8)


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory):
    """A tiny random GPT written through the real quantize -> compress -> artifact path."""
    from golf_core.presets import load_preset
    from golf_core.quant import write_artifact

    run_cfg = load_preset("tiny", {"model": TINY})
    out = tmp_path_factory.mktemp("artifact")
    write_artifact(tiny_model(7), run_cfg, out)
    return out


def test_run_eval_writes_result_and_stats(artifact_dir, synthetic_data_dir, byte_luts, tmp_path):
    from golf_core.data.shards import load_split
    from golf_core.eval.chunked import evaluate_chunked
    from golf_core.eval.stats import bpb_from_stats, load_stats
    from golf_core.quant import load_artifact

    spec = EvalSpec(eval=EVAL, ttt=TTTConfig(enabled=True, lr=1e-3, batch_seqs=4))
    events = []
    res = run_eval_(artifact_dir, spec, synthetic_data_dir, tmp_path, events.append)
    on_disk = json.loads((tmp_path / "result.json").read_text())
    assert on_disk["val_bpb"] == pytest.approx(res["val_bpb"], rel=1e-15)
    assert res["tokens_scored"] == 2048 and res["ratio_scored"] == 1.0
    assert res["ttt_params"] > 0 and res["ttt_steps"] == 3 * 4  # 3 trained chunks x 16 seqs / batches of 4
    assert res["spec"]["ttt"]["enabled"] is True and res["eval_time_s"] > 0 and res["tokens_per_s"] > 0
    comp = res["compliance"]
    assert comp["compliant"], comp
    assert {"single_pass", "ratio_scored", "score_before_update", "normalized_sum", "causal_model",
            "artifact_bytes", "eval_time"} <= set(comp["checks"])
    stats = load_stats(tmp_path)
    assert bpb_from_stats(stats) == pytest.approx(res["val_bpb"], rel=1e-12)
    assert [e["event"] for e in events].count("chunk") == 4 and events[-1]["event"] == "done"
    # the same numbers as evaluating the roundtrip model directly
    model, _, _ = load_artifact(artifact_dir)
    direct = evaluate_chunked(model, load_split(synthetic_data_dir, "val"), byte_luts, spec.eval, spec.ttt, "cpu")
    assert direct.sums.val_bpb == pytest.approx(res["val_bpb"], rel=1e-12)


def run_eval_(*a, **k):
    from golf_core.eval.run import run_eval

    return run_eval(*a, **k)


def test_run_eval_rejects_bad_input_early(tmp_path, synthetic_data_dir, artifact_dir):
    from golf_core.eval.run import run_eval

    with pytest.raises(FileNotFoundError, match="model.ptz"):
        run_eval(tmp_path, EvalSpec(), synthetic_data_dir)
    with pytest.raises(FileNotFoundError, match="data directory"):
        run_eval(artifact_dir, EvalSpec(), tmp_path / "nope")


def test_golf_eval_cli_end_to_end(artifact_dir, synthetic_data_dir, tmp_path, capsys):
    from golf_core.cli import main

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("eval:\n  seq_len: 32\n  stride: 16\n  chunk_tokens: 512\n  max_tokens: 1024\n"
                   "mixer:\n  mode: normalized\n  buckets: 4096\n")
    out = tmp_path / "out"
    rc = main(["eval", str(artifact_dir), "--config", str(cfg), "--set", "ttt.enabled=true",
               "--set", "ttt.batch_seqs=4", "--data", str(synthetic_data_dir), "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "val_bpb" in text and "compliant True" in text
    res = json.loads((out / "result.json").read_text())
    assert res["spec"]["mixer"]["mode"] == "normalized" and res["spec"]["ttt"]["enabled"]
    assert res["tokens_scored"] == 1024 and res["val_bpb"] < res["val_bpb_model"] + 1.0
    assert "p_mix" in np.load(out / "token_stats.npz").files

    for argv, msg in [
        (["--set", "eval.strid=3"], "eval.strid: unknown key"),
        (["--set", "evl.stride=3"], "unknown section"),
        (["--set", "mixer.buckets=1000"], "power of two"),
    ]:
        rc = main(["eval", str(artifact_dir), "--data", str(synthetic_data_dir), "--out", str(out), *argv])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and "\n" not in err, err
    rc = main(["eval", str(tmp_path), "--data", str(synthetic_data_dir), "--out", str(out)])
    assert rc == 2 and "model.ptz" in capsys.readouterr().err


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "bench" / "eval_throughput.py"
    spec = importlib.util.spec_from_file_location("eval_throughput", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_eval_benchmark_dry_run_and_cpu_refusal(capsys, tmp_path, reference_dir):
    bench = _bench()
    script = str(reference_dir.pr779_script)
    assert bench.main(["--dry-run", "--val-tokens", "1000", "--out", str(tmp_path), "--pr779-script", script]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["our_spec"]["eval"]["stride"] == 64 and plan["our_spec"]["mixer"]["mode"] == "normalized"
    assert plan["our_spec"]["ttt"]["enabled"] and plan["pr779_env"]["QTTT"] == "1"
    assert plan["pr779_script"] == script
    assert bench.main(["--dry-run", "--sides", "ours,nope"]) == 2
    assert bench.main(["--dry-run", "--pr779-script", str(tmp_path / "missing.py")]) == 2
    if not torch.cuda.is_available():
        assert bench.main(["--val-tokens", "1000", "--out", str(tmp_path), "--pr779-script", script]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
        assert not any(tmp_path.iterdir()), "refused before writing anything"


def test_eval_benchmark_default_script_from_reference_env(capsys, tmp_path, monkeypatch):
    """No machine path baked in: the default #779 script is $GOLF_REFERENCE_DIR's, else exit 2 naming it."""
    bench = _bench()
    monkeypatch.delenv("GOLF_REFERENCE_DIR", raising=False)
    assert bench.main(["--dry-run", "--val-tokens", "1000", "--out", str(tmp_path)]) == 2
    assert "GOLF_REFERENCE_DIR" in capsys.readouterr().err
    fake = tmp_path / "ref" / "parameter-golf" / "pr779" / "train_gpt.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("print('pr779')\n")
    monkeypatch.setenv("GOLF_REFERENCE_DIR", str(tmp_path / "ref"))
    assert bench.main(["--dry-run", "--val-tokens", "1000", "--out", str(tmp_path / "o")]) == 0
    assert json.loads(capsys.readouterr().out)["pr779_script"] == str(fake)
    # sides without #779 need no script at all
    monkeypatch.delenv("GOLF_REFERENCE_DIR")
    assert bench.main(["--dry-run", "--sides", "ours", "--val-tokens", "1000", "--out", str(tmp_path / "o")]) == 0
