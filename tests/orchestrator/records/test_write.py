"""orchestrator.records.write, orchestrator.records.golf_folder: the statistics of a record claim and the
submission folder."""
from __future__ import annotations

import json
import math
import re

import pytest
import scipy.stats
import yaml

from orchestrator.records import golf_folder as G
from orchestrator.records import stats as S
from orchestrator.records import write as R

LN2 = math.log(2.0)
RATIO = 0.41  # tokens per byte, about sp1024's on FineWeb val


def _bpb(losses: dict[int, float], ratio: float = RATIO) -> dict[int, float]:
    return {s: v / LN2 * ratio for s, v in losses.items()}


# ---------------------------------------------------------------------------------------------
# statistics


def test_statistics_match_hand_computation_and_scipy():
    losses = {1337: 2.00, 42: 2.01, 2024: 2.02}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.05)
    # by hand: mean 2.01, std 0.01, threshold 2.045, t = -0.035 / (0.01 / sqrt 3)
    assert st["val_loss_mean"] == pytest.approx(2.01)
    assert st["val_loss_std"] == pytest.approx(0.01)
    assert st["threshold_loss"] == pytest.approx(2.045)
    t_hand = -0.035 / (0.01 / math.sqrt(3))
    assert st["t_stat"] == pytest.approx(t_hand)
    assert st["df"] == 2
    ref = scipy.stats.ttest_1samp([2.00, 2.01, 2.02], 2.045, alternative="less")
    assert st["t_stat"] == pytest.approx(ref.statistic)
    assert st["p_value"] == pytest.approx(ref.pvalue)
    # df = 2 has a closed form: P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2))
    assert st["p_value"] == pytest.approx(0.5 + t_hand / (2 * math.sqrt(2 + t_hand ** 2)))
    assert 0.01 < st["p_value"] < 0.02 and st["verdict"] == "not significant"  # 0.035 nats, 3 seeds: not enough
    tighter = {1337: 2.000, 42: 2.002, 2024: 2.004}
    st2 = S.record_statistics(_bpb(tighter), tighter, best_bpb=None, best_loss=2.05)
    assert st2["p_value"] < 0.01 and st2["verdict"] == "record"
    assert st["val_bpb_mean"] == pytest.approx(2.01 / LN2 * RATIO)
    assert st["val_bpb_std"] == pytest.approx(0.01 / LN2 * RATIO)
    assert st["tokens_per_byte"] == pytest.approx(RATIO)
    assert st["n_seeds"] == 3 and st["seeds"] == [42, 1337, 2024]


@pytest.mark.parametrize("values,best", [([2.3, 2.31, 2.29, 2.305], 2.33), ([1.0, 1.3], 1.2), ([5.0, 5.001, 4.98], 5.1)])
def test_p_value_equals_scipy_one_sided(values, best):
    losses = dict(zip(range(len(values)), values))
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=best)
    ref = scipy.stats.ttest_1samp(values, best - 0.005, alternative="less")
    assert st["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert st["val_loss_std"] == pytest.approx(scipy.stats.tstd(values))


def test_best_bpb_is_converted_with_our_tokens_per_byte():
    losses = {1: 2.0, 2: 2.002, 3: 1.999}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=1.2)
    # bpb = loss / ln2 * tokens/bytes  =>  best_loss = 1.2 * ln2 / 0.41
    assert st["best_loss"] == pytest.approx(1.2 * LN2 / RATIO)
    assert st["min_improvement_bpb"] == pytest.approx(0.005 / LN2 * RATIO)
    assert st["threshold_bpb"] == pytest.approx(1.2 - 0.005 / LN2 * RATIO)
    assert "converted" in st["best_loss_source"]
    # the test is the same in bpb units: the conversion is one positive constant
    bpbs = list(_bpb(losses).values())
    ref = scipy.stats.ttest_1samp(bpbs, st["threshold_bpb"], alternative="less")
    assert st["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert st["delta_bpb"] == pytest.approx(st["val_bpb_mean"] - 1.2)


def test_default_best_is_the_2026_04_27_record():
    losses = {1337: 1.79, 42: 1.791, 2024: 1.7905}
    st = S.record_statistics(_bpb(losses), losses)
    assert st["best_bpb"] == S.DEFAULT_BEST_BPB == 1.0611
    assert "2026-04-27" in st["best_source"]


def test_one_seed_has_no_p_value_and_says_so():
    losses = {1337: 2.0}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.5)
    assert st["p_value"] is None and st["t_stat"] is None and st["val_loss_std"] is None
    assert st["verdict"] == "not significant"
    assert any("1 seed" in n and "no p-value" in n for n in st["notes"])
    worse = S.record_statistics(_bpb({1: 3.0}), {1: 3.0}, best_bpb=None, best_loss=2.5)
    assert worse["verdict"] == "not better"


