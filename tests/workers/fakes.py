"""Fast stand-ins for golf_core's job functions, with the same shapes (workers.runner.GolfRunner).

They do the real distributed part (a gloo process group across the gang's ranks), write the
same output files, and can be told, through the job's "fake" param (JSON; small_plan puts it
there), to die by SIGKILL once, to produce a NaN loss, or to sleep.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np

from workers.runner import GolfRunner


def _fake(attempt) -> dict:
    return json.loads(attempt.job.params.get("fake") or "{}")


def _die_once(marker: str | None) -> None:
    """SIGKILL this worker the first time (the marker file records that it happened)."""
    if marker and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


class FakeRunner(GolfRunner):
    def __init__(self, log_dir: str | None = None, log_starts: bool = False):
        self.log_dir = log_dir  # each call appends a JSON line here (who ran what, where)
        self.log_starts = log_starts  # also a "train_start" line when a training call begins

    def _log(self, **rec) -> None:
        try:  # where it ran (tests/workers/test_multinode.py): node, devices, the node's temp dir
            import ray

            rec.setdefault("node", ray.get_runtime_context().get_node_id())
        except Exception:  # noqa: BLE001 - outside Ray
            pass
        rec.setdefault("cvd", os.environ.get("CUDA_VISIBLE_DEVICES"))
        rec.setdefault("local_rank", os.environ.get("LOCAL_RANK"))
        rec.setdefault("tmp", os.environ.get("TMPDIR"))
        if self.log_dir:
            with open(os.path.join(self.log_dir, f"calls-{os.getpid()}.jsonl"), "a") as f:
                f.write(json.dumps(rec) + "\n")

    def train(self, attempt, data_dir, out_dir, on_progress):
        fk, job = _fake(attempt), attempt.job
        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.log_starts:
            self._log(kind="train_start", identity=job.identity, rank=rank, pid=os.getpid(), attempt=attempt.attempt)
        dist_world, reduced = 1, 1.0
        if world > 1:
            import torch
            import torch.distributed as dist

            dist.init_process_group("gloo", rank=rank, world_size=world)
            t = torch.ones(1)
            dist.all_reduce(t)
            dist_world, reduced = dist.get_world_size(), float(t.item())
        if rank == int(fk.get("die_rank", 0)):
            _die_once(fk.get("die_once"))
        time.sleep(float(fk.get("sleep", 0.0)))
        if fk.get("hang_once") and not os.path.exists(fk["hang_once"]):
            Path(fk["hang_once"]).write_text(str(os.getpid()))  # the first attempt hangs (to be killed)
            time.sleep(300)
        curve = [[s, 5.0 - 0.1 * s] for s in range(1, 6)]
        for s, loss in curve:
            if on_progress:
                on_progress({"event": "step", "step": s, "train_loss": loss})
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
        seed = int(job.seed or 0)
        val = float("nan") if fk.get("nan") else 1.5 + (seed % 7) * 0.01
        result = {"val_bpb": val, "val_loss": val * 0.7, "artifact_bytes": int(fk.get("artifact_bytes", 1000)),
                  "steps": 5, "train_time_s": 0.1, "world_size": dist_world, "allreduce_sum": reduced,
                  "train_loss_curve": curve, "seed": seed, "pid": os.getpid(), "rank": rank}
        if rank == 0:
            out = Path(out_dir)
            (out / "model.ptz").write_bytes(os.urandom(64))
            (out / "artifact.json").write_text(json.dumps({"artifact_bytes": result["artifact_bytes"]}))
            (out / "result.json").write_text(json.dumps(result))
        self._log(kind="train", identity=job.identity, rank=rank, pid=os.getpid(), attempt=attempt.attempt,
                  out_dir=str(out_dir))
        return result

    def eval(self, attempt, artifact_dir, data_dir, out_dir):
        fk, job = _fake(attempt), attempt.job
        _die_once(fk.get("die_once"))
        time.sleep(float(fk.get("sleep", 0.0)))
        if not (Path(artifact_dir) / "model.ptz").is_file():
            raise FileNotFoundError(f"no model.ptz in {artifact_dir}")
        up = json.loads((Path(artifact_dir) / "result.json").read_text())
        rng = np.random.default_rng(int(job.seed or 0))
        n = 512
        stats = {"target": rng.integers(0, 64, n), "prev": rng.integers(0, 64, n),
                 "bytes": rng.integers(1, 4, n), "p_model": rng.uniform(0.05, 0.9, n),
                 "entropy": rng.uniform(1, 6, n), "chunk": np.arange(n) // 128, "pos": np.arange(1, n + 1)}
        np.savez(Path(out_dir) / "token_stats.npz", **stats)
        nll = -np.log(stats["p_model"])
        result = {"val_bpb": float(nll.sum() / math.log(2) / stats["bytes"].sum()), "val_loss": float(nll.mean()),
                  "eval_time_s": 0.01, "upstream_val_bpb": up["val_bpb"], "ratio_scored": 1.0,
                  "compliance": {"compliant": not fk.get("audit_fail"),
                                 "checks": {"scored_once": {"passed": not fk.get("audit_fail")}}}}
        (Path(out_dir) / "result.json").write_text(json.dumps(result))
        self._log(kind="eval", identity=job.identity, pid=os.getpid(), attempt=attempt.attempt,
                  artifact_dir=str(artifact_dir), out_dir=str(out_dir))
        return result

    # mixing: p = (1 - a) p_model + a p_ngram, a = alpha_base (+ alpha_range / 2)
    def mixer_config(self, mixer):
        if mixer.get("alpha_base", 0.05) + mixer.get("alpha_range", 0.55) > 1.0:
            raise ValueError("alpha_base + alpha_range must be <= 1")
        return mixer

    def table_key(self, mixer):
        return (mixer.get("mode", "none"), tuple(mixer.get("orders", (2, 3))))

    def load_val(self, data_dir, vocab_size):
        return np.arange(1000) % vocab_size

    def audit_mix(self, stats, ngram, mixer, vocab_size, carried=None, shared=None):
        ok = mixer.get("mode") != "hashed_target"
        return {"compliant": ok, "checks": {"mode": {"passed": ok}}}

    def load_stats(self, path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    def ngram(self, val_tokens, stats, mixer, chunk_tokens, vocab_size):
        self._log(kind="ngram", key=list(self.table_key(mixer)), pid=os.getpid())
        rng = np.random.default_rng(len(self.table_key(mixer)[1]))
        return {"p_ngram": rng.uniform(0.0, 1.0, len(stats["bytes"]))}

    def mix_nll(self, stats, ngram, mixer):
        self.mixer_config(mixer)
        a = float(mixer.get("alpha_base", 0.05)) + float(mixer.get("alpha_range", 0.55)) / 2
        p = (1 - a) * stats["p_model"] + a * ngram["p_ngram"]
        return -np.log(np.maximum(p, 1e-12))


class SleepRunner(GolfRunner):
    """bench/scheduling.py-style jobs: each sleeps its fake param's "sleep" seconds."""

    def train(self, attempt, data_dir, out_dir, on_progress):
        time.sleep(float(_fake(attempt).get("sleep", 0.0)))
        return {"val_bpb": 1.0}


