"""A long-lived worker: one process per GPU (per CPU without GPUs), taking 1-rank training,
eval and mix jobs in turn.

A chain train -> eval -> mix on one GPU thus starts one process, not one per kind (a process
start costs seconds: imports, CUDA context), and the eval finds the artifact on local disk.
Multi-rank training stays a gang (workers.gang). It keeps what is expensive to reload: the artifacts it has materialized (keyed by the train
job's identity), token statistics of finished neural passes (keyed by the eval job's
identity), the validation tokens, and n-gram passes keyed by (stats identity,
MixerConfig.table_key()), so a sweep over alpha parameters costs one n-gram pass per table
configuration and milliseconds per point. Optuna mix searches run here too: ask/tell trials
over mix_nll, each trial a few milliseconds.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import OrderedDict
from typing import Any

import ray

from workers.contract import Attempt, JobResult, OptunaMixJob, OptunaSpace
from workers.files import EVAL_FILES, TRAIN_FILES, pack_dir, unpack_to, work_root
from workers.search_space import ask, decode_space, new_study
from workers.runner import ByteTotals

__all__ = ["Worker", "EVAL_FILES", "TRAIN_FILES", "run_optuna"]


class _LRU(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        while len(self) > self.size:
            self.popitem(last=False)
        return value


# jobs run one at a time (the default group); progress() answers from its own thread while a
# training job runs
@ray.remote(max_restarts=0, concurrency_groups={"progress": 1})
class Worker:
    """One per GPU (or CPU): runs the jobs the scheduler places on workers (orchestrator.kinds)."""

    def __init__(self, runner: Any, work_dir: str | None):
        self.runner = runner
        self.work_dir = work_dir
        self.root = work_root(work_dir) / f"eval-actor-{os.getpid()}"
        self._lock = threading.Lock()
        self._last: dict | None = None  # the running training job's latest progress event
        self.artifacts: dict[str, str] = {}  # train identity -> local dir
        self.stats = _LRU(2)  # eval identity -> token stats dict
        self.val = _LRU(1)  # (data_dir, vocab) -> validation tokens
        self.ngrams = _LRU(4)  # (eval identity, table key) -> n-gram pass
        self.carried = _LRU(4)  # eval identity -> the eval job's audit checks
        self.byte_totals = _LRU(2)  # eval identity -> its byte sums (workers.runner.ByteTotals)
        self.shared_checks = _LRU(4)  # (eval identity, table key) -> config-independent audit checks
        self.jobs_done = 0

    def info(self) -> dict:
        ctx = ray.get_runtime_context()
        return {"pid": os.getpid(), "node_id": ctx.get_node_id(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "artifacts": sorted(self.artifacts), "stats": list(self.stats), "ngrams": len(self.ngrams),
                "jobs_done": self.jobs_done}

    def _on_progress(self, event: dict) -> None:
        with self._lock:
            self._last = dict(event)

    @ray.method(concurrency_group="progress")
    def progress(self) -> dict | None:
        with self._lock:
            return self._last

    def train(self, attempt: Attempt, data_dir: str) -> JobResult:
        """A 1-rank training job (a world of one: no process group is needed, the variables
        are set so code that reads them sees a consistent single-rank launch)."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        os.environ.update({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
        with self._lock:
            self._last = None
        ident = attempt.job.identity
        out_dir = work_root(self.work_dir) / ident[:16] / f"attempt-{attempt.attempt}"
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        result = self.runner.train(attempt, data_dir, str(out_dir), self._on_progress)
        self.jobs_done += 1
        self.artifacts[ident] = str(out_dir)  # its eval usually follows on this worker
        info = self.info()
        hello = {"rank": 0, "pid": info["pid"], "node_id": info["node_id"], "gpu_ids": info["gpu_ids"]}
        return JobResult(result=result, files=pack_dir(out_dir, TRAIN_FILES), out_dir=str(out_dir),
                         wall_s=time.time() - t0, ranks=[hello], placement={"strategy": "worker"},
                         actor_pid=os.getpid())

    def _materialize(self, key: str, holder: list, kind: str) -> str:
        """The local dir of an upstream output: fetched through the object store on first use."""
        if key not in self.artifacts:
            files = ray.get(holder[0])  # holder: [ObjectRef] so the bytes move only on a miss
            self.artifacts[key] = str(unpack_to(files, self.root / kind / key[:16]))
        return self.artifacts[key]

    def run_eval(self, attempt: Attempt, artifact_key: str, artifact_holder: list, data_dir: str) -> JobResult:
        t0 = time.time()
        art_dir = self._materialize(artifact_key, artifact_holder, "artifacts")
        ident = attempt.job.identity
        out_dir = self.root / "eval" / ident[:16] / f"attempt-{attempt.attempt}"
        out_dir.mkdir(parents=True, exist_ok=True)
        result = self.runner.eval(attempt, art_dir, data_dir, str(out_dir))
        self.jobs_done += 1
        files = pack_dir(out_dir, EVAL_FILES)
        if "token_stats.npz" in files:  # a mix job usually follows on this actor: keep the stats
            self.artifacts[ident] = str(out_dir)
        return JobResult(result=result, files=files, wall_s=time.time() - t0, actor_pid=os.getpid())

    def run_mix(self, attempt: Attempt, stats_key: str, stats_holder: list, data_dir: str, vocab_size: int,
                chunk_tokens: int) -> JobResult:
        """One mix point (a MixJob) or an Optuna search (an OptunaMixJob) over one neural pass."""
        return self._mix(attempt, stats_key, stats_holder, data_dir, vocab_size, chunk_tokens)

    def run_mix_batch(self, attempts: list, stats_key: str, stats_holder: list, data_dir: str, vocab_size: int,
                      chunk_tokens: int) -> tuple:
        """Many mix points over one neural pass in one call (one result each, called with
        num_returns=len(attempts)): the stats, the n-gram pass and the audit's config-independent
        checks are loaded or measured once; each point is still scored, audited and returned on
        its own. A point that raises is returned as a failed JobResult, not the whole batch's error."""
        out = []
        for attempt in attempts:
            try:
                out.append(self._mix(attempt, stats_key, stats_holder, data_dir, vocab_size, chunk_tokens))
            except Exception as e:  # noqa: BLE001 - one bad point fails alone (its job is FAILED)
                out.append(JobResult(result={}, failed=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                                     actor_pid=os.getpid()))
        return tuple(out) if len(out) != 1 else out[0]

    def _mix(self, attempt: Attempt, stats_key: str, stats_holder: list, data_dir: str, vocab_size: int,
             chunk_tokens: int) -> JobResult:
        # here, in the actor: the driver imports this module for the actor class, and a rerun
        # where nothing runs must not pay for torch (golf_core.eval.bpb and .audit import it)
        from golf_core.eval.audit import stream_checks

        t0 = time.time()
        stats_dir = self._materialize(stats_key, stats_holder, "stats")
        stats = self.stats.get_or(stats_key, lambda: self.runner.load_stats(os.path.join(stats_dir, "token_stats.npz")))
        val = self.val.get_or((data_dir, vocab_size), lambda: self.runner.load_val(data_dir, vocab_size))
        sums = self.byte_totals.get_or(stats_key, lambda: ByteTotals(stats["bytes"], stats.get("chunk")))
        n_passes = [0]

        def ngram_for(mixer: dict):
            key = (stats_key, self.runner.table_key(mixer))

            def make():
                n_passes[0] += 1
                return self.runner.ngram(val, stats, mixer, chunk_tokens, vocab_size)
            return self.ngrams.get_or(key, make)

        last = {}

        def score(mixer: dict) -> tuple[float, float]:
            nll = last["nll"] = self.runner.mix_nll(stats, ngram_for(mixer), mixer)
            loss, val_bpb = sums.loss_bpb(nll)
            return val_bpb, loss

        job = attempt.job
        if isinstance(job, OptunaMixJob):
            result = run_optuna(dict(job.mixer_base), job.optuna, score)
        else:
            mixer = job.mixer.model_dump(mode="json")  # the runner's mix functions take field dicts
            bpb, loss = score(mixer)
            result = {"val_bpb": bpb, "val_loss": loss, "mixer": mixer}
            if "chunk" in stats:  # per score-first chunk: the sweep's drift plot
                result["chunk_bpb"] = sums.chunk_bpb(last["nll"])
        if (result.get("mixer") or {}).get("mode") == "tilt":  # how often it fires, how often right
            result.update(self.runner.tilt_counts(stats, ngram_for(result["mixer"]), result["mixer"]))
        carried = self.carried.get_or(stats_key, lambda: _carried_checks(stats_dir))
        # the audit's config-independent checks (single pass, every token scored, score before
        # update) once per (eval, table key); sum_v p(v) is measured for every config (issue 21)
        skey = (stats_key, self.runner.table_key(result["mixer"]))
        shared = self.shared_checks.get(skey)
        result["compliance"] = self.runner.audit_mix(stats, ngram_for(result["mixer"]), result["mixer"], vocab_size,
                                                     carried=carried, shared=shared)
        if shared is None:
            self.shared_checks.get_or(skey, lambda: stream_checks(result["compliance"]))
        self.jobs_done += 1
        result.update({"tokens_scored": int(len(stats["bytes"])), "ngram_passes": n_passes[0],
                       "mix_time_s": time.time() - t0})
        return JobResult(result=result, wall_s=time.time() - t0, actor_pid=os.getpid())


