"""Training as a gang: N rank actors packed on one node, torch.distributed between them.

A `TrainGang` reserves N bundles in a STRICT_PACK placement group (all ranks on one node, as
NCCL over NVLink wants), starts one `RankActor` per bundle, lets rank 0 pick the rendezvous
port, and calls golf_core's `run_training` on every rank with RANK / WORLD_SIZE / LOCAL_RANK /
MASTER_ADDR / MASTER_PORT set. Rank 0 writes the artifact; its files come back as bytes.

The driver never blocks on a gang: `pending()` lists the refs the gang waits on, and
`advance(ref)` moves it through its phases (placement group ready -> ranks up -> training ->
done), so many gangs and eval jobs progress in one `ray.wait` loop.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import replace
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from workers.contract import Attempt, JobResult, ScriptTrainJob
from workers.files import TRAIN_FILES
from workers.files import pack_dir, work_root
from workers.runner import SCRIPT_FAILED

__all__ = ["RankActor", "TrainGang", "TRAIN_FILES"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@ray.remote(max_concurrency=3)  # threaded: progress(), drain() and stop() answer while train() runs
class RankActor:
    def __init__(self, runner: Any, rank: int, world_size: int):
        self.runner = runner
        self.rank = rank
        self.world_size = world_size
        self._lock = threading.Lock()
        self._last: dict | None = None
        self._log: list[dict] = []  # events marked "log" (a script's parsed lines), drained by the driver

    def hello(self) -> dict:
        ctx = ray.get_runtime_context()
        return {
            "rank": self.rank,
            "pid": os.getpid(),
            "ip": ray.util.get_node_ip_address(),
            "port": _free_port() if self.rank == 0 else None,
            "node_id": ctx.get_node_id(),
            "placement_group_id": ctx.get_placement_group_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        }

    def _on_progress(self, event: dict) -> None:
        with self._lock:
            if not (event.get("log") and event.get("event") != "step"):
                self._last = dict(event)  # a script's val line does not hide its latest step
            if event.get("log"):
                self._log.append(dict(event))

    def progress(self) -> dict | None:
        with self._lock:
            return self._last

    def stop(self) -> int:
        """Stop the running job now (a pruner's decision): kill every process this actor started
        (a script job's torchrun and its ranks, each in a session of its own), so train() returns
        with what the script logged so far. Returns how many processes were signalled."""
        from workers.script_runner import kill_descendants

        return kill_descendants(os.getpid())

    def drain(self, since: int) -> tuple[int, list[dict]]:
        """The logged events from index `since` on, and the next index (the driver's cursor)."""
        with self._lock:
            return len(self._log), self._log[since:]

    def train(self, attempt: Attempt, data_dir: str, work_dir: str | None, master: tuple[str, int],
              visible_devices: list[str], local_rank: int) -> JobResult | None:
        os.environ.update({
            "RANK": str(self.rank), "WORLD_SIZE": str(self.world_size),
            "LOCAL_RANK": str(local_rank), "LOCAL_WORLD_SIZE": str(self.world_size),
            "MASTER_ADDR": master[0], "MASTER_PORT": str(master[1]),
        })
        if visible_devices:
            # every rank sees the gang's GPUs (NCCL peer access) and picks its own by LOCAL_RANK
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible_devices)
        out_dir = work_root(work_dir) / attempt.job.identity[:16] / f"attempt-{attempt.attempt}"
        out_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._last, self._log = None, []
        t0 = time.time()
        result = self.runner.train(attempt, data_dir, str(out_dir), self._on_progress)
        if self.rank != 0:
            return None
        # a script job's files: train.log, result.json, its model files (all top-level files)
        names = None if isinstance(attempt.job, ScriptTrainJob) else TRAIN_FILES
        failed = result.pop(SCRIPT_FAILED, None) if isinstance(result, dict) else None
        return JobResult(result=result, files=pack_dir(out_dir, names), out_dir=str(out_dir),
                         wall_s=time.time() - t0, failed=failed)


class TrainGang:
    """One training job's placement group and rank actors (lives in the driver)."""

    def __init__(self, attempt: Attempt, runner: Any, *, ranks: int, gpus: float, use_gpus: bool,
                 data_dir: str, work_dir: str | None, cpus_per_rank: float = 1.0):
        self.attempt = attempt
        self.runner = runner
        self.ranks = max(1, int(ranks))
        self.data_dir = data_dir
        self.work_dir = work_dir
        per_rank_gpu = (gpus / self.ranks) if (use_gpus and gpus) else 0.0
        self.bundle = {"CPU": float(cpus_per_rank), **({"GPU": per_rank_gpu} if per_rank_gpu else {})}
        self.strategy = "STRICT_PACK"
        self.pg = placement_group([dict(self.bundle) for _ in range(self.ranks)], strategy=self.strategy,
                                  name=f"golf-train-{attempt.job.identity[:12]}-a{attempt.attempt}")
        self.phase = "placing"  # placing -> starting -> training -> done
        self.actors: list = []
        self._refs: list = [self.pg.ready()]
        self.hellos: list[dict] = []
        self._rank0: JobResult | None = None
        self.started_at: float | None = None

    def pending(self) -> list:
        return list(self._refs)

    def advance(self, ref) -> JobResult | None:
        """Consume a finished ref of this gang. Returns the job output once training is done.

        Raises what the ref raised (RayActorError when a rank died, the job's own error)."""
        self._refs.remove(ref)
        value = ray.get(ref)
        if self.phase == "placing":
            self._start_ranks()
            return None
        if self.phase == "starting":
            self.hellos.append(value)
            if not self._refs:
                self._train()
            return None
        if self.phase == "training":
            if value is not None:  # rank 0's output
                self._rank0 = value
            if not self._refs:
                self.phase = "done"
                return replace(self._rank0, ranks=sorted(self.hellos, key=lambda h: h["rank"]),
                               placement={"strategy": self.strategy, "bundle": self.bundle,
                                          "placement_group_id": self.pg.id.hex()})
        return None

    def _start_ranks(self) -> None:
        self.phase = "starting"
        for rank in range(self.ranks):
            strat = PlacementGroupSchedulingStrategy(placement_group=self.pg, placement_group_bundle_index=rank)
            opts = {"num_cpus": self.bundle["CPU"], "scheduling_strategy": strat, "max_restarts": 0}
            if "GPU" in self.bundle:
                opts["num_gpus"] = self.bundle["GPU"]
            self.actors.append(RankActor.options(**opts).remote(self.runner, rank, self.ranks))
        self._refs = [a.hello.remote() for a in self.actors]

    def _train(self) -> None:
        self.phase = "training"
        self.started_at = time.time()
        hellos = sorted(self.hellos, key=lambda h: h["rank"])
        master = (hellos[0]["ip"], hellos[0]["port"])
        # every GPU of every rank (a script job is one actor holding all N GPUs; torchrun splits them)
        gpu_ids = [g for h in hellos for g in h["gpu_ids"]]
        visible = sorted(set(gpu_ids), key=lambda g: (len(g), g)) if all(h["gpu_ids"] for h in hellos) else []
        self._refs = []
        for h, actor in zip(hellos, self.actors):
            local_rank = visible.index(h["gpu_ids"][0]) if visible else h["rank"]
            self._refs.append(actor.train.remote(self.attempt, self.data_dir, self.work_dir, master, visible,
                                                 local_rank))

    def reassign(self, attempt: Attempt) -> None:
        """Run another training job of the same shape on these ranks: the placement group is
        held and the processes are up, so the next job skips both (the driver hands a waiting
        gang's job to a finished one). A fresh rendezvous port comes with the new hellos."""
        self.attempt = attempt
        self.phase = "starting"
        self.hellos = []
        self._rank0 = None
        self._refs = [a.hello.remote() for a in self.actors]

    def progress(self):
        """A ref to rank 0's latest progress event (None before training starts)."""
        if self.phase != "training" or not self.actors:
            return None
        return self.actors[0].progress.remote()

    def stop(self) -> None:
        """Ask every rank to kill its job's processes (fire and forget: the train refs return)."""
        for a in self.actors:
            a.stop.remote()

    def release(self) -> None:
        """Kill the rank actors and remove the placement group (idempotent)."""
        for a in self.actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass
        self.actors = []
        self._refs = []
        try:
            remove_placement_group(self.pg)
        except Exception:  # noqa: BLE001 - already removed
            pass
        self.phase = "done"