def test_tie_with_the_best_is_not_better():
    losses = {1: 2.0, 2: 2.0, 3: 2.0}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.0)
    assert st["verdict"] == "not better"
    assert st["p_value"] == 1.0  # zero spread, mean above the threshold


def test_zero_spread_below_threshold_is_a_record():
    losses = {1: 1.9, 2: 1.9}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.0)
    assert st["p_value"] == 0.0 and st["verdict"] == "record"
    assert st["t_stat"] == -math.inf


def test_better_but_within_the_margin_is_not_significant():
    # 0.003 nats better than the best: below the best, above best - 0.005
    losses = {1: 1.997, 2: 1.9971, 3: 1.9969}
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.0)
    assert st["verdict"] == "not significant" and st["p_value"] > 0.5


def test_large_but_noisy_improvement_is_not_significant():
    losses = {1: 1.90, 2: 2.05}  # mean 1.975: 0.025 better, but two far-apart seeds
    st = S.record_statistics(_bpb(losses), losses, best_bpb=None, best_loss=2.0)
    assert st["verdict"] == "not significant" and 0.01 < st["p_value"] < 0.5
    assert any("3 are customary" in n for n in st["notes"])


def test_seeds_that_scored_different_tokens_are_refused():
    losses = {1: 2.0, 2: 2.0}
    bpb = {1: 2.0 / LN2 * 0.41, 2: 2.0 / LN2 * 0.42}
    with pytest.raises(S.RecordError, match="tokens per byte"):
        S.record_statistics(bpb, losses)
    with pytest.raises(S.RecordError, match="differ"):
        S.record_statistics({1: 1.0}, {2: 2.0})
    with pytest.raises(S.RecordError, match="no seeds"):
        S.record_statistics({}, {})


# ---------------------------------------------------------------------------------------------
# compliance and names


def test_merge_compliance_needs_every_check_of_every_seed():
    ok = {"a": {"passed": True, "value": 1}, "info": {"passed": None, "value": "x"}}
    bad = {"a": {"passed": True, "value": 1}, "mix.mode": {"passed": False, "value": "hashed_target",
                                                           "detail": "not a distribution"}}
    assert S.merge_compliance({1: ok, 2: ok})["compliant"] is True
    m = S.merge_compliance({1: ok, 2: bad})
    assert m["compliant"] is False
    assert m["seeds"][1]["compliant"] and not m["seeds"][2]["compliant"]
    assert m["failed"] == ["seed 2: mix.mode = hashed_target (not a distribution)"]
    assert S.merge_compliance({})["compliant"] is False


def test_folder_name():
    assert R.folder_name("2026-11-25", "My Record: n-gram v2!") == "2026-11-25_My_Record_n-gram_v2"
    for bad in ("2026-13-01", "25-11-2026", "2026-1-5"):
        with pytest.raises(S.RecordError, match="YYYY-MM-DD"):
            R.folder_name(bad, "x")
    with pytest.raises(S.RecordError, match="usable"):
        R.folder_name("2026-11-25", "!!!")


# ---------------------------------------------------------------------------------------------
# the folder


def _inputs(compliant: bool, losses=None):
    losses = losses or {1337: 1.790, 42: 1.7905, 2024: 1.791}
    bpb = _bpb(losses)
    trains, evals, checks = {}, {}, {}
    for i, s in enumerate(losses):
        trains[s] = {"val_bpb": bpb[s] + 0.01, "val_bpb_prequant": bpb[s] + 0.005, "artifact_bytes": 15_500_000 + i,
                     "model_bytes": 15_400_000 + i, "code_bytes": 100_000, "steps": 5000 + i, "step_avg_ms": 98.7,
                     "train_time_s": 599.0, "world_size": 8, "device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3",
                     "torch_version": "2.13.0", "code_version": "abc", "config": {"train": {"iterations": 20000}},
                     "train_loss_curve": [[1, 6.9], [100, 3.2], [5000 + i, 2.4]]}
        checks[s] = {"artifact_bytes": {"passed": True, "value": 15_500_000 + i, "detail": ""},
                     "mix.mode": {"passed": compliant, "value": "normalized" if compliant else "hashed_target",
                                  "detail": "" if compliant else "not a distribution (C2)"}}
        evals[s] = {"val_bpb": bpb[s], "val_loss": losses[s], "eval_time_s": 400.0 + i, "neural_val_bpb": bpb[s] + 0.02,
                    "mixer_mode": "normalized", "compliance": {"compliant": compliant, "checks": checks[s]}}
    return trains, evals, S.merge_compliance(checks), losses, bpb