def _carried_checks(stats_dir: str) -> dict:
    """The audit checks the eval job measured (score-before-update of its TTT, model causality...)."""
    try:
        with open(os.path.join(stats_dir, "result.json")) as f:
            return dict(((json.load(f).get("compliance") or {}).get("checks")) or {})
    except (OSError, ValueError):
        return {}


def run_optuna(base_mixer: dict, opts: OptunaSpace, score) -> dict:
    """Ask/tell search over mixer fields; each trial is one mix over cached passes.

    Trials are reported in the result (`trials`: [[number, val_bpb, params], ...]) and the driver
    logs them as metrics with step = trial number on the job's own run, so one job keeps exactly
    one MLflow run (the resume invariant) while the search curve stays plottable.
    """
    import optuna

    n_trials, space = int(opts.n), decode_space(opts.space)  # workers.search_space: the one reader
    if not space:
        raise ValueError("optuna: empty search space")
    study = new_study(opts.seed)
    trials = []
    for _ in range(n_trials):
        trial, params = ask(study, space)
        try:
            bpb, _ = score(_apply(base_mixer, params))
        except ValueError:  # an invalid combination (alpha_base + alpha_range > 1): FAIL, go on
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, bpb)
        trials.append([trial.number, bpb, params])
    if not trials:
        raise ValueError("optuna: every trial was an invalid mixer config")
    best = study.best_trial
    best_mixer = _apply(base_mixer, {n: _decode(v) for n, v in best.params.items()})
    bpb, loss = score(best_mixer)
    return {"val_bpb": bpb, "val_loss": loss, "mixer": best_mixer, "best_params": best_mixer,
            "best_trial": best.number, "trials": trials}


def _decode(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _apply(base: dict, params: dict) -> dict:
    """The base mixer fields with a trial's values; per-order centers replace the single one."""
    out = dict(base)
    out.update(params)
    if out.get("entropy_centers") is not None:
        out["entropy_centers"] = {int(k): v for k, v in out["entropy_centers"].items()}
        out.pop("entropy_center", None)
    return out
