"""The driver on a two-node Ray cluster (ray.cluster_utils.Cluster on this machine: a head with no
GPUs and two worker nodes with 4 logical GPUs each) with a real `mlflow server --serve-artifacts`
and the fast fake job functions: a 4-rank gang packs on one node with distinct devices, evals
spread over both nodes, a node removed mid-sweep has its jobs rerun on the other, and outputs
cross nodes through the object store and the MLflow artifact store, never a node's disk (each
node has its own TMPDIR, and so its own work dir: DriverOptions.work_dir is left unset)."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.run.driver import run_plan  # noqa: E402
from orchestrator.tracking import Tracker  # noqa: E402
from tests.workers.fakes import FakeRunner, small_plan  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    was_local = ray.is_initialized()
    if was_local:
        ray.shutdown()  # the session's local Ray (tests/fixtures/ray_cluster.py): restarted below
    root = tmp_path_factory.mktemp("nodes")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    nodes = {}
    for name in ("a", "b"):
        tmp = root / name
        tmp.mkdir()
        nodes[name] = c.add_node(num_cpus=4, num_gpus=4, resources={f"node_{name}": 1},
                                 env_vars={"TMPDIR": str(tmp)})
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, configure_logging=False)
    ids = {name: n.node_id for name, n in nodes.items()}
    try:
        yield c, nodes, ids, root
    finally:
        ray.shutdown()
        c.shutdown()
        if was_local:  # as ray_local started it, for the modules that follow
            ray.init(address="local", num_cpus=4, num_gpus=8, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)


def _calls(log_dir: Path) -> list[dict]:
    return [json.loads(line) for p in log_dir.glob("calls-*.jsonl") for line in p.read_text().splitlines()]


def _run(plan, server, log_dir, **opts):
    tracker = Tracker(server.uri, plan.sweep_name, log_dir / "journal")
    try:
        return run_plan(plan, tracker, DriverOptions(runner=FakeRunner(str(log_dir), log_starts=True), **opts))
    finally:
        assert tracker.close(timeout=60)


def _finished(uri: str, experiment: str) -> dict[str, list[str]]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name(experiment)
    out = defaultdict(list)
    for r in c.search_runs([exp.experiment_id], "", max_results=1000):
        if "golf.identity" in r.data.tags:
            out[r.data.tags["golf.identity"]].append(r.info.status)
    return out


def test_gang_packs_on_one_node_with_distinct_devices(cluster, mlflow_server, tmp_path):
    _, _, ids, root = cluster
    plan = small_plan("mn-gang", seeds=(1,), ranks=4, gpus=4, alphas=(0.1,))
    report = _run(plan, mlflow_server, tmp_path)
    assert report.counts() == Counter(finished=len(plan.jobs))
    train = next(o for o in report.outcomes.values() if o.job.kind == "train")
    assert train.output["placement"]["strategy"] == "STRICT_PACK"
    ranks = train.output["ranks"]
    assert len(ranks) == 4 and len({r["node_id"] for r in ranks}) == 1
    assert ranks[0]["node_id"] in ids.values()
    calls = [c for c in _calls(tmp_path) if c["kind"] == "train"]
    assert sorted(int(c["local_rank"]) for c in calls) == [0, 1, 2, 3]
    # every rank sees the gang's 4 GPUs (NCCL peer access) and takes its own by LOCAL_RANK
    used = {c["cvd"].split(",")[int(c["local_rank"])] for c in calls}
    assert len(used) == 4 and {len(c["cvd"].split(",")) for c in calls} == {4}
    assert used == {g for r in ranks for g in r["gpu_ids"]}  # exactly the GPUs Ray gave the ranks
    # rank 0 wrote its outputs under its node's own temp dir
    rank0 = next(c for c in calls if c["rank"] == 0)
    node = next(n for n, i in ids.items() if i == rank0["node"])
    assert rank0["out_dir"].startswith(str(root / node))


def test_evals_spread_over_both_nodes_without_a_shared_disk(cluster, mlflow_server, tmp_path):
    _, _, ids, root = cluster
    plan = small_plan("mn-spread", seeds=tuple(range(1, 9)), ranks=1, gpus=1, alphas=(0.1,),
                      train_fake={"sleep": 1.0}, eval_fake={"sleep": 0.5})
    report = _run(plan, mlflow_server, tmp_path)
    assert report.counts() == Counter(finished=len(plan.jobs))
    calls = _calls(tmp_path)
    evals = [c for c in calls if c["kind"] == "eval"]
    assert {c["node"] for c in evals} == set(ids.values())  # both nodes evaluated
    train_node = {c["identity"]: c["node"] for c in calls if c["kind"] == "train"}
    by_id = {j.identity: j for j in plan.jobs}
    for c in evals:
        node = next(n for n, i in ids.items() if i == c["node"])
        # an eval reads its artifact from its own node's disk, whichever node trained it
        assert c["artifact_dir"].startswith(str(root / node)), c
        assert c["tmp"] == str(root / node)
    crossed = [c for c in evals if train_node[by_id[c["identity"]].deps[0]] != c["node"]]
    print(f"{len(crossed)} of {len(evals)} evals ran on another node than their training")


def test_node_removed_mid_sweep_reruns_its_jobs_and_mlflow_carries_the_artifacts(cluster, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    c, nodes, ids, root = cluster
    plan = small_plan("mn-fault", seeds=(1, 2, 3, 4), ranks=1, gpus=1, alphas=(0.1,),
                      train_fake={"sleep": 3.0}, retries=3)
    removed: list[str] = []

    class RemoveABusyNode:
        """Polled by the driver: once two trains run on one worker node, that node goes away
        (its raylet and workers killed, as when a machine dies)."""

        def start(self, report):
            pass

        def stop(self, report):
            pass

        def update(self, report, running):
            if removed:
                return
            busy = Counter(x["node"] for x in _calls(tmp_path) if x["kind"] == "train_start")
            for name, node_id in ids.items():
                if busy[node_id] >= 2:
                    removed.append(name)
                    c.remove_node(nodes[name], allow_graceful=False)
                    return

    report = _run(plan, mlflow_server, tmp_path, progress=RemoveABusyNode(), poll_s=0.2)
    assert removed, "no node was removed"
    left = "a" if removed[0] == "b" else "b"
    assert report.counts() == Counter(finished=len(plan.jobs))
    statuses = _finished(mlflow_server.uri, plan.sweep_name)
    for j in plan.jobs:
        assert statuses[j.identity].count("FINISHED") == 1, (j.name, statuses[j.identity])
    assert max(o.attempt for o in report.outcomes.values()) > 1  # something did rerun
    calls = _calls(tmp_path)
    assert {x["node"] for x in calls if x.get("attempt", 1) > 1} == {ids[left]}  # reruns on the node left
    # artifacts live in the MLflow artifact store (served over HTTP), and a later sweep that reuses
    # the trains fetches them from there for its new evals, on the node that is left
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name(plan.sweep_name)
    train = next(r for r in client.search_runs([exp.experiment_id], "tags.`golf.kind` = 'train'"))
    assert {a.path for a in client.list_artifacts(train.info.run_id)} >= {"model.ptz", "result.json"}
    assert train.info.artifact_uri.startswith("mlflow-artifacts:")
    again = small_plan("mn-fault", seeds=(1, 2, 3, 4), ranks=1, gpus=1, alphas=(0.1,),
                       train_fake={"sleep": 3.0}, eval_fake={"variant": 2})
    log2 = tmp_path / "again"
    log2.mkdir()
    report2 = _run(again, mlflow_server, log2)
    states = Counter((o.job.kind, o.state) for o in report2.outcomes.values())
    assert states[("train", "reused")] == 4 and states[("eval", "finished")] == 4
    evals = [x for x in _calls(log2) if x["kind"] == "eval"]
    assert len(evals) == 4 and all(x["artifact_dir"].startswith(str(root / left)) for x in evals)