def _write(tmp_path, compliant: bool, best_loss: float = 1.85):
    trains, evals, comp, losses, bpb = _inputs(compliant)
    stats = S.record_statistics(bpb, losses, best_bpb=None, best_loss=best_loss)
    logs = {s: G.format_train_log(s, trains[s], evals[s], {"train": f"run{s}"}) for s in losses}
    spec = {"name": "rec", "description": "a test record", "train": {"preset": "tiny", "seeds": list(losses)},
            "mixer": {"entropy_centers": {7: 3.0}}}
    folder = G.write_record_folder(tmp_path / "records" / "track_10min_16mb", "2026-11-25", "Test Record",
                                   trains, evals, stats, comp, spec, logs, "print('hi')\n",
                                   author="me", github_id="me-gh")
    return folder, stats, logs, losses


def trains_bpb(folder, seed):
    trains, *_ = _inputs(True)
    return trains[seed]["val_bpb"]


def test_readme_describes_the_training_score_as_its_config_ran(tmp_path):
    trains, evals, comp, losses, bpb = _inputs(True)
    stats = S.record_statistics(bpb, losses, best_bpb=None, best_loss=1.85)
    for t in trains.values():
        t["config"] = {"eval": {"seq_len": 2048, "stride": 64, "tail": "score"}}
    text = G.render_readme("x", "2026-11-25", trains, evals, stats, comp)
    assert "sliding-window (windows of 2048 tokens, stride 64, every target scored)" in text
    assert "non-overlapping" not in text
    for t in trains.values():
        t["config"] = {"eval": {"seq_len": 1024, "stride": 1024, "tail": "drop"}}
    text = G.render_readme("x", "2026-11-25", trains, evals, stats, comp)
    assert "non-overlapping (windows of 1024 tokens, the partial last block dropped)" in text


def test_folder_has_every_file_and_upstream_fields(tmp_path):
    folder, stats, logs, losses = _write(tmp_path, compliant=True)
    assert folder.name == "2026-11-25_Test_Record"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["README.md", "submission.json", "statistics.md", "train_gpt.py", "spec.yaml",
                            "requirements.txt", "train_seed1337.log", "train_seed42.log", "train_seed2024.log"])
    sub = json.loads((folder / "submission.json").read_text())
    # exactly the newest upstream records' keys, in their order, plus golf's one key
    assert list(sub) == ["author", "github_id", "name", "blurb", "date", "track", "val_loss", "val_bpb",
                         "val_loss_std", "val_bpb_std", "seeds", "seed_results", "comparison_baseline_bpb",
                         "delta_vs_leaderboard_bpb", "delta_vs_leaderboard_nats", "artifact_bytes_mean",
                         "artifact_bytes_max", "bytes_total", "bytes_code", "train_steps_mean", "step_avg_ms_mean",
                         "hardware", "pytorch_version", "cuda_version", "technique_summary", "golf"]
    assert all(sorted(r) == sorted(["val_loss", "val_bpb", "artifact_bytes", "steps", "step_avg_ms", "eval_time_s"])
               for r in sub["seed_results"].values())
    assert sub["track"] == "10min_16mb" and sub["date"] == "2026-11-25" and sub["author"] == "me"
    assert sub["val_bpb"] == pytest.approx(sum(stats["val_bpb"].values()) / 3)
    assert sorted(sub["seeds"]) == [42, 1337, 2024]
    assert set(sub["seed_results"]) == {"42", "1337", "2024"}
    assert sub["seed_results"]["42"]["val_loss"] == pytest.approx(losses[42])
    code = (folder / "train_gpt.py").stat().st_size
    assert sub["bytes_code"] == code == len("print('hi')\n")  # the folder's script, exactly
    assert sub["bytes_total"] == 15_400_002 + code == sub["artifact_bytes_max"]  # model + that script
    assert sub["seed_results"]["1337"]["artifact_bytes"] == 15_400_000 + code
    assert sub["technique_summary"] == "a test record" and sub["cuda_version"] is None
    assert sub["golf"]["statistics"]["p_value"] == pytest.approx(stats["p_value"])
    assert sub["golf"]["statistics"]["verdict"] == "record" and sub["golf"]["submittable"] is True
    assert sub["golf"]["seed_results"]["42"]["val_bpb_roundtrip"] == pytest.approx(trains_bpb(folder, 42))
    assert (folder / "requirements.txt").read_text().split() == ["torch", "numpy", "sentencepiece", "pydantic>=2",
                                                                  "zstandard", "pyyaml"]
    readme = (folder / "README.md").read_text()
    assert readme.splitlines()[0].startswith("# Record: Test Record")
    for s in losses:
        assert f"| {s} |" in readme
        assert (folder / f"train_seed{s}.log").read_text() == logs[s]
    assert "## Compliance" in readme and "## Artifact sizes" in readme and "golf reproduce spec.yaml" in readme
    assert "non-overlapping" not in readme  # the runs' config has no eval section: no claim about it
    assert yaml.safe_load((folder / "spec.yaml").read_text())["name"] == "rec"
    assert (folder / "train_gpt.py").read_text() == "print('hi')\n"


