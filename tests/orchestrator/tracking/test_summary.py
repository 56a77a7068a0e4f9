"""The smoke sweep end to end (the real CLI: real training, eval, mixing, local Ray, a real
`mlflow server` on loopback), and runs that compare at a glance: the parent run holds the headline
metrics, the plots and summary.csv; params have one name each; a copy of the spec under another
name reruns nothing and shows reused child runs; a rerun reuses everything without starting Ray.

The smoke sweep runs ONCE for the suite, here (~40 s on a free machine, minutes on CI's 2 cores):
tests/orchestrator/cli/test_run.py ran it a second time, on SQLite, only to assert other things."""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.tracking.plots import PLOTS
from tests.orchestrator.cli.test_run import ROOT, _golf

pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _spec(tmp: Path, name: str) -> str:
    text = (ROOT / "experiments" / "smoke.yaml").read_text().replace("name: smoke\n", f"name: {name}\n")
    (tmp / f"{name}.yaml").write_text(text)
    return f"{name}.yaml"


def _runs(client, name):
    exp = client.get_experiment_by_name(name)
    assert exp is not None, name
    return exp, client.search_runs([exp.experiment_id], "", max_results=1000)


@pytest.fixture(scope="module")
def swept(mlflow_server_session, tmp_path_factory):
    """The smoke sweep (as `sum-smoke`), then a copy of its spec (as `sum-copy`), same workspace."""
    mlflow_server_session.start()
    uri = mlflow_server_session.uri
    tmp = tmp_path_factory.mktemp("summary")
    first, _ = _golf(["run", _spec(tmp, "sum-smoke"), "--no-progress", "--tracking-uri", uri], tmp)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    copy, _ = _golf(["run", _spec(tmp, "sum-copy"), "--no-progress", "--tracking-uri", uri], tmp)
    assert copy.returncode == 0, copy.stdout[-3000:] + copy.stderr[-3000:]
    (tmp / "first.out").write_text(first.stdout + first.stderr)  # for a failing test's reader
    (tmp / "copy.out").write_text(copy.stdout + copy.stderr)
    return {"client": MlflowClient(uri), "first": first, "copy": copy, "tmp": tmp}


def test_smoke_sweep_end_to_end_runs_every_job(swept):
    c = swept["client"]
    assert (swept["tmp"] / "data" / "smoke" / "fineweb_val_000000.bin").is_file()  # synthetic data made
    _, runs = _runs(c, "sum-smoke")
    jobs = [r for r in runs if "golf.identity" in r.data.tags]
    assert len(jobs) == 52 and all(r.info.status == "FINISHED" for r in jobs)
    kinds = Counter(r.data.tags["golf.kind"] for r in jobs)
    assert kinds == Counter(train=2, eval=4, mix=46)
    mix = [r for r in jobs if r.data.tags["golf.kind"] == "mix"]
    modes = {r.data.params["mixer.mode"]: r.data.tags["golf.compliant"] for r in mix}
    assert modes == {"none": "true", "hashed_target": "false", "normalized": "true", "tilt": "true"}
    tilt = [r for r in mix if r.data.params["mixer.mode"] == "tilt"]
    assert len(tilt) == 8 and all("tilt_gated" in r.data.metrics and "tilt_hits" in r.data.metrics for r in tilt)
    assert not [k for r in tilt for k in r.data.params if k.startswith("mixer.alpha")]  # tilt logs its own fields
    assert "hashed_target" in swept["first"].stdout and "normalized" in swept["first"].stdout  # the final table


def test_parent_run_holds_best_compliant_val_bpb_plots_and_summary(swept):
    c = swept["client"]
    exp, runs = _runs(c, "sum-smoke")
    parent = next(r for r in runs if r.data.tags.get("golf.kind") == "sweep")
    children = [r for r in runs if "golf.identity" in r.data.tags]
    # every run kind says whether its score counts; legal first: a score that does not count is
    # never under val_bpb, so sorting by val_bpb ranks legal scores only
    assert all(r.data.tags.get("golf.compliant") in ("true", "false") for r in runs)
    for r in children:  # golf.compliant: the score counts = valid and not judged non-compliant
        t = r.data.tags
        assert t["golf.compliant"] == str(t["golf.valid"] == "true" and t["golf.audit_compliant"] != "false").lower()
    assert {r.data.tags["golf.compliant"] for r in children if r.data.params.get("mixer.mode") == "hashed_target"} \
        == {"false"}
    for r in children:
        legal = r.data.tags["golf.compliant"] == "true"
        assert ("val_bpb" in r.data.metrics) == legal and ("val_bpb_noncompliant" in r.data.metrics) != legal
    compliant = [r.data.metrics["val_bpb"] for r in children if "val_bpb" in r.data.metrics]
    hashed = [r.data.metrics["val_bpb_noncompliant"] for r in children
              if r.data.params.get("mixer.mode") == "hashed_target"]
    assert len(hashed) == 18
    ranked = c.search_runs([exp.experiment_id], "metrics.val_bpb > 0", order_by=["metrics.val_bpb ASC"])
    assert all(r.data.tags["golf.compliant"] == "true" for r in ranked)
    m = parent.data.metrics
    assert m["best_seed_val_bpb"] == pytest.approx(min(compliant), abs=1e-9)
    assert m["best_seed_val_bpb.hashed_target"] == pytest.approx(min(hashed), abs=1e-9)
    for mode in ("none", "normalized", "hashed_target", "model"):
        assert m[f"winner_seeds.{mode}"] == 2 and m[f"winner_val_bpb_std.{mode}"] >= 0
    # the parent's val_bpb is the winner's seed mean: "best" means one thing
    assert m["val_bpb"] == m["winner_val_bpb_mean"] >= m["best_seed_val_bpb"] and m["seeds"] == 2
    assert parent.data.tags["golf.winner_val_bpb"] == f"{m['val_bpb']:.5f}"
    desc = "tiny preset, synthetic data, 3x3 alpha grid in both mixer modes and a 2x2 tilt grid (CPU, minutes)"
    for text in (parent.data.tags["mlflow.note.content"], exp.tags["mlflow.note.content"]):
        assert text.startswith(desc + "\n\n**Leaderboard** (legal configurations only")
        assert "| 1 |" in text and f"{m['val_bpb']:.5f} ± {m['val_bpb_std']:.5f} | 2 |" in text
        assert "hashed_target" not in text
    best = c.get_run(parent.data.tags["golf.best_seed_run"])
    assert best.data.metrics["val_bpb"] == pytest.approx(min(
        r.data.metrics["val_bpb"] for r in children
        if r.data.tags["golf.job"].replace(f"/s{r.data.tags['golf.seed']}", "") == parent.data.tags["golf.winner"]))

    names = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert set(PLOTS) | {"summary.csv"} <= names, names
    dst = swept["tmp"] / "parent-artifacts"
    for p in PLOTS:
        data = Path(c.download_artifacts(parent.info.run_id, p, str(dst))).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1024, p
    rows = list(csv.DictReader(io.StringIO(
        Path(c.download_artifacts(parent.info.run_id, "summary.csv", str(dst))).read_text())))
    assert len(rows) == 52 and {r["kind"] for r in rows} == {"train", "eval", "mix"}
    assert min(float(r["val_bpb"]) for r in rows if r["compliant"] != "false") == pytest.approx(m["best_seed_val_bpb"])
    # mix runs carry their drift across score-first chunks
    mix = next(r for r in children if r.data.params.get("mixer.mode") == "normalized")
    assert len(c.get_metric_history(mix.info.run_id, "chunk_val_bpb")) >= 2

    out = swept["first"].stdout
    assert "best compliant config val_bpb" in out and "normalized" in out and "±" in out
    headline = next(ln for ln in out.splitlines() if ln.startswith("sweep sum-smoke: best compliant"))
    assert f"{m['val_bpb']:.5f} ± {m['val_bpb_std']:.5f}" in headline


