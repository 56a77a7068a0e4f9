"""The exported train_gpt.py runs #2135's tilt from its environment names (issue 18): run as
upstream runs it, its score equals golf's own factorized tilt evaluation of the same artifact."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from golf_core.eval.config import EvalConfig, EvalSpec, MixerConfig
from golf_core.export import write_script
from golf_core.presets import load_preset
from tests.golf_core.test_export import TORCHRUN, _env, upstream_checkout  # noqa: F401  (fixture)

# a short evaluation: a few thousand validation tokens, sliding window (the record's kind)
EVAL = EvalConfig(seq_len=64, stride=32, batch_seqs=16, chunk_tokens=2048, max_tokens=4096, audit_positions=8)
TILT_ENV = {"NGRAM_TILT_ENABLED": "1", "TOKEN_ORDER": "3", "TOKEN_THRESHOLD": "0.3", "TOKEN_BOOST": "1.5"}
TILT = MixerConfig(mode="tilt", tilt_order=3, tilt_threshold=0.3, tilt_boost=1.5)


def test_exported_script_runs_tilt_and_scores_as_golf_does(tmp_path, upstream_checkout):  # noqa: F811
    from golf_core.eval.mix import mix_nll
    from golf_core.eval.run import run_eval
    from golf_core.eval.stats import bpb_from_stats, load_stats

    # the record's baked-in eval has no mixer: the environment alone turns the tilt on
    run = load_preset("tiny", {"train": {"iterations": 2}, "quant": {"compressor": "zlib"}})
    write_script(upstream_checkout / "train_gpt.py", run, EvalSpec(eval=EVAL), title="tilt e2e")
    env = _env(tmp_path, DATA_PATH="./data/datasets/fineweb10B_sp1024",
               TOKENIZER_PATH="./data/tokenizers/fineweb_1024_bpe.model", **TILT_ENV)
    env.pop("RUN_ID", None)  # upstream's READMEs leave it unset: the script draws one
    cmd = ([str(TORCHRUN), "--standalone", "--nproc_per_node=1", "train_gpt.py"] if TORCHRUN.is_file()
           else [sys.executable, "train_gpt.py"])
    out = subprocess.run(cmd, cwd=upstream_checkout, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    last = re.fullmatch(r"final_int8_zlib_sliding_window_ngram_tilt_exact val_loss:(\S+) val_bpb:(\S+)", lines[-1])
    assert last, lines[-5:]
    (run_dir,) = (upstream_checkout / "golf_out").iterdir()
    logged = (upstream_checkout / "logs" / f"{run_dir.name}.txt").read_text().splitlines()
    assert logged[-1] == lines[-1]
    # the hint pass is timed inside the eval timer, and the log says so
    pre = [ln for ln in logged if ln.startswith("ngram_tilt:precompute_done")]
    assert len(pre) == 1, logged
    hint_s = float(re.fullmatch(r"ngram_tilt:precompute_done elapsed=([\d.]+)s \(inside eval_time\)", pre[0])[1])
    script_res = json.loads((run_dir / "eval" / "result.json").read_text())
    assert script_res["spec"]["mixer"] == TILT.model_dump(mode="json")
    assert 0 <= hint_s <= script_res["eval_time_s"]
    hints = [ln for ln in logged if ln.startswith("ngram_tilt:hints ")]
    assert hints == [f"ngram_tilt:hints order=3 threshold=0.3 boost=1.5 gated={script_res['tilt_gated']} "
                     f"hits={script_res['tilt_hits']}"]
    assert script_res["tilt_gated"] > 0 and script_res["compliance"]["compliant"]

    # golf's own evaluation of the artifact the script wrote: the neural pass pricing the hints,
    # then the tilt applied from the saved stats alone (the factorized path a sweep runs)
    spec = EvalSpec(eval=EVAL.model_copy(update={"tilt_tables": ((3, 0),)}))
    neural = run_eval(run_dir / "train", spec, upstream_checkout / "data" / "datasets" / "fineweb10B_sp1024",
                      tmp_path / "golf_eval", tokenizer=upstream_checkout / "data" / "tokenizers" / "fineweb_1024_bpe.model")
    stats = load_stats(tmp_path / "golf_eval")
    golf_bpb = bpb_from_stats(stats, mix_nll(stats, None, TILT))
    assert abs(float(last[2]) - golf_bpb) < 1e-6  # DESIGN.md: fused and factorized agree to 1e-6 bpb
    assert abs(script_res["val_bpb"] - golf_bpb) < 1e-6
    assert script_res["val_bpb_model"] == pytest.approx(neural["val_bpb"], abs=1e-9)
    assert golf_bpb != pytest.approx(neural["val_bpb"], abs=1e-5), "the tilt changed the score"