def test_non_compliant_readme_says_so_in_its_first_line(tmp_path):
    folder, stats, _, _ = _write(tmp_path, compliant=False)
    readme = (folder / "README.md").read_text().splitlines()
    assert readme[0].startswith("# NOT SUBMITTABLE: non-compliant")
    assert any("seed 42: mix.mode = hashed_target" in line for line in readme)
    sub = json.loads((folder / "submission.json").read_text())
    assert sub["golf"]["compliance"]["compliant"] is False and sub["golf"]["submittable"] is False
    assert stats["verdict"] == "record"  # the statistics alone would have made it one


def test_not_a_record_readme(tmp_path):
    folder, stats, _, _ = _write(tmp_path, compliant=True, best_loss=1.70)
    assert stats["verdict"] == "not better"
    assert (folder / "README.md").read_text().startswith("# NOT A RECORD (not better)")


def test_statistics_md_recomputes_its_own_p_value(tmp_path):
    folder, stats, _, _ = _write(tmp_path, compliant=True)
    text = (folder / "statistics.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = code.replace("print(", "result = (")
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own generated snippet
    assert scope["result"].pvalue == pytest.approx(stats["p_value"], rel=1e-9)
    assert f"{stats['val_bpb_mean']:.8f}" in text


def test_train_log_has_the_curve_and_the_scores():
    trains, evals, _, losses, _ = _inputs(True)
    log = G.format_train_log(42, trains[42], evals[42], {"train": "abc123"})
    assert "step:100/20000 train_loss:3.2000" in log
    assert "# mlflow run (train): abc123" in log
    assert f"val_loss:{losses[42]:.8f}" in log
    assert "audit mix.mode: pass" in log


def test_missing_seed_inputs_are_refused(tmp_path):
    trains, evals, comp, losses, bpb = _inputs(True)
    stats = S.record_statistics(bpb, losses)
    with pytest.raises(S.RecordError, match="lack"):
        G.write_record_folder(tmp_path, "2026-11-25", "x", trains, evals, stats, comp, {}, {42: "log"}, "")


def test_readme_command_sets_the_tilt_env_of_a_tilt_record():
    """Issue 18: a tilt record's README command carries #2135's names, read back by golf's own
    README parser to the claim's mixer (even over a script whose baked-in mixer is off)."""
    from golf_core import envvars
    from golf_core.eval.config import EvalSpec, MixerConfig
    from golf_core.presets import RunConfig, load_preset
    from orchestrator.records.folder import readme_command

    claim = MixerConfig(mode="tilt", tilt_order=12, tilt_threshold=0.7, tilt_boost=2.625)
    assert G.tilt_env(claim) == {"NGRAM_TILT_ENABLED": "1", "TOKEN_ORDER": "12", "TOKEN_THRESHOLD": "0.7",
                                 "TOKEN_BOOST": "2.625"}
    assert G.tilt_env(MixerConfig(mode="normalized")) == {} and G.tilt_env(None) == {}
    trains, evals, comp, losses, bpb = _inputs(True)
    stats = S.record_statistics(bpb, losses, best_bpb=None, best_loss=1.85)
    for e in evals.values():
        e["mixer_mode"], e["mixer"] = "tilt", claim.model_dump(mode="json")
    env, launcher = readme_command(G.render_readme("x", "2026-11-25", trains, evals, stats, comp))
    assert launcher["nproc_per_node"] == "8" and launcher["script"] == "train_gpt.py"
    assert env == {"SEED": str(stats["seeds"][0]), **G.tilt_env(claim)}
    run = load_preset("tiny").model_dump(mode="json")
    _, spec, used = envvars.apply_env(run, EvalSpec().model_dump(mode="json"), env, RunConfig, EvalSpec)
    assert EvalSpec.model_validate(spec).mixer == claim and "NGRAM_TILT_ENABLED" in used
    # any other mixer: the command is unchanged
    for e in evals.values():
        e["mixer_mode"], e["mixer"] = "normalized", MixerConfig(mode="normalized").model_dump(mode="json")
    env, _ = readme_command(G.render_readme("x", "2026-11-25", trains, evals, stats, comp))
    assert env == {"SEED": str(stats["seeds"][0])}