# ------------------------------------------------------------------ small plans of fake jobs
import hashlib  # noqa: E402

from golf_core.data.config import DataConfig  # noqa: E402
from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig  # noqa: E402
from golf_core.presets import load_preset  # noqa: E402
from orchestrator.plan.build import Plan  # noqa: E402
from workers.contract import EvalJob, MixJob, OptunaMixJob, OptunaSpace, TrainJob  # noqa: E402


def ident(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def small_plan(name="t", seeds=(1, 2), ranks=1, gpus=1, alphas=(0.1, 0.3), modes=("normalized",),
               train_fake=None, eval_fake=None, retries=2, optuna=None, per_seed_train_fake=None) -> Plan:
    """seeds x (train -> eval -> mix per mode x alpha [+ an optuna mix job]), the tiny preset,
    the fake runner's instructions in each job's "fake" param.

    `name` salts every identity, so tests sharing one MLflow server never see each other's runs."""
    jobs = []
    for seed in seeds:
        per = {int(k): v for k, v in (per_seed_train_fake or {}).items()}  # JSON turns keys into str
        tf = dict(train_fake or {}, **per.get(seed, {}))
        tcfg = {"run": {"seed": seed}, "fake": tf}
        t = TrainJob(identity=ident("train", name, seed, tcfg), name=f"train/s{seed}",
                     run=load_preset("tiny", {"train": {"seed": seed}}), seed=seed, gpus=gpus, ranks=ranks,
                     params={"fake": json.dumps(tf)})
        ecfg = {"eval": {"chunk_tokens": 128}, "ttt": {}, "fake": dict(eval_fake or {})}
        e = EvalJob(identity=ident("eval", t.identity, ecfg), name=f"eval/s{seed}", eval=EvalConfig(chunk_tokens=128),
                    ttt=TTTConfig(), deps=(t.identity,), seed=seed, gpus=1, params={"fake": json.dumps(ecfg["fake"])})
        jobs += [t, e]
        for mode in modes:
            for a in alphas:
                mcfg = {"mixer": {"mode": mode, "alpha_base": a, "alpha_range": 0.2}}
                jobs.append(MixJob(identity=ident("mix", e.identity, mcfg), name=f"mix/s{seed}/{mode}/a{a}",
                                   mixer=MixerConfig(**mcfg["mixer"]), deps=(e.identity,), seed=seed, gpus=1))
        if optuna:
            mcfg = {"mixer_base": {"mode": "normalized", "alpha_range": 0.2}, "optuna": optuna}
            jobs.append(OptunaMixJob(identity=ident("opt", e.identity, mcfg), name=f"mix/s{seed}/optuna",
                                     mixer_base=mcfg["mixer_base"], optuna=OptunaSpace(**optuna), deps=(e.identity,),
                                     seed=seed))
    return Plan(name, ident(name, [j.identity for j in jobs]), tuple(jobs), DataConfig(path="unused", vocab_size=64),
                retries=retries)