def test_params_one_name_per_field_and_short_run_names(swept):
    c = swept["client"]
    _, runs = _runs(c, "sum-smoke")
    children = [r for r in runs if "golf.identity" in r.data.tags]
    train_keys, eval_keys = set(), set()
    for r in children:
        p = r.data.params
        assert not any(k.startswith("run.") for k in p), sorted(p)[:5]  # never train.* AND run.train.*
        assert "None" not in p.values()  # null is spelled one way (null)
        kind = r.data.tags["golf.kind"]
        if kind == "train":
            train_keys |= set(p)
            assert "train.seed" in p and "model.num_layers" in p and "train_eval.chunk_tokens" in p
        if kind == "eval":
            eval_keys |= set(p)
        if kind == "mix" and p["mixer.mode"] == "none":
            assert not [k for k in p if k.startswith("mixer.") and k != "mixer.mode"], p
        # short name, distinguishing part first; the plan path in golf.job
        assert r.data.tags["golf.job"].startswith(kind + "/") and len(r.info.run_name) <= 40
        assert r.info.run_name.endswith(f"s{r.data.tags['golf.seed']}"), r.info.run_name
    # a train run's roundtrip-eval settings never share a name with an eval run's
    assert not {k for k in train_keys if k.startswith("eval.")} and "eval.chunk_tokens" in eval_keys
    names = {r.info.run_name for r in children}
    assert "normalized a=0.1/0.4 s1337" in names and "none s42" in names and "train s1337" in names


def test_a_copy_of_the_spec_reruns_nothing_and_shows_reused_children(swept):
    c = swept["client"]
    out = swept["copy"].stdout
    assert "52 reused" in out and "ray:" not in out, out[-2000:]  # no train or eval job ran: no Ray
    _, orig = _runs(c, "sum-smoke")
    by_identity = {r.data.tags["golf.identity"]: r for r in orig if "golf.identity" in r.data.tags}
    exp, runs = _runs(c, "sum-copy")
    parent = next(r for r in runs if r.data.tags.get("golf.kind") == "sweep")
    children = [r for r in runs if "golf.identity" in r.data.tags]
    assert len(children) == 52
    for r in children:
        src = by_identity[r.data.tags["golf.identity"]]
        assert r.data.tags["golf.reused_from"] == src.info.run_id
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id and r.info.status == "FINISHED"
        assert r.data.metrics.get("val_bpb") == src.data.metrics.get("val_bpb")
        assert r.data.metrics.get("val_bpb_noncompliant") == src.data.metrics.get("val_bpb_noncompliant")
        assert not c.list_artifacts(r.info.run_id)  # referenced, not uploaded again
    assert parent.data.metrics["val_bpb"] == pytest.approx(
        c.get_run(next(r for r in orig if r.data.tags.get("golf.kind") == "sweep").info.run_id)
        .data.metrics["val_bpb"])


def test_a_rerun_reuses_everything_adds_no_second_copy_and_starts_no_ray(swept):
    c = swept["client"]
    tmp, uri = swept["tmp"], c.tracking_uri
    _, before = _runs(c, "sum-copy")
    again, took = _golf(["run", "sum-copy.yaml", "--no-progress", "--tracking-uri", uri], tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "52 reused" in again.stdout and "ray:" not in again.stdout  # no job ran, Ray never started
    _, runs = _runs(c, "sum-copy")
    assert len([r for r in runs if "golf.identity" in r.data.tags]) == 52
    assert len(runs) == len(before)  # not even a second parent run
    print(f"golf run smoke rerun: {took:.1f} s")
    assert took < 30
