"""torch.distributed setup for training: from torchrun's env, an existing group, or local launch.

One process per rank. WORLD_SIZE > 1 in the environment (torchrun, our `launch_local`, a Ray
gang) means: join the group at MASTER_ADDR:MASTER_PORT, NCCL on CUDA, gloo on CPU. A group
already initialized by the caller is used as is and left for the caller to destroy.
"""
from __future__ import annotations

from golf_core.errors import UserError
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # we initialized the process group, so we destroy it

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(pref: str, local_rank: int = 0) -> torch.device:
    """'auto' -> the local GPU if there is one, else CPU; 'cuda' without a GPU is an input error."""
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("train.device=cuda but no CUDA device is available")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if pref not in ("auto", "cpu"):
        raise UserError(f"train.device: unknown device {pref!r}")
    return torch.device("cpu")


def setup(device_pref: str) -> DistContext:
    """Join (or reuse) the process group described by the environment."""
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        device = resolve_device(device_pref, local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return DistContext(rank, world, local_rank, device, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"bad distributed environment: RANK={rank} WORLD_SIZE={world}")
    device = resolve_device(device_pref, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world == 1:
        return DistContext(0, 1, local_rank, device, owns_group=False)
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise UserError(f"WORLD_SIZE={world} but {var} is not set")
    if device.type == "cuda":
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo", rank=rank, world_size=world)
    dist.barrier()
    return DistContext(rank, world, local_rank, device, owns_group=True)


def teardown(ctx: DistContext) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def on_main_rank(ctx: DistContext, fn, *args) -> None:
    """Run a check on rank 0 only and raise its error on every rank.

    Validating 80 FineWeb shards reads ~16 GB: once per job, not once per rank. The error
    object itself is broadcast, so every rank fails with the same one-line message and type.
    """
    err: BaseException | None = None
    if ctx.is_main:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (re-raised below, on every rank)
            err = e
    if ctx.distributed:
        box = [err]
        dist.broadcast_object_list(box, src=0)
        err = box[0]
    if err is not None:
        raise err


def free_port() -> int:
    """A currently free TCP port on loopback (bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(argv: list[str], nproc: int, poll_s: float = 0.2) -> int:
    """Run `python ARGV` as ranks 0..nproc-1 of one local group (what torchrun does).

    Each rank is a fresh interpreter (no fork, no re-import of the caller's __main__), with
    RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set. If one rank fails, the
    others are stopped (they would otherwise wait in a collective). Returns the first
    non-zero exit code, else 0.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    port = free_port()
    procs: list[subprocess.Popen] = []
    try:
        for rank in range(nproc):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                   "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            procs.append(subprocess.Popen([sys.executable, *argv], env=env))
        while True:
            codes = [p.poll() for p in procs]
            failed = [c for c in codes if c not in (None, 0)]
            if failed:
                return failed[0]
            if all(c == 0 for c in codes):
                return 0
            time.sleep(poll_s)
    finally:
        for p in procs:  # only the processes started here, by their handles
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_ranks_for_result(argv: list[str], nproc: int, result_path: Path, prog: str) -> dict | None:
    """`launch_local` for a command whose rank 0 writes `result_path`: returns that result, or
    None (after saying which exit code) when a rank failed. A stale result is removed first so a
    previous run's numbers are never reported as this one's."""
    if result_path.exists():
        result_path.unlink()
    rc = launch_local(argv, nproc)
    if rc != 0:
        print(f"{prog}: a rank exited with code {rc}; see its output above", file=sys.stderr)
        return None
    return json.loads(result_path.read_text())
