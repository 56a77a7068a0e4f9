"""What a worker actually runs: golf_core's train / eval / n-gram / mix functions.

Actors call a runner object rather than golf_core directly, so the driver's scheduling path
can be exercised with a stand-in of the same shape (tests inject fast fakes; bench/scheduling.py
injects sleeps). `GolfRunner` is the real one. Jobs arrive as plain dicts (kind, identity,
name, config, seed, attempt): workers never import the orchestrator.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["GolfRunner", "bpb_from_nll"]

LN2 = math.log(2.0)


def bpb_from_nll(nll: np.ndarray, nbytes: np.ndarray) -> float:
    """Bits per byte: summed NLL (nats) / ln 2 / summed target bytes, float64 sums."""
    total = float(np.asarray(nbytes, dtype=np.float64).sum())
    return float(np.asarray(nll, dtype=np.float64).sum() / LN2 / max(total, 1.0))


class GolfRunner:
    """The real job functions (imports golf_core lazily: actors start faster, and a CPU-only
    test that injects another runner never pays for torch)."""

    def train(self, job: dict, data_dir: str, out_dir: str, on_progress: Callable[[dict], None] | None) -> dict:
        if job.get("kind") == "script_train":  # the user's own train_gpt.py under torchrun
            from workers.script_runner import ScriptError, run_script_job

            try:
                return run_script_job(job, data_dir, out_dir, on_progress)
            except ScriptError as e:  # FAILED, but its train.log still goes to MLflow
                return {"script_failed": str(e)}
        from golf_core.config import build
        from golf_core.presets import RunConfig
        from golf_core.train import run_training

        cfg = build(RunConfig, job["config"]["run"])
        return run_training(cfg, data_dir, out_dir, on_progress=on_progress)

    def eval(self, job: dict, artifact_dir: str, data_dir: str, out_dir: str) -> dict:
        from golf_core.config import build
        from golf_core.eval.run import run_eval
        from golf_core.eval.config import EvalSpec

        conf = job["config"]
        spec = build(EvalSpec, {k: conf[k] for k in ("eval", "ttt", "mixer") if k in conf})
        return run_eval(artifact_dir, spec, data_dir, out_dir=out_dir)

    # --- the factorized mix: n-gram pass once per table key, then ms per mixer config ---
    def mixer_config(self, mixer: dict) -> Any:
        from golf_core.config import build
        from golf_core.eval.config import MixerConfig

        return build(MixerConfig, mixer, prefix="mixer")

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

        return ngram_pass(val_tokens, stats["pos"], stats["chunk"], self.mixer_config(mixer), chunk_tokens,
                          vocab_size=vocab_size, audit_idx=stats.get("audit_idx"))

    def mix_nll(self, stats: dict, ngram: Any, mixer: dict) -> np.ndarray:
        from golf_core.eval.mix import mix_nll

        return np.asarray(mix_nll(stats, ngram, self.mixer_config(mixer)), dtype=np.float64)

    def audit_mix(self, stats: dict, ngram: Any, mixer: dict, vocab_size: int, carried: dict | None = None) -> dict:
        """The audit of one mix point: mode (C2 for hashed_target), sum_v p(v) at the audit
        positions, single pass, score-before-update of the replayed schedule. The n-gram
        causality re-run is left to the eval job's audit (it does not depend on alpha);
        `carried`: the eval job's own checks (its result.json), kept where not re-measured."""
        from golf_core.eval.audit import audit

        return audit(mixer_cfg=self.mixer_config(mixer), vocab_size=vocab_size, stats=stats, ngram=ngram,
                     causal_ngram=False, carried=carried)
