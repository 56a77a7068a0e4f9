"""`mix`: one MixerConfig scored over an eval job's token stats (the factorized n-gram pass,
then milliseconds per config), on the worker that holds the stats. `optuna_mix` (its own
module) shares the worker call and the rules: a mix kind's compliance is its mode's legality
(golf_core.rules.mixer_mode) and its eval's audit.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Mapping

from golf_core import rules
from golf_core.eval.config import EvalConfig
from orchestrator.kinds.base import JobKind
from orchestrator.kinds.identity import canonical_json, identity_of
from workers.contract import EvalJob, MixJob

__all__ = ["Mix", "MixKind", "identity", "identity_json"]


def identity(eval_id: str, mix_config: dict[str, Any], code_version: str) -> str:
    return identity_of("mix", {"eval": eval_id, "config": mix_config}, code_version)


def identity_json(eval_id: str, config_json: str, code_version: str) -> str:
    """`identity` with the config's canonical JSON made once per point: the same bytes as
    canonical_json({"kind", "payload": {"eval", "config"}, "code_version"}) (keys sorted), so
    the same identity (tests/orchestrator/plan/test_build_speed.py)."""
    blob = (f'{{"code_version":{_json_str(code_version)},"kind":"mix","payload":{{"config":{config_json},'
            f'"eval":{_json_str(eval_id)}}}}}')
    import hashlib

    return hashlib.sha256(blob.encode()).hexdigest()


@functools.lru_cache(maxsize=1024)
def _json_str(s: str) -> str:
    """canonical_json of a string: a plan's 50,000 mix points share a few evals and one code version."""
    return canonical_json(s)


class MixKind(JobKind):
    """What every mix kind shares: the worker that holds the eval's stats, the eval's chunk
    size, the mode's legality, the run names and the mixer columns."""
    order = 2
    short = True
    mixer = True
    output_files = ()

    def worker_context(self, job: Any, jobs: Mapping[str, Any]) -> int:
        src = jobs.get(job.deps[0]) if job.deps else None
        # the chunk size the eval scored with (its n-gram tables absorb chunk by chunk)
        return (src.eval if isinstance(src, EvalJob) else EvalConfig()).chunk_tokens

    def submit(self, worker, attempt, dep, inputs, context, *, data_dir, vocab_size):
        # [inputs]: a list, so the bytes move only on the worker's cache miss
        return worker.run_mix.remote(attempt, dep, [inputs], data_dir, vocab_size, int(context))

    def mixer_dump(self, job: Any) -> dict[str, Any]:
        raise NotImplementedError

    def judge_kind(self, job, result, compliant, reasons, upstream):
        legal_mode = rules.mixer_mode(job.mode).passed
        own = legal_mode if compliant is None else compliant and legal_mode
        # a mix's score counts only where its eval's does
        return own and (upstream.compliant if upstream and upstream.compliant is not None else True)

    def score_column(self, job: Any) -> str:
        return str(job.mode)

    def label(self, job: Any) -> str:
        return str(job.mode)

    def row_fields(self, job: Any) -> dict[str, Any]:
        m = self.mixer_dump(job)
        if m.get("mode") == "none":
            return {"mixer.mode": "none"}
        return {f"mixer.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in m.items()}

    def estimate_s(self, job: Any, ctx: Any) -> float:
        from orchestrator.plan.estimate import _on_gpu, mix_seconds

        run = ctx.runs[job.deps[0]]
        key = (job.deps[0], job.mixer.table_key())
        first = key not in ctx.seen_keys
        ctx.seen_keys.add(key)
        return mix_seconds(job.mixer, ctx.tokens, run.model.vocab_size, _on_gpu(run), first)


class Mix(MixKind):
    name = "mix"
    job_type = MixJob

    def batch_key(self, job: Any) -> tuple:
        """Points of one eval and one n-gram table key share the pass: one call (issue 21)."""
        return (job.deps, "none" if job.mixer.mode == "none" else job.mixer.table_key())

    def submit_batch(self, worker, attempts, dep, inputs, context, *, data_dir, vocab_size):
        refs = worker.run_mix_batch.options(num_returns=len(attempts)).remote(
            attempts, dep, [inputs], data_dir, vocab_size, int(context))
        return list(refs) if len(attempts) > 1 else [refs]

    def mixer_dump(self, job: Any) -> dict[str, Any]:
        return job.mixer.model_dump(mode="json")
