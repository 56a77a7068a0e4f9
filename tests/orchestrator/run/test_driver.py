"""The driver on a real local Ray (8 logical GPUs) and a real `mlflow server`, with fast fake
job functions (tests/workers/fakes.py) injected: gangs, retries, invalid results, optuna, Ctrl-C."""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

ray = pytest.importorskip("ray")

from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.run.driver import run_plan  # noqa: E402
from orchestrator.tracking import Tracker  # noqa: E402
from tests.workers.fakes import FakeRunner, small_plan  # noqa: E402


def _runs(uri: str, experiment: str) -> list:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    return c.search_runs([exp.experiment_id], "", max_results=1000) if exp else []


def _by_identity(runs) -> dict[str, list]:
    out = defaultdict(list)
    for r in runs:
        if "golf.identity" in r.data.tags:
            out[r.data.tags["golf.identity"]].append(r)
    return out


def _run(plan, server, tmp_path, **opts):
    tracker = Tracker(server.uri, plan.sweep_name, tmp_path / "journal")
    try:
        report = run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(tmp_path)), work_dir=str(tmp_path / "w"),
                                                       **opts))
    finally:
        assert tracker.close(timeout=60)
    return report


def test_gang_two_ranks_strict_pack(ray_local, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    plan = small_plan("gang", seeds=(1,), ranks=2, gpus=2, alphas=(0.1, 0.3), modes=("normalized", "hashed_target"))
    report = _run(plan, mlflow_server, tmp_path)
    assert report.counts() == Counter(finished=len(plan.jobs))
    train = next(o for o in report.outcomes.values() if o.job.kind == "train")
    ranks = train.output["ranks"]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["pid"] != ranks[1]["pid"]
    assert ranks[0]["placement_group_id"] == ranks[1]["placement_group_id"] == train.output["placement"]["placement_group_id"]
    pg = ray.util.placement_group_table()[train.output["placement"]["placement_group_id"]]
    assert pg["strategy"] == "STRICT_PACK" and len(pg["bundles"]) == 2
    assert pg["state"] == "REMOVED"  # released once the job finished
    assert len({r["node_id"] for r in ranks}) == 1
    assert sorted(g for r in ranks for g in r["gpu_ids"]) == sorted({g for r in ranks for g in r["gpu_ids"]})  # 2 GPUs
    assert train.result["world_size"] == 2 and train.result["allreduce_sum"] == 2.0  # torch.distributed (gloo)
    # results flow into MLflow: metrics, per-step train_loss, artifact files, validity tags
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    run = runs[train.job.identity][0]
    assert run.info.status == "FINISHED" and run.data.tags["golf.valid"] == "true"
    c = MlflowClient(mlflow_server.uri)
    assert [m.step for m in c.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3, 4, 5]
    assert {a.path for a in c.list_artifacts(run.info.run_id)} == {"model.ptz", "artifact.json", "result.json"}
    mixes = [o for o in report.outcomes.values() if o.job.kind == "mix"]
    for o in mixes:
        tag = runs[o.job.identity][0].data.tags["golf.compliant"]
        assert tag == ("false" if o.job.mode == "hashed_target" else "true")
    # one n-gram pass per table key on the eval actor, not one per alpha point
    calls = [json.loads(line) for p in tmp_path.glob("calls-*.jsonl") for line in p.read_text().splitlines()]
    assert Counter(c["kind"] for c in calls)["ngram"] == 2


def test_sigkilled_workers_are_retried(ray_local, mlflow_server, tmp_path):
    plan = small_plan("retry", seeds=(3,), ranks=2, gpus=2, alphas=(0.1,),
                      train_fake={"die_once": str(tmp_path / "train-died"), "die_rank": 1},
                      eval_fake={"die_once": str(tmp_path / "eval-died")})
    report = _run(plan, mlflow_server, tmp_path)
    assert (tmp_path / "train-died").exists() and (tmp_path / "eval-died").exists()
    assert report.counts() == Counter(finished=len(plan.jobs))
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    for job in plan.jobs:
        statuses = sorted((r.data.tags["golf.attempt"], r.info.status) for r in runs[job.identity])
        if job.kind in ("train", "eval"):  # the killed attempt stays visible, the retry finished
            assert statuses == [("1", "FAILED"), ("2", "FINISHED")], (job.name, statuses)
            failed = next(r for r in runs[job.identity] if r.info.status == "FAILED")
            assert "worker died" in failed.data.tags["golf.reason"]
        else:
            assert statuses == [("1", "FINISHED")]


def test_invalid_results_are_recorded_and_the_sweep_goes_on(ray_local, mlflow_server, tmp_path):
    plan = small_plan("invalid", seeds=(4, 5, 6), alphas=(0.1,),
                      per_seed_train_fake={4: {"nan": True}, 5: {"artifact_bytes": 16_000_001}})
    report = _run(plan, mlflow_server, tmp_path)
    runs = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))
    by = {o.job.name: o for o in report.outcomes.values()}
    nan = runs[by["train/s4"].job.identity]
    assert [r.info.status for r in nan] == ["FINISHED"]
    assert nan[0].data.tags["golf.valid"] == "false" and "not finite" in nan[0].data.tags["golf.reason"]
    assert by["eval/s4"].state == "skipped" and by["mix/s4/normalized/a0.1"].state == "skipped"
    big = runs[by["train/s5"].job.identity][0]
    assert big.data.tags["golf.valid"] == "false" and "16000001" in big.data.tags["golf.reason"]
    mix5 = runs[by["mix/s5/normalized/a0.1"].job.identity][0]  # dependents run, inherit the verdict
    assert mix5.data.tags["golf.valid"] == "false" and "upstream invalid" in mix5.data.tags["golf.reason"]
    for name in ("train/s6", "eval/s6", "mix/s6/normalized/a0.1"):
        assert runs[by[name].job.identity][0].data.tags["golf.valid"] == "true"
    assert report.best()["val_bpb"] == min(o.result["val_bpb"] for o in report.outcomes.values()
                                           if o.job.seed == 6)


