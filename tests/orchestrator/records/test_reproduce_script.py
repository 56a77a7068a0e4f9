"""`golf reproduce RECORD_DIR`: a record folder's own train_gpt.py for its seeds.

The record folder is made here: the tiny upstream-style script, a README with its torchrun
command, two seed logs written by actually running that command (so the claim is the script's
true value) and a submission.json stating them. Fast tests check the resolution and the input
errors; the slow one runs `golf reproduce` twice on a real local Ray with a real mlflow server.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.spec.sweep import SpecError

from golf_core.logparse import parse_log_file
from orchestrator.records.folder import RecordFolderError, read_record_folder, readme_command
from orchestrator.records.script_resolve import GOLF_SET, parse_set_env, record_dir_reproduction, record_env

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "fixtures" / "scripts" / "train_gpt_tiny.py"
SEEDS = (1337, 42)
ENV = {"ITERATIONS": "4", "VAL_LOSS_EVERY": "2", "MODEL_DIM": "16"}
README = """# Tiny record

Run:

```bash
ITERATIONS=4 VAL_LOSS_EVERY=2 MODEL_DIM=16 SEED=1337 \\
  torchrun --standalone --nproc_per_node=1 train_gpt.py
```
"""


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", COLUMNS="200", OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory, synthetic_data_dir) -> Path:
    """A record folder whose seed logs are the script's own output under its README's command."""
    from golf_core.data.shards import find_tokenizer

    base = tmp_path_factory.mktemp("record")
    rec = base / "2026-11-25_Tiny_3.38"
    rec.mkdir()
    shutil.copy(SCRIPT, rec / "train_gpt.py")
    (rec / "README.md").write_text(README)
    for s in SEEDS:
        run = base / f"run{s}"
        run.mkdir()
        shutil.copy(SCRIPT, run / "train_gpt.py")
        env = dict(_clean_env(), **ENV, SEED=str(s), VOCAB_SIZE="1024", DATA_PATH=str(synthetic_data_dir),
                   TOKENIZER_PATH=str(find_tokenizer(synthetic_data_dir)), RUN_ID=f"seed{s}")
        with open(rec / f"train_seed{s}.log", "wb") as log:
            subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                            "train_gpt.py"], cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT, check=True,
                           timeout=300)
    res = {s: parse_log_file(rec / f"train_seed{s}.log") for s in SEEDS}
    (rec / "submission.json").write_text(json.dumps({
        "name": "Tiny", "val_bpb": sum(r.val_bpb for r in res.values()) / len(res), "seeds": list(SEEDS),
        "seed_results": {str(s): {"val_bpb": r.val_bpb, "val_loss": r.val_loss} for s, r in res.items()}}))
    return rec


# ---------------------------------------------------------------------------------------------
# resolution (no Ray, no MLflow)


def test_a_record_folder_resolves_to_its_readme_env_seeds_and_claim(record_dir, synthetic_data_dir, tmp_path):
    rep = record_dir_reproduction(record_dir, data=str(synthetic_data_dir), workspace=tmp_path)
    t = rep.sweep.train
    assert rep.env() == ENV  # SEED is golf's per job
    assert rep.dropped == {"SEED": "1337"}
    assert t.seeds == (42, 1337) and "train_seed1337.log" in rep.seeds_from
    assert t.gpus_per_job == 1 and rep.nproc_from == "README.md's --nproc_per_node"
    assert Path(t.script) == record_dir.resolve() and rep.sweep.data.source == "fineweb"
    logs = {s: parse_log_file(record_dir / f"train_seed{s}.log").val_bpb for s in SEEDS}
    assert rep.claim["val_bpb"] == logs
    text = "\n".join(rep.lines())
    assert "env: ITERATIONS=4 MODEL_DIM=16 VAL_LOSS_EVERY=2" in text and "seeds: [42, 1337]" in text
    assert "not taken from README.md (golf sets them): SEED=1337" in text


def test_set_env_and_seeds_change_the_env_and_so_the_identity(record_dir, synthetic_data_dir, tmp_path):
    from orchestrator.plan.build import build_plan

    kw = dict(data=str(synthetic_data_dir), workspace=tmp_path)
    base = build_plan(record_dir_reproduction(record_dir, **kw).sweep, tmp_path)
    again = build_plan(record_dir_reproduction(record_dir, **kw).sweep, tmp_path)
    assert [j.identity for j in base.jobs] == [j.identity for j in again.jobs]
    assert base.jobs[0].env == {**ENV, "SEED": "42", "VOCAB_SIZE": "1024"}
    rep = record_dir_reproduction(record_dir, set_env=parse_set_env(["MODEL_DIM=8", "NEW=x"]), **kw)
    assert rep.env() == {**ENV, "MODEL_DIM": "8", "NEW": "x"} and rep.set_env == {"MODEL_DIM": "8", "NEW": "x"}
    # a --set-env key the script never reads is checked like a spec's (the README's own are not)
    with pytest.raises(SpecError, match="train.env.NEW: train_gpt.py never reads it"):
        build_plan(rep.sweep, tmp_path)
    rep = record_dir_reproduction(record_dir, set_env=parse_set_env(["MODEL_DIM=8", "TRAIN_LOG_EVERY=3"]), **kw)
    changed = build_plan(rep.sweep, tmp_path)
    assert changed.jobs[0].env["MODEL_DIM"] == "8"
    assert not {j.identity for j in changed.jobs} & {j.identity for j in base.jobs}
    one = record_dir_reproduction(record_dir, seeds=(7,), gpus_per_job=2, **kw)
    assert one.sweep.train.seeds == (7,) and one.sweep.train.gpus_per_job == 2 and one.seeds_from == "--seeds"

    with pytest.raises(SpecError, match="SEED"):  # one SEED for two seeds
        record_dir_reproduction(record_dir, set_env={"SEED": "3"}, **kw)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set_env(["NOEQUALS"])


def _golf(args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_missing_script_or_torchrun_is_one_line_exit_2_before_ray(record_dir, tmp_path, monkeypatch):
    from orchestrator.cli.main import main
    from orchestrator.run import raycluster

    connected = []  # Ray may already be up in this test process (another test's): watch golf's call
    monkeypatch.setattr(raycluster, "connect", lambda *a, **k: connected.append(a) or "local")

    no_script = tmp_path / "no_script"
    shutil.copytree(record_dir, no_script)
    (no_script / "train_gpt.py").unlink()
    no_cmd = tmp_path / "no_cmd"
    shutil.copytree(record_dir, no_cmd)
    (no_cmd / "README.md").write_text("# Tiny\n\nRun it with `python train_gpt.py`.\n\n```\nITERATIONS=4 python x.py\n```\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    for folder, want in ((no_script, "no train_gpt.py"), (no_cmd, "no `KEY=VALUE ... torchrun")):
        with pytest.raises(RecordFolderError, match="^" + str(folder).replace("\\", "\\\\") + ": "):
            record_dir_reproduction(folder, workspace=ws)
        cwd = os.getcwd()
        os.chdir(ws)
        try:
            assert main(["reproduce", str(folder), "--data", str(tmp_path)]) == 2
        finally:
            os.chdir(cwd)
    assert not connected and not (ws / ".golf").exists() and not (ws / "mlflow.db").exists()
    p = _golf(["reproduce", str(no_cmd)], ws, timeout=120)
    assert p.returncode == 2 and "torchrun" in p.stderr + p.stdout
    lines = [x for x in (p.stderr + p.stdout).splitlines() if x.strip()]
    assert len(lines) == 1, lines


# ---------------------------------------------------------------------------------------------
# every published record folder: the env of its README's command


def test_env_of_every_published_record_folder(reference_dir):
    folders = reference_dir.record_dirs()
    for d in folders:
        readme = (d / "README.md").read_text(encoding="utf-8", errors="replace")
        cmd = readme_command(readme)
        assert cmd is not None, d.name
        readme_env, launcher = cmd
        env, dropped, vocab = record_env(readme_env)
        assert "SEED" not in env and not set(env) & set(GOLF_SET), d.name
        assert set(env) | set(dropped) | ({"VOCAB_SIZE"} if "VOCAB_SIZE" in readme_env else set()) == set(readme_env)
        assert all(readme_env[k] == v for k, v in env.items())
        assert vocab == int(readme_env.get("VOCAB_SIZE", 1024))
        assert launcher["nproc_per_node"] == "8", d.name  # every record ran on 8 GPUs
        # the published folders hold no train_gpt.py here: reproducing one says so in one line
        if not (d / "train_gpt.py").is_file():
            with pytest.raises(RecordFolderError, match="no train_gpt.py"):
                record_dir_reproduction(d)
        rf = read_record_folder(d)
        assert [log.seed for log in rf.logs if log.seed is not None], d.name
    by_name = {d.name: d for d in folders}
    best = by_name.get("2026-04-27_SP8192_LQER_SparseGate_BOSSmearFix_9HpStack_1.0611")
    if best is not None:
        env, dropped, vocab = record_env(readme_command((best / "README.md").read_text())[0])
        assert vocab == 8192 and env["MATRIX_LR"] == "0.026" and dropped["SEED"] == "42"
        assert dropped["DATA_PATH"].endswith("fineweb10B_sp8192_lossless_caps_caseops_v1_reserved")


# ---------------------------------------------------------------------------------------------
# end to end: real local Ray, real mlflow server


def _script_runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    runs = c.search_runs([exp.experiment_id], "tags.`golf.kind` = 'script_train'", max_results=100)
    return c, [r for r in runs if not r.data.tags.get("golf.reused_from")]


@pytest.mark.slow
def test_golf_reproduce_record_dir_end_to_end_then_reuses_both_jobs(record_dir, synthetic_data_dir, tmp_path,
                                                                     mlflow_server):
    argv = ["reproduce", str(record_dir), "--data", str(synthetic_data_dir), "--date", "2026-11-26",
            "--tracking-uri", mlflow_server.uri, "--num-cpus", "2", "--no-progress"]
    t0 = time.monotonic()
    first = _golf(argv, tmp_path)
    t_first = time.monotonic() - t0
    # CPU: the hardware check fails (1 rank, not 8xH100), so the exit is 1 (issue 19), the folder written
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    out = first.stdout
    assert "golf: checks: FAILED: " in out and "hardware" in out
    # what will run is printed before Ray starts
    assert out.index("env: ITERATIONS=4 MODEL_DIM=16 VAL_LOSS_EVERY=2") < out.index("seeds: [42, 1337]") \
        < out.index("golf: ray: local")
    folder = tmp_path / "records" / "track_10min_16mb" / "2026-11-26_Tiny_3.38_reproduced"
    sub = json.loads((folder / "submission.json").read_text())
    logs = {s: parse_log_file(record_dir / f"train_seed{s}.log") for s in SEEDS}
    # the fixture is deterministic on CPU: the reproduction gives the logs' numbers exactly
    for s in SEEDS:
        assert sub["seed_results"][str(s)]["val_bpb"] == logs[s].val_bpb
        assert sub["seed_results"][str(s)]["val_loss"] == logs[s].val_loss
    assert sub["val_bpb"] == pytest.approx(sum(x.val_bpb for x in logs.values()) / 2, abs=1e-12)
    assert sub["golf"]["reused"] == {"42": "finished", "1337": "finished"}
    claim = sub["golf"]["claim"]
    assert claim["delta_bpb"] == pytest.approx(0.0, abs=1e-12) and claim["verdict"] == "consistent with the claim"
    assert set(claim["verdict_at"]) == {"p<0.01", "p<0.25"}
    assert set(sub["golf"]["statistics"]["verdict_at"]) == {"p<0.01", "p<0.25"}
    assert sub["golf"]["statistics"]["verdict"] == "not better"  # synthetic tokens: ~3.4 bpb
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# Reproduction of 2026-11-25_Tiny_3.38: consistent with the claim")
    assert "C1–C4 audit" in readme and "p < 0.25 (the leaderboard's practice" in readme
    assert (folder / "train_gpt.py").read_bytes() == SCRIPT.read_bytes()
    assert (folder / "claimed" / "train_seed42.log").read_bytes() == (record_dir / "train_seed42.log").read_bytes()
    c, runs = _script_runs(mlflow_server.uri, "reproduce-2026-11-25_tiny_3.38")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    artifacts = {}
    for r in runs:
        seed = int(r.data.tags["golf.seed"])
        dl = Path(c.download_artifacts(r.info.run_id, "train.log", str(tmp_path / "dl" / r.info.run_id)))
        artifacts[seed] = dl.read_bytes()
        assert (folder / f"train_seed{seed}.log").read_bytes() == artifacts[seed]  # the job's own log, byte for byte
        assert r.data.metrics["val_bpb"] == logs[seed].val_bpb
    sweeps = c.search_runs([runs[0].info.experiment_id], "tags.`golf.kind` = 'sweep'")
    assert sweeps[0].data.tags["golf.claim_verdict"] == "consistent with the claim"
    assert sweeps[0].data.tags["golf.record_verdict.p_0.25"] == "not better"
    assert sweeps[0].data.metrics["claim_p_value"] == pytest.approx(claim["p_value"])

    t0 = time.monotonic()
    second = _golf(argv, tmp_path)
    t_second = time.monotonic() - t0
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    assert "golf: ray:" not in second.stdout  # every job reused: Ray never started
    sub2 = json.loads((folder / "submission.json").read_text())
    assert sub2["golf"]["reused"] == {"42": "reused", "1337": "reused"}
    assert sub2["seed_results"] == sub["seed_results"] and sub2["golf"]["claim"] == claim
    for s in SEEDS:  # a reused run's log comes back from the MLflow artifact store, unchanged
        assert (folder / f"train_seed{s}.log").read_bytes() == artifacts[s]
    assert len(_script_runs(mlflow_server.uri, "reproduce-2026-11-25_tiny_3.38")[1]) == 2
    print(f"golf reproduce RECORD_DIR 2 seeds: {t_first:.1f} s, rerun {t_second:.1f} s")


# ---------------------------------------------------------------------------------------------
# the tests' numbers, a script spec, the claim's formats


def test_claim_test_is_scipys_welch_and_the_known_value_case_its_one_sample_test():
    import scipy.stats as st

    from orchestrator.records.stats import claim_statistics, welch_less

    repro = {1: 1.1150812, 2: 1.11437394, 3: 1.11475014}  # a published record and its predecessor
    prior = {1: 1.11922988, 2: 1.12002032, 3: 1.11888882}
    c = claim_statistics(repro, {"source": "t", "val_bpb": prior})
    ref = st.ttest_ind(list(repro.values()), list(prior.values()), equal_var=False, alternative="greater")
    assert c["p_value"] == pytest.approx(ref.pvalue, rel=1e-12) and c["t_stat"] == pytest.approx(ref.statistic)
    assert c["df"] == pytest.approx(3.3063, abs=1e-4)  # the record's README: t = -11.83, df ~ 3.31
    assert c["verdict"] == "consistent with the claim"  # better than the "claim", so never worse
    worse = claim_statistics(prior, {"source": "t", "val_bpb": repro})
    assert worse["verdict_at"] == {"p<0.01": "worse than claimed", "p<0.25": "worse than claimed"}
    point = claim_statistics(repro, {"source": "t", "mean": 1.1147})
    assert point["p_value"] == pytest.approx(st.ttest_1samp(list(repro.values()), 1.1147,
                                                            alternative="greater").pvalue, rel=1e-12)
    stats = claim_statistics(repro, {"source": "t", "mean": 1.1147, "std": 0.0004, "n": 3})
    ref = st.ttest_ind_from_stats(stats["val_bpb_mean"], stats["val_bpb_std"], 3, 1.1147, 0.0004, 3,
                                  equal_var=False, alternative="greater")
    assert stats["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert claim_statistics({1: 1.2}, {"source": "t", "mean": 1.1})["verdict"] == "no test"
    assert welch_less(1.0, 0.0, 3, 2.0) == (-float("inf"), 0.0, 2.0)


def test_claim_of_reads_the_newest_and_older_submission_formats():
    from orchestrator.records.folder import claim_of
    from orchestrator.records.script_resolve import parse_claim

    newest = {"val_bpb": 1.06, "val_bpb_std": 0.0009, "seeds": [42, 0],
              "seed_results": {"42": {"val_bpb": 1.059}, "0": {"val_bpb": 1.061}}}
    assert claim_of(newest)["val_bpb"] == {42: 1.059, 0: 1.061}
    pr779 = {"results": {"seeds": {"1337": {"val_bpb": 0.6663}, "42": {"val_bpb": 0.671}}, "mean_val_bpb": 0.6683,
                         "std_val_bpb": 0.0024}}
    assert claim_of(pr779) == {"source": "submission.json", "val_bpb": {1337: 0.6663, 42: 0.671}, "mean": 0.6683,
                               "std": 0.0024, "n": 2}
    assert claim_of({"val_bpb": 1.2243657})["mean"] == 1.2243657 and claim_of({"name": "x"}) is None
    assert parse_claim("1.1") == {"source": "--claim", "val_bpb": None, "mean": 1.1, "std": None, "n": None}
    with pytest.raises(ValueError, match="--claim"):
        parse_claim("nope")


def test_a_script_spec_reproduces_one_env_point(tmp_path, synthetic_data_dir):
    from orchestrator.records.pipeline import RecordSpecError
    from orchestrator.records.script_resolve import spec_reproduction
    from orchestrator.spec.sweep import sweep_from_dict

    shutil.copy(SCRIPT, tmp_path / "train_gpt.py")
    spec = {"name": "byo", "data": {"path": "data/syn"},
            "train": {"script": "train_gpt.py", "seeds": [1, 2], "env": {"ITERATIONS": 4}}}
    rep = spec_reproduction(sweep_from_dict(spec), set_env={"MODEL_DIM": "8"}, seeds=(3, 4),
                            data=str(synthetic_data_dir), workspace=tmp_path)
    assert rep.env() == {"ITERATIONS": "4", "MODEL_DIM": "8"} and rep.sweep.train.seeds == (3, 4)
    assert rep.sweep.data.path == str(synthetic_data_dir) and rep.claim is None
    grid = {**spec, "train": {**spec["train"], "env": {"ITERATIONS": [4, 8]}}}
    with pytest.raises(RecordSpecError, match="one env point"):
        spec_reproduction(sweep_from_dict(grid), workspace=tmp_path)


def test_a_bad_seed_names_the_file_it_came_from(tmp_path, synthetic_data_dir):
    """Issue 20: `golf reproduce` errors about seeds said `train.seeds.0: ...` without the log they
    came from."""
    from orchestrator.spec.sweep import SpecError

    rec = tmp_path / "2026-01-01_Bad"
    rec.mkdir()
    (rec / "train_gpt.py").write_text("print(1)\n")
    (rec / "README.md").write_text(README)
    (rec / "train_seed99999999999.log").write_text("final val_loss:2.0 val_bpb:1.2\n")
    with pytest.raises(SpecError) as e:
        record_dir_reproduction(rec, data=str(synthetic_data_dir), workspace=tmp_path)
    lines = e.value.lines
    assert any(x.startswith("train.seeds") and x.endswith(f"(from {rec}/train_seed99999999999.log)")
               for x in lines), lines

# ---------------------------------------------------------------------------------------------
# README commands as real READMEs write them (issue 19)

LOOP_README = """\
# A record

