"""orchestrator.records.pipeline: a golf_core record and a script record go through the one
pipeline (the same record_from_report, the same folder writer, the same MLflow logging).

Both kinds run with an injected run function of the driver's shape (real plan, real Tracker on
a SQLite store, real record folders written; the job results are made up: running jobs is what
the end-to-end tests in test_reproduce.py and test_reproduce_script.py do).
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from orchestrator.records import pipeline
from orchestrator.records.golf_record import GolfRecord, reproduce
from orchestrator.records.script_record import ScriptRecord, reproduce_script
from orchestrator.records.script_resolve import record_dir_reproduction
from tests.orchestrator.records.test_reproduce import _write_spec, fake_driver

LN2 = math.log(2.0)
RATIO = 0.41
SCRIPT = Path(__file__).resolve().parents[2] / "fixtures" / "scripts" / "train_gpt_tiny.py"
README = """# Tiny

```bash
ITERATIONS=4 MODEL_DIM=16 SEED=1337 torchrun --standalone --nproc_per_node=1 train_gpt.py
```
"""


def _score_line(loss: float) -> str:
    return f"final_int8_zlib_roundtrip_exact val_loss:{loss:.8f} val_bpb:{loss / LN2 * RATIO:.8f}"


def fake_script_driver(losses: dict[int, float]):
    """A run function of the driver's shape for script jobs: each job finished, its result the
    score line of the train.log it sends back (as workers.script_runner parses it)."""
    from orchestrator.run.types import JobOutcome, SweepReport
    from orchestrator.run.validity import judge

    def run(plan, tracker, data_dir, work_dir):
        tracker.start_sweep(plan.sweep_identity, params={"golf.sweep_name": plan.sweep_name}, name=plan.sweep_name)
        outcomes = {}
        for job in plan.jobs:
            loss = round(losses[job.seed], 8)
            result = {"val_loss": loss, "val_bpb": round(loss / LN2 * RATIO, 8),
                      "final_tag": "final_int8_zlib_roundtrip_exact", "steps": 4, "step_avg_ms": 12.5,
                      "train_time_s": 0.05, "artifact_bytes": 54_321, "world_size": 1}
            log = f"step:4/4 train_loss:3.1 train_time:50ms step_avg:12.50ms\n{_score_line(loss)}\n".encode()
            outcomes[job.identity] = JobOutcome(job, state="finished", run_id=f"run-{job.seed}", result=result,
                                                verdict=judge(job, result), train_log=log)
        report = SweepReport(plan, outcomes, 0.0, status="FINISHED")
        tracker.sweep.finish("FINISHED")
        return report

    return run


@pytest.fixture(scope="module")
def fineweb_like_dir(tmp_path_factory, synthetic_data_dir) -> Path:
    d = tmp_path_factory.mktemp("fineweb_like")
    for p in synthetic_data_dir.iterdir():
        shutil.copy(p, d / ("fineweb_1024_bpe.model" if p.suffix == ".model" else p.name))
    return d


def _record_dir(base: Path, losses: dict[int, float]) -> Path:
    rec = base / "2026-11-25_Tiny_3.0"
    rec.mkdir()
    shutil.copy(SCRIPT, rec / "train_gpt.py")
    (rec / "README.md").write_text(README)
    for s, loss in losses.items():
        (rec / f"train_seed{s}.log").write_text(_score_line(loss) + "\n")
    (rec / "submission.json").write_text(json.dumps({"seed_results": {
        str(s): {"val_bpb": round(round(v, 8) / LN2 * RATIO, 8)} for s, v in losses.items()}}))
    return rec


def test_both_record_kinds_go_through_the_one_pipeline(tmp_path, fineweb_like_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    seen = []
    real = pipeline.record_from_report

    def spy(source, *a, **k):
        seen.append(source)
        return real(source, *a, **k)

    monkeypatch.setattr(pipeline, "record_from_report", spy)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    losses = {1337: 1.780, 42: 1.781, 2024: 1.7805}
    golf = reproduce(_write_spec(tmp_path, fineweb_like_dir, name="golf-kind"), workspace=tmp_path,
                     date="2026-11-25", tracking_uri=uri, run_fn=fake_driver(losses), say=lambda m: None)
    script_losses = {1337: 2.5, 42: 2.52}
    rep = record_dir_reproduction(_record_dir(tmp_path, script_losses), data=str(fineweb_like_dir),
                                  workspace=tmp_path)
    script = reproduce_script(rep, workspace=tmp_path, date="2026-11-26", tracking_uri=uri,
                              run_fn=fake_script_driver(script_losses), say=lambda m: None)

    # one function made both records, each from its own source
    assert [type(s) for s in seen] == [GolfRecord, ScriptRecord]
    assert golf.source is seen[0] and script.source is seen[1]
    assert golf.stats["val_bpb"] == pytest.approx({s: v / LN2 * RATIO for s, v in losses.items()})
    assert script.stats["val_bpb"] == pytest.approx({s: v / LN2 * RATIO for s, v in script_losses.items()}, abs=1e-8)
    assert golf.claim_stats is None and script.claim_stats["verdict"] == "consistent with the claim"

    # one writer: the same layout and the same submission.json keys, whatever the kind
    common = {"README.md", "submission.json", "statistics.md", "spec.yaml", "train_gpt.py"}
    for res, seeds in ((golf, losses), (script, script_losses)):
        names = {p.name for p in res.folder.iterdir()}
        assert common | {f"train_seed{s}.log" for s in seeds} <= names, names
        assert res.code_bytes == (res.folder / "train_gpt.py").stat().st_size
    subs = [json.loads((r.folder / "submission.json").read_text()) for r in (golf, script)]
    assert list(subs[0]) == list(subs[1]) and list(subs[0])[-1] == "golf"
    assert (script.folder / "train_gpt.py").read_bytes() == SCRIPT.read_bytes()
    assert (script.folder / "train_seed42.log").read_text().endswith(_score_line(2.52) + "\n")
    assert "## Against the claim" in (script.folder / "statistics.md").read_text()
    assert "## Against the claim" not in (golf.folder / "statistics.md").read_text()

    # one MLflow logging: the statistics on each sweep's parent run, the claim's only where there is one
    c = MlflowClient(uri)
    for res in (golf, script):
        run = c.get_run(res.sweep_run_id)
        assert run.data.metrics["val_bpb_mean"] == pytest.approx(res.stats["val_bpb_mean"])
        assert run.data.tags["golf.record_folder"] == res.folder.name
        assert ("golf.claim_verdict" in run.data.tags) == (res.claim_stats is not None)
