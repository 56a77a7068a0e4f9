"""`golf mix` and `golf audit` end to end on a small eval dir written here."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from golf_core.cli import main
from golf_core.eval.config import EvalSpec
from golf_core.eval.entropy_source import make_source, sample
from golf_core.eval.mix import mix_bpb
from golf_core.eval.ngram import ngram_pass
from golf_core.eval.stats import load_stats, save_stats

V, N, C = 64, 3000, 500


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    src = make_source(V, succ=4, seed=5)
    val = sample(src, N + 1, seed=6)
    pos = np.arange(1, N + 1)
    rows = src.probs(val[:-1])
    aidx = np.array([5, 700, 1500, 2999])
    stats = {"target": val[pos], "prev": val[pos - 1], "bytes": 1 + (val[pos] % 3), "p_model": rows[pos - 1, val[pos]],
             "entropy": -(rows * np.log(rows)).sum(1), "chunk": (pos - 1) // C, "pos": pos,
             "audit_idx": aidx, "audit_p_model": rows[aidx]}
    save_stats(d / "token_stats.npz", stats)
    spec = EvalSpec(eval={"chunk_tokens": C}, mixer={"mode": "normalized", "buckets": 256})
    (d / "result.json").write_text(json.dumps({
        "val_bpb": 1.0, "eval_time_s": 3.5, "artifact_bytes": 15_000_000, "spec": spec.model_dump(mode="json"),
        "compliance": {"checks": {"causal_model": {"passed": True, "value": 0.0, "detail": "probe"}}}}))
    return d, val, stats


def test_golf_mix_writes_every_point_sorted(run_dir, tmp_path, capsys):
    d, val, stats = run_dir
    grid = tmp_path / "grid.yaml"
    grid.write_text("mixer:\n  mode: normalized\n  buckets: [256, 1024]\n  alpha_base: [0.0, 0.05]\n"
                    "  entropy_center: [2.0, 4.0]\n")
    out = tmp_path / "points.csv"
    assert main(["mix", str(d), "--grid", str(grid), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and "8 grid points" in printed
    assert {r["mode"] for r in rows} == {"normalized"}  # plain values, no JSON quotes
    bpbs = [float(r["val_bpb"]) for r in rows]
    assert bpbs == sorted(bpbs)
    # a point recomputed directly: the stats alone rebuild the stream, chunk_tokens from result.json
    from golf_core.eval.config import MixerConfig
    cfg = MixerConfig(mode="normalized", buckets=1024, alpha_base=0.05, entropy_center=2.0)
    ng = ngram_pass(val, stats["pos"], stats["chunk"], cfg, C, vocab_size=V)
    want = mix_bpb(load_stats(d), ng, [cfg])[0]  # as saved: entropy is float32 there
    got = [float(r["val_bpb"]) for r in rows if json.loads(r["buckets"]) == 1024
           and json.loads(r["alpha_base"]) == 0.05 and json.loads(r["entropy_center"]) == 2.0]
    assert got and math.isclose(got[0], want, rel_tol=1e-12)
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["rank", "val_bpb", "legal"] and lines[1].split()[1] == f"{bpbs[0]:.6f}"
    # default output: JSON beside the stats
    assert main(["mix", str(d), "--grid", str(grid), "--top", "2"]) == 0
    pts = json.loads((d / "mix_grid.json").read_text())
    assert len(pts) == 8 and pts[0]["val_bpb"] == min(p["val_bpb"] for p in pts)


def test_golf_mix_bad_grid_is_one_line_exit_2(run_dir, tmp_path, capsys):
    d, _, _ = run_dir
    grid = tmp_path / "bad.yaml"
    grid.write_text("mixer:\n  alpha_base: [0.1, 0.7]\n  alpha_range: 0.55\n")
    assert main(["mix", str(d), "--grid", str(grid)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "alpha_base + alpha_range" in err and "grid point 1" in err


def test_golf_audit_dir_verdicts(run_dir, capsys):
    d, _, _ = run_dir
    assert main(["audit", str(d)]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["compliant"] and rep["checks"]["normalized_sum"]["value"]["max_abs_dev"] < 1e-9
    assert rep["checks"]["artifact_bytes"]["passed"] and rep["checks"]["causal_model"]["passed"]
    assert main(["audit", str(d), "--mixer-mode", "hashed_target"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert not rep["checks"]["mode"]["passed"] and rep["checks"]["normalized_sum"]["value"]["max_sum"] > 1.5


def test_golf_audit_standalone_and_bad_input(tmp_path, capsys):
    assert main(["audit", "--mixer-mode", "hashed_target", "--buckets", "16", "--entropy-floor",
                 "--tokens", "4000"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert not rep["checks"]["entropy_floor"]["passed"]
    assert main(["audit", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["audit", "--mixer-mode", "normalized", "--buckets", "1000"]) == 2
    assert "power of two" in capsys.readouterr().err


def test_mix_job_result_and_audit(run_dir, tmp_path):
    from golf_core.eval.config import MixerConfig
    from golf_core.eval.mix_dir import mix_job

    d, _, _ = run_dir
    cfg = MixerConfig(mode="normalized", buckets=256, alpha_base=0.1)
    res = mix_job(d, cfg, out_dir=tmp_path / "mix")
    want = mix_bpb(load_stats(d), ngram_pass(*_pass_args(d, cfg), vocab_size=V), [cfg])[0]
    assert math.isclose(res["val_bpb"], want, rel_tol=1e-12) and res["val_bpb"] != res["val_bpb_model"]
    c = res["compliance"]
    assert res["compliance"]["compliant"], {k: v["detail"] for k, v in c["checks"].items()}
    assert c["checks"]["eval_time"]["value"] >= 3.5 and c["checks"]["causal_model"]["passed"]
    assert json.loads((tmp_path / "mix" / "result.json").read_text())["val_bpb"] == res["val_bpb"]
    bad = mix_job(d, MixerConfig(mode="hashed_target", buckets=256))
    assert not bad["compliance"]["compliant"] and not bad["compliance"]["checks"]["normalized_sum"]["passed"]


def _pass_args(d, cfg):
    from golf_core.eval.mix import stream_from_stats
    st = load_stats(d)
    return stream_from_stats(st), st["pos"], st["chunk"], cfg, C
