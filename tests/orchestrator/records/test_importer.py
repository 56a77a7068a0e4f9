"""`golf parse-log` and `golf import` through the CLI dispatcher; import against a real
`mlflow server`, with the reference record folders and with folders written here."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from golf_core.cli import run_cli
from golf_core.logparse import parse_log_file
from orchestrator.records.folder import RecordFolderError, claim_of, read_record_folder, readme_command
from orchestrator.records.importer import record_time_ms
from orchestrator.records.judge import RULINGS, choose_score, judge_seed

README = """\
# A record

Run it:
```bash
pip install zstandard
NUM_LAYERS=11 MATRIX_LR=0.025 \\
  TTT_ENABLED=1 NAME="two words" SEED=1337 \\
torchrun --standalone --nproc_per_node=8 train_gpt.py
```
Then `SEED=5 torchrun` inline is prose, not a block.
"""

LOG = """\
seed:{seed}
step:1/4 train_loss:6.5 train_time:100ms step_avg:100.00ms
step:4/4 train_loss:4.{seed} train_time:400ms step_avg:100.00ms
step:4/4 val_loss:4.5 val_bpb:2.6 train_time:400ms step_avg:100.00ms
Total submission size int8+zlib: 12345 bytes
final_int8_zlib_roundtrip val_loss:4.4 val_bpb:2.5 eval_time:40ms
final_int8_zlib_roundtrip_exact val_loss:4.40000{seed} val_bpb:2.50000{seed}
"""


def golf(argv: list[str]) -> int:
    return run_cli("golf", ("orchestrator.cli.imports",), argv)


def _folder(root: Path, name: str = "2026-01-01_Tiny", seeds=(1, 2), extra: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "README.md").write_text(README)
    (d / "submission.json").write_text(json.dumps({
        "name": "Tiny", "val_bpb": 2.5, "seeds": list(seeds),
        "seed_results": {str(s): {"val_bpb": float(f"2.50000{s}")} for s in seeds}}))
    for s in seeds:
        (d / f"train_seed{s}.log").write_text(LOG.format(seed=s))
    for fname, text in (extra or {}).items():
        (d / fname).write_text(text)
    return d


def test_readme_command():
    env, launcher = readme_command(README)
    assert env == {"NUM_LAYERS": "11", "MATRIX_LR": "0.025", "TTT_ENABLED": "1", "NAME": "two words", "SEED": "1337"}
    assert launcher == {"standalone": "true", "nproc_per_node": "8", "script": "train_gpt.py"}
    assert readme_command("no code here\n```\nls -la\n```\n") is None


def test_read_record_folder(tmp_path):
    d = _folder(tmp_path, extra={"log_ablation.txt": LOG.format(seed=9), "requirements.txt": "numpy\n"})
    rf = read_record_folder(d)
    assert [(log.path.name, log.seed) for log in rf.logs] == [("train_seed1.log", 1), ("train_seed2.log", 2)]
    assert {p.name for p, _ in rf.skipped} == {"log_ablation.txt", "requirements.txt"}
    assert rf.logs[0].summary.val_bpb == 2.500001 and rf.submission["name"] == "Tiny"
    # no seed in any name: every scored log is a seed log, its seed from the log's seed line
    one = tmp_path / "one"
    one.mkdir()
    (one / "train.log").write_text(LOG.format(seed=7))
    assert [(log.path.name, log.seed) for log in read_record_folder(one).logs] == [("train.log", 7)]


@pytest.mark.parametrize("setup, phrase", [
    (lambda d: None, "no such directory"),
    (lambda d: (d.mkdir(), (d / "notes.txt").write_text("hello\n")), "no log with a score line (notes.txt: no score line"),
    (lambda d: (d.mkdir(), (d / "train.log").write_text(LOG.format(seed=1)), (d / "submission.json").write_text("{oops")),
     "submission.json: not valid JSON"),
])
def test_bad_folders_are_one_line_exit_2(tmp_path, capsys, setup, phrase):
    d = tmp_path / "rec"
    setup(d)
    with pytest.raises(RecordFolderError, match=phrase.replace("(", r"\(")):
        read_record_folder(d)
    assert golf(["import", str(d), "--tracking-uri", f"sqlite:///{tmp_path / 'never.db'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("golf: error: ") and phrase in err and "\n" not in err
    assert not (tmp_path / "never.db").exists()  # checked before anything was sent


def test_parse_log_cli(tmp_path, capsys):
    d = _folder(tmp_path)
    logs = sorted(str(p) for p in d.glob("*.log"))
    assert golf(["parse-log", "--json", *logs]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == logs
    assert [r["val_bpb"] for r in rows] == [2.500001, 2.500002]
    assert rows[0]["curve_points"] == [[1, 6.5], [4, 4.1]] and rows[0]["artifact_bytes"] == 12345
    assert golf(["parse-log", *logs]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["val_bpb", "val_loss"] and len(out) == 3 and out[1].endswith(logs[0])
    bad = tmp_path / "nothing.log"
    bad.write_text("step:1/4 train_loss:6.5\n")
    assert golf(["parse-log", logs[0], str(bad)]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err.strip() == f"golf: error: {bad}: no score line ('<tag> val_loss:X val_bpb:Y')"


def test_parse_log_cli_every_reference_log(reference_dir, capsys):
    logs = [p for d in reference_dir.record_dirs() for p in sorted(d.iterdir()) if p.suffix in (".log", ".txt")]
    assert golf(["parse-log", "--json", *map(str, logs)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(logs) >= 10
    for log, row in zip(logs, rows):
        assert row["val_bpb"] == parse_log_file(log).val_bpb and row["curve_points"], log.name


# ---- import into a real mlflow server ----------------------------------------------------------

def _record_runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], "tags.`golf.kind` = 'record'", max_results=1000)


def test_import_twice_reference_records(reference_dir, mlflow_server, capsys):
    from mlflow.tracking import MlflowClient

    dirs = [str(d) for d in reference_dir.record_dirs()]
    expected = {(rf.name, log.path.name): log for d in dirs for rf in [read_record_folder(d)] for log in rf.logs}
    exp = f"records-{uuid.uuid4().hex[:8]}"
    args = ["import", *dirs, "--experiment", exp, "--tracking-uri", mlflow_server.uri]
    assert golf(args) == 0
    out = capsys.readouterr().out
    assert f"{len(expected)} run(s) imported, 0 already there" in out
    assert "Creating initial MLflow database tables" not in out
    first = _record_runs(mlflow_server.uri, exp)
    assert golf(args) == 0
    assert f"0 run(s) imported, {len(expected)} already there" in capsys.readouterr().out
    second = _record_runs(mlflow_server.uri, exp)
    assert sorted(r.info.run_id for r in first) == sorted(r.info.run_id for r in second)
    assert len(second) == len(expected)  # once each
    c = MlflowClient(mlflow_server.uri)
    for run in second:
        t, m, p = run.data.tags, run.data.metrics, run.data.params
        log = expected[(t["golf.source"], t["golf.log"])]
        assert run.info.status == "FINISHED" and t["golf.identity"] == log.sha256
        assert t["golf.seed"] == str(log.seed)
        rf = read_record_folder(next(d for d in dirs if d.endswith(t["golf.source"])))
        choice = choose_score(log.path, log.summary, ((claim_of(rf.submission) or {}).get("val_bpb") or {}).get(log.seed))
        verdict = judge_seed(choice.summary, RULINGS.get(rf.name))
        assert t["golf.score_tag"] == choice.tag and t["golf.compliant"] == str(verdict.compliant).lower()
        assert t["golf.valid"] == str(verdict.valid).lower() and t.get("golf.reason") == verdict.reason
        # legal first: a score that does not count is never under val_bpb
        key = "val_bpb" if verdict.compliant else "val_bpb_noncompliant"
        assert m[key] == choice.summary.val_bpb and m["artifact_bytes"] == log.summary.artifact_bytes
        assert ("val_bpb_noncompliant" if verdict.compliant else "val_bpb") not in m
        assert m["steps"] == log.summary.steps
        assert run.info.start_time == record_time_ms(rf)
        for tag, (_loss, bpb) in log.summary.scores.items():
            assert m[f"val_bpb.{tag}"] == bpb
        assert p["torchrun.nproc_per_node"] == "8"
        if "SEED" in [k.removeprefix("env.") for k in p]:
            assert p["env.SEED"] == str(log.seed)
        names = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert {t["golf.log"], "submission.json", "README.md"} <= names
    verdicts = {(r.data.tags["golf.source"][:10], r.data.tags["golf.compliant"]) for r in second}
    assert ("2026-03-25", "false") in verdicts and ("2026-04-27", "true") in verdicts  # #779 ruled out
    # one run in full: params from the README and submission.json, both curves
    run = next(r for r in second if r.data.tags["golf.source"].endswith("1.0611")
               and r.data.tags["golf.seed"] == "42")
    assert run.data.params["env.TTT_LORA_RANK"] == "80"
    assert run.data.params["submission.seed_results.42.val_bpb"] == "1.05989454"
    assert run.data.params["submission.seeds"] == "[42, 0, 1234]"
    log = expected[(run.data.tags["golf.source"], "train_seed42.log")]
    hist = c.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((h.step, h.value) for h in hist) == sorted(log.summary.curve_points)
    vb = c.get_metric_history(run.info.run_id, "val_bpb_step")
    assert [(h.step, h.value) for h in vb] == [(s, b) for s, _l, b in log.summary.val_points]


def test_import_replaces_an_incomplete_import(tmp_path, mlflow_server, capsys):
    from mlflow.tracking import MlflowClient

    d = _folder(tmp_path, seeds=(1, 2))
    rf = read_record_folder(d)
    exp = f"records-{uuid.uuid4().hex[:8]}"
    c = MlflowClient(mlflow_server.uri)
    exp_id = c.create_experiment(exp)
    # an import that died after creating its run: RUNNING, nothing logged
    dead = c.create_run(exp_id, tags={"golf.kind": "record", "golf.identity": rf.logs[0].sha256}).info.run_id
    assert golf(["import", str(d), "--experiment", exp, "--tracking-uri", mlflow_server.uri]) == 0
    assert "2 run(s) imported, 0 already there, 1 incomplete import(s) replaced" in capsys.readouterr().out
    runs = _record_runs(mlflow_server.uri, exp)
    by_status = sorted((r.info.status, r.data.tags.get("golf.killed_reason", "")) for r in runs)
    assert by_status == [("FINISHED", ""), ("FINISHED", ""), ("KILLED", "incomplete_import")]
    assert c.get_run(dead).info.status == "KILLED"
    # a changed log byte is a new log: imported beside the old one
    log = d / "train_seed2.log"
    log.write_text(log.read_text() + "\n")
    assert golf(["import", str(d), "--experiment", exp, "--tracking-uri", mlflow_server.uri]) == 0
    assert "1 run(s) imported, 1 already there" in capsys.readouterr().out


def _score_lines(seed: int, tail: str = "") -> str:
    """A log whose claimed score (sliding window, 1.10000<seed>) is not its last line (a worse TTT)."""
    return (f"seed:{seed}\nstep:4/4 train_loss:4.0 train_time:590000ms step_avg:100.00ms\n"
            "Total submission size int6+lzma: 15000000 bytes\n"
            f"final_int6_sliding_window_exact val_loss:1.9 val_bpb:1.10000{seed} eval_time:300000ms\n"
            f"final_int6_ttt_exact val_loss:2.2 val_bpb:1.33603{seed} eval_time:100000ms\n" + tail)


def test_import_keeps_the_good_takes_the_claimed_score_judges_each_seed(tmp_path, mlflow_server, capsys):
    from mlflow.tracking import MlflowClient

    good = _folder(tmp_path, "2026-02-03_Good", seeds=(1, 2))
    (good / "notes_copy.log").write_bytes((good / "train_seed1.log").read_bytes())  # no seed in name: skipped
    (good / "train_seed1_again.log").write_bytes((good / "train_seed1.log").read_bytes())  # byte-identical
    logless = tmp_path / "2026-02-04_NoLog"
    logless.mkdir()
    (logless / "README.md").write_text(README)
    (logless / "train.log").write_text("step:1/4 train_loss:6.5\n")
    claimed = tmp_path / "2026-02-05_Claimed"
    claimed.mkdir()
    (claimed / "submission.json").write_text(json.dumps({
        "date": "2026-02-05", "seed_results": {"1": {"val_bpb": 1.100001}, "2": {"val_bpb": 1.1000}}}))
    (claimed / "train_seed1.log").write_text(_score_lines(1))
    (claimed / "train_seed2.log").write_text(_score_lines(2))
    over = tmp_path / "2026-02-06_Over"
    over.mkdir()
    (over / "train_seed7.log").write_text(_score_lines(7).replace("15000000 bytes", "16000001 bytes"))
    exp = f"records-{uuid.uuid4().hex[:8]}"
    args = ["import", str(good), str(logless), str(claimed), str(over), "--experiment", exp,
            "--tracking-uri", mlflow_server.uri]
    assert golf(args) == 0
    out = capsys.readouterr().out
    assert f"golf: skipped folder {logless}: no log with a score line" in out
    assert "duplicate 2026-02-03_Good/train_seed1_again.log: byte-identical to 2026-02-03_Good/train_seed1.log" in out
    assert "5 run(s) imported, 0 already there, 1 duplicate log(s), 1 folder(s) skipped" in out
    lines = out.rstrip().splitlines()
    assert lines[-2] == (f"golf:   {logless}: no log with a score line (train.log: no score line "
                         "('<tag> val_loss:X val_bpb:Y'))")
    # one link that opens the runs, sorted by val_bpb, in an experiment the UI opens on its runs
    exp_id = MlflowClient(mlflow_server.uri).get_experiment_by_name(exp).experiment_id
    assert lines[-1] == (f"golf: look: {mlflow_server.uri}/#/experiments/{exp_id}/runs"
                         "?viewStateShareKey=golf-legal-first")
    etags = MlflowClient(mlflow_server.uri).get_experiment(exp_id).tags
    assert etags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(json.loads(etags["mlflow.sharedViewState.golf-legal-first"])["state"])
    assert view["orderByKey"] == "metrics.`val_bpb`" and view["orderByAsc"] is True
    assert {"metrics.`val_bpb`", "tags.`golf.seed`", "tags.`golf.compliant`"} <= set(view["selectedColumns"])
    runs = {r.info.run_name: r for r in _record_runs(mlflow_server.uri, exp)}
    assert sorted(runs) == ["2026-02-03_Good/seed1", "2026-02-03_Good/seed2", "2026-02-05_Claimed/seed1",
                            "2026-02-05_Claimed/seed2", "2026-02-06_Over/seed7"]
    c1 = runs["2026-02-05_Claimed/seed1"]
    assert c1.data.metrics["val_bpb"] == 1.100001 and c1.data.tags["golf.score_tag"] == "final_int6_sliding_window_exact"
    assert c1.data.metrics["eval_time_s"] == 300.0  # the chosen line's own eval time
    assert c1.data.tags["golf.compliant"] == "true" and "golf.score_mismatch" not in c1.data.tags
    assert c1.info.start_time == 1770249600000  # 2026-02-05T00:00Z: the record's date
    assert c1.info.end_time == c1.info.start_time + 890000  # train 590 s + eval 300 s
    # the 4-decimal claim 1.1000 matches the sliding-window line 1.100002 too
    assert runs["2026-02-05_Claimed/seed2"].data.metrics["val_bpb"] == 1.100002
    bad = runs["2026-02-06_Over/seed7"]
    assert bad.data.tags["golf.compliant"] == "false" and bad.data.tags["golf.valid"] == "false"
    assert "16,000,001 bytes (limit 16,000,000)" in bad.data.tags["golf.reason"]
    assert "val_bpb" not in bad.data.metrics and bad.data.metrics["val_bpb_noncompliant"] == 1.336037
    # no claim: the last line, and no mismatch tag
    assert bad.data.tags["golf.score_tag"] == "final_int6_ttt_exact"
    # sorting by val_bpb ranks legal scores only
    c = MlflowClient(mlflow_server.uri)
    ranked = c.search_runs([exp_id], "metrics.val_bpb > 0", order_by=["metrics.val_bpb ASC"])
    assert [r.info.run_name for r in ranked][:2] == ["2026-02-05_Claimed/seed1", "2026-02-05_Claimed/seed2"]
    assert "2026-02-06_Over/seed7" not in [r.info.run_name for r in ranked]


def test_import_score_mismatch_and_score_tag(tmp_path, mlflow_server, capsys):
    d = tmp_path / "2026-02-07_Mismatch"
    d.mkdir()
    (d / "submission.json").write_text(json.dumps({"seed_results": {"3": {"val_bpb": 1.2}}}))
    (d / "train_seed3.log").write_text(_score_lines(3))
    exp = f"records-{uuid.uuid4().hex[:8]}"
    assert golf(["import", str(d), "--experiment", exp, "--tracking-uri", mlflow_server.uri]) == 0
    out = capsys.readouterr().out
    assert ("score mismatch 2026-02-07_Mismatch/train_seed3.log: submission.json claims val_bpb 1.2; no score "
            "line matches (the last, final_int6_ttt_exact, is 1.33603300)") in out
    (run,) = _record_runs(mlflow_server.uri, exp)
    assert "no score line matches" in run.data.tags["golf.score_mismatch"]
    assert run.data.metrics["val_bpb"] == 1.336033
    exp2 = f"records-{uuid.uuid4().hex[:8]}"
    assert golf(["import", str(d), "--experiment", exp2, "--tracking-uri", mlflow_server.uri,
                 "--score-tag", "final_int6_sliding_window_exact"]) == 0
    (run,) = _record_runs(mlflow_server.uri, exp2)
    assert run.data.metrics["val_bpb"] == 1.100003 and run.data.tags["golf.score_from"] == "--score-tag"


def test_import_into_a_new_sqlite_store_prints_no_library_notices_and_the_ui_command(tmp_path):
    import subprocess
    import sys

    d = _folder(tmp_path)
    db = tmp_path / "m.db"
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "import", str(d), "--tracking-uri",
                        f"sqlite:///{db}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Creating initial MLflow database tables" not in p.stdout + p.stderr
    assert "INFO" not in p.stderr, p.stderr[-2000:]
    last = p.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"golf: look: mlflow ui --backend-store-uri sqlite:///{db}, then open "
                           "http://127.0.0.1:5000/#/experiments/")