```bash
python3 - <<'PY'
print("torchrun is mentioned here but this is python")
PY
export NUM_LAYERS=11
export MATRIX_LR=0.025
for SEED in 314 42 0; do
  MODEL_DIM=512 \\
  SEED=$SEED uv run torchrun --standalone --nproc_per_node 8 train_gpt.py \\
      > train_seed${SEED}.log 2>&1
done
```
"""


def test_readme_run_reads_loops_uv_exports_and_python_m():
    from orchestrator.records.folder import readme_run

    run = readme_run(LOOP_README)
    assert run.env == {"NUM_LAYERS": "11", "MATRIX_LR": "0.025", "MODEL_DIM": "512", "SEED": "$SEED"}
    assert run.launcher == {"standalone": "true", "nproc_per_node": "8", "script": "train_gpt.py"}
    assert run.loop == ("SEED", ("314", "42", "0")) and run.how == "uv run torchrun"
    py = readme_run("```\nA=1 B='two words' python -m torch.distributed.run --nproc_per_node=4 train_gpt.py\n```\n")
    assert py.env == {"A": "1", "B": "two words"} and py.launcher["nproc_per_node"] == "4"
    assert py.how == "python -m torch.distributed.run"
    assert readme_run("```\nexport A=1\npython train_gpt.py\n```\n") is None


def test_a_loop_readme_reproduces_and_a_missing_script_says_where_and_how(record_dir, tmp_path):
    folder = tmp_path / "loop"
    shutil.copytree(record_dir, folder)
    (folder / "README.md").write_text(LOOP_README + "\nBuilt on PR #1797 and PR #2130.\n")
    rep = record_dir_reproduction(folder, workspace=tmp_path)
    assert rep.sweep.train.env["NUM_LAYERS"] == "11" and "SEED" not in rep.sweep.train.env
    (folder / "train_gpt.py").rename(tmp_path / "elsewhere.py")
    with pytest.raises(RecordFolderError) as e:
        record_dir_reproduction(folder, workspace=tmp_path)
    msg = str(e.value)
    assert "no train_gpt.py" in msg and "https://github.com/openai/parameter-golf/pull/1797" in msg
    assert msg.endswith("pass one with --script PATH") and "\n" not in msg
    rep = record_dir_reproduction(folder, workspace=tmp_path, script=tmp_path / "elsewhere.py")
    staged = Path(rep.sweep.train.script)
    assert staged.parent == tmp_path / ".golf" / "reproduce"
    assert (staged / "train_gpt.py").read_bytes() == (tmp_path / "elsewhere.py").read_bytes()
    assert not (folder / "train_gpt.py").exists()  # the record folder is left as it was


def test_missing_script_in_a_reference_folder_names_where_it_comes_from(reference_dir):
    import re

    d = reference_dir.path("records", "2026-03-17_NaiveBaseline")
    # the script path its README's torchrun command names (the authors' machine), read from the README
    named = re.search(r"torchrun\b.*?(\S*train_gpt\.py)", (d / "README.md").read_text()).group(1)
    with pytest.raises(RecordFolderError, match=re.escape(f"its command runs {named}; pass one with --script PATH")):
        record_dir_reproduction(d)