def test_optuna_mix_search_logs_trials(ray_local, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    space = {"alpha_base": {"low": 0.0, "high": 0.5}, "orders": {"choices": [[2, 3], [2, 3, 4]]}}
    plan = small_plan("optuna", seeds=(7,), alphas=(), optuna={"n": 12, "seed": 0, "space": space})
    report = _run(plan, mlflow_server, tmp_path)
    opt = next(o for o in report.outcomes.values() if getattr(o.job, "optuna", None))
    assert opt.state == "finished" and len(opt.result["trials"]) == 12
    assert opt.result["val_bpb"] == pytest.approx(min(t[1] for t in opt.result["trials"]))
    run = _by_identity(_runs(mlflow_server.uri, plan.sweep_name))[opt.job.identity][0]
    hist = MlflowClient(mlflow_server.uri).get_metric_history(run.info.run_id, "trial_val_bpb")
    assert sorted(m.step for m in hist) == list(range(12))
    # two order sets -> at most two n-gram passes for 13 mixes
    assert opt.result["ngram_passes"] <= 2


def test_ctrl_c_frees_actors_and_closes_runs(ray_local, mlflow_server, tmp_path):
    plan = small_plan("cancel", seeds=(8, 9), ranks=2, gpus=2, alphas=(0.1,), train_fake={"sleep": 30})
    seen = []

    def interrupt(what, out):
        seen.append((what, out.job.name))
        if what == "dispatch" and sum(1 for w, _ in seen if w == "dispatch") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(plan, mlflow_server, tmp_path, on_event=interrupt)
    table = ray.util.placement_group_table()
    mine = [pg for pg in table.values() if pg.get("name", "").startswith("golf-train-")
            and any(j.identity[:12] in pg["name"] for j in plan.jobs)]
    assert mine and all(pg["state"] == "REMOVED" for pg in mine)
    runs = _runs(mlflow_server.uri, plan.sweep_name)
    jobs = [r for r in runs if r.data.tags.get("golf.kind") == "train"]
    assert len(jobs) == 2 and all(r.info.status == "KILLED" for r in jobs)


def test_one_rank_chain_runs_in_one_worker_process(ray_local, mlflow_server, tmp_path):
    """train (1 rank) -> eval -> mix on one GPU: one long-lived worker, no process per kind."""
    plan = small_plan("oneproc", seeds=(2,), alphas=(0.1,))
    report = _run(plan, mlflow_server, tmp_path)
    assert report.counts() == Counter(finished=len(plan.jobs))
    by = {o.job.kind: o for o in report.outcomes.values()}
    assert by["train"].output["placement"] == {"strategy": "worker"}  # no placement group
    assert by["train"].output["actor_pid"] == by["eval"].output["actor_pid"] == by["mix"].output["actor_pid"]
    calls = [json.loads(line) for p in tmp_path.glob("calls-*.jsonl") for line in p.read_text().splitlines()]
    assert {c["kind"] for c in calls} == {"train", "eval", "ngram"} and len({c["pid"] for c in calls}) == 1
