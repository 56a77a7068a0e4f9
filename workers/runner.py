"""What a worker actually runs: golf_core's train / eval / n-gram / mix functions.

Actors call a runner object rather than golf_core directly, so the driver's scheduling path
can be exercised with a stand-in of the same shape (tests inject fast fakes; bench/scheduling.py
injects sleeps). `GolfRunner` is the real one. A job arrives as a workers.contract.Attempt
(the typed job, the attempt number, the tokenizer): workers never import the orchestrator.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from golf_core.rules import LN2
from workers.contract import Attempt, ScriptTrainJob

__all__ = ["ByteTotals", "GolfRunner", "SCRIPT_FAILED", "chunk_bpb"]

# the result key of a script that exited non-zero (the actor turns it into JobResult.failed)
SCRIPT_FAILED = "script_failed"


def chunk_bpb(nll: np.ndarray, nbytes: np.ndarray, chunk: np.ndarray) -> list[float]:
    """Bits per byte of each score-first chunk (index = chunk id): how the score drifts as the
    n-gram tables fill."""
    return ByteTotals(nbytes, chunk).chunk_bpb(nll)


class ByteTotals:
    """One eval's bytes, summed once (in total and per score-first chunk) for every config
    scored against them: a worker scoring a thousand configs of one eval did these sums a
    thousand times (issue 21). Same float64 sums as golf_core.eval.bpb.bpb_of and chunk_bpb."""

    def __init__(self, nbytes: np.ndarray, chunk: np.ndarray | None = None):
        from golf_core.eval.bpb import bpb

        self._bpb = bpb
        b = np.asarray(nbytes, dtype=np.float64)
        self.byte_sum = float(b.sum())
        self.chunk = None if chunk is None else np.asarray(chunk, dtype=np.int64)
        if self.chunk is not None and self.chunk.size:
            self.n_chunks = int(self.chunk.max()) + 1
            self.per_chunk = np.maximum(np.bincount(self.chunk, weights=b, minlength=self.n_chunks), 1.0)

    def loss_bpb(self, nll: np.ndarray) -> tuple[float, float]:
        """(val_loss, val_bpb), as golf_core.eval.bpb.bpb_of(nll, nbytes)."""
        nll = np.asarray(nll, dtype=np.float64)
        nll_sum = float(nll.sum())
        return nll_sum / max(nll.size, 1), self._bpb(nll_sum, self.byte_sum)

    def chunk_bpb(self, nll: np.ndarray) -> list[float]:
        if self.chunk is None or self.chunk.size == 0:
            return []
        s = np.bincount(self.chunk, weights=np.asarray(nll, dtype=np.float64), minlength=self.n_chunks)
        return [float(x) for x in s / LN2 / self.per_chunk]


class GolfRunner:
    """The real job functions (imports golf_core lazily: actors start faster, and a CPU-only
    test that injects another runner never pays for torch)."""

    def train(self, attempt: Attempt, data_dir: str, out_dir: str,
              on_progress: Callable[[dict], None] | None) -> dict:
        job = attempt.job
        if isinstance(job, ScriptTrainJob):  # the user's own train_gpt.py under torchrun
            from workers.script_runner import ScriptError, run_script_job

            try:
                return run_script_job(attempt, data_dir, out_dir, on_progress)
            except ScriptError as e:  # FAILED, but its train.log still goes to MLflow
                return {SCRIPT_FAILED: str(e)}
        from golf_core.train import run_training

        return run_training(job.run, data_dir, out_dir, on_progress=on_progress, tokenizer=attempt.tokenizer)

    def eval(self, attempt: Attempt, artifact_dir: str, data_dir: str, out_dir: str) -> dict:
        from golf_core.eval.config import EvalSpec
        from golf_core.eval.run import run_eval

        job = attempt.job
        spec = EvalSpec(eval=job.eval, ttt=job.ttt)
        return run_eval(artifact_dir, spec, data_dir, out_dir=out_dir, tokenizer=attempt.tokenizer)

    # --- the factorized mix: n-gram pass once per table key, then ms per mixer config ---
    def mixer_config(self, mixer: dict) -> Any:
        from golf_core.config import build
        from golf_core.eval.config import MixerConfig

        # a mix point's config is asked for by its score, table key and audit: validated once
        key = json.dumps(mixer, sort_keys=True, default=str)
        cache = self.__dict__.setdefault("_configs", {})
        if key not in cache:
            if len(cache) >= 4096:
                cache.clear()
            cache[key] = build(MixerConfig, mixer, prefix="mixer")
        return cache[key]

    def table_key(self, mixer: dict) -> tuple:
        return self.mixer_config(mixer).table_key()

    def load_stats(self, path: str | Path) -> dict[str, np.ndarray]:
        from golf_core.eval.mix import load_stats

        return load_stats(path)

    def load_val(self, data_dir: str, vocab_size: int) -> Any:
        from golf_core.data.shards import load_split

        return load_split(data_dir, "val", vocab_size=vocab_size)

    def ngram(self, val_tokens: Any, stats: dict, mixer: dict, chunk_tokens: int, vocab_size: int) -> Any:
        from golf_core.eval.ngram import ngram_pass

        cfg = self.mixer_config(mixer)
        if cfg.mode == "tilt":  # the eval priced the hints: the arrays come with the stats
            from golf_core.eval.tilt_eval import tilt_arrays

            return tilt_arrays(stats, cfg)
        # the stream the eval scored (max_tokens, a dropped tail): the fused path's tables and
        # miss vocabulary see no token past it; n_ctx: the window context the fused path used
        val = val_tokens[: int(np.max(stats["pos"])) + 1] if len(stats["pos"]) else val_tokens
        return ngram_pass(val, stats["pos"], stats["chunk"], self.mixer_config(mixer), chunk_tokens,
                          vocab_size=vocab_size, audit_idx=stats.get("audit_idx"), n_ctx=stats.get("n_ctx"))

    def mix_nll(self, stats: dict, ngram: Any, mixer: dict) -> np.ndarray:
        from golf_core.eval.mix import MixInputs, mix_nll

        cfg = self.mixer_config(mixer)
        if cfg.mode == "tilt":
            return np.asarray(mix_nll(stats, ngram, cfg), dtype=np.float64)
        # the pair's tensors, made once for the configs of one table key that follow (a batch)
        last = self.__dict__.get("_inputs")
        if last is None or last[0] is not stats or last[1] is not ngram:
            last = self.__dict__["_inputs"] = (stats, ngram, MixInputs(stats, ngram))
        return np.asarray(mix_nll(stats, ngram, cfg, inputs=last[2]), dtype=np.float64)

    def tilt_counts(self, stats: dict, ngram: Any, mixer: dict) -> dict:
        """tilt_gated / tilt_hits of a tilt point (empty for other modes)."""
        cfg = self.mixer_config(mixer)
        if cfg.mode != "tilt":
            return {}
        from golf_core.eval.tilt_eval import tilt_counts

        return tilt_counts(stats, ngram, cfg)

    def audit_mix(self, stats: dict, ngram: Any, mixer: dict, vocab_size: int, carried: dict | None = None,
                  shared: dict | None = None) -> dict:
        """The audit of one mix point: mode (C2 for hashed_target), sum_v p(v) at the audit
        positions, single pass, score-before-update of the replayed schedule. The n-gram
        causality re-run is left to the eval job's audit (it does not depend on alpha);
        `carried`: the eval job's own checks (its result.json), kept where not re-measured;
        `shared`: the config-independent checks of an earlier audit over the same stats and
        table key (golf_core.eval.audit.stream_checks), reused rather than re-measured."""
        from golf_core.eval.audit import audit

        return audit(mixer_cfg=self.mixer_config(mixer), vocab_size=vocab_size, stats=stats, ngram=ngram,
                     causal_ngram=False, carried=carried, shared=shared)
