"""Mixing over an eval output dir (result.json + token_stats.npz): grids and mix jobs.

The neural pass ran once (`run_eval`); here each distinct n-gram table config gets one
`ngram_pass` and each alpha setting a cheap `mix_bpb`. `mix_job` is what a plan's "mix" job
runs (config `{"mixer": MixerConfig dump}`, deps = the eval job): the mixed val_bpb of one
config plus its compliance audit.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from golf_core import rules
from golf_core.eval.bpb import bpb
from golf_core.eval.config import EvalSpec, MixerConfig
from golf_core.eval.mix import MixError, load_stats, mix_bpb, mix_nll, stream_from_stats
from golf_core.eval.ngram import NgramResult, ngram_pass

RESULT_FILE = "result.json"
STATS_FILE = "token_stats.npz"


def read_run(run_dir: str | Path) -> tuple[dict, dict]:
    """(result.json dict or {}, token stats) of an eval output dir; MixError/FileNotFoundError if unusable."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: eval output directory not found")
    rpath = run_dir / RESULT_FILE
    result = {}
    if rpath.is_file():
        try:
            result = json.loads(rpath.read_text())
        except json.JSONDecodeError as e:
            raise MixError(f"{rpath}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return result, load_stats(run_dir / STATS_FILE)


def run_spec(result: dict, sets: list[str] | None = None) -> EvalSpec:
    """The run's EvalSpec from result.json (defaults where absent), with --set overrides."""
    from golf_core.config import build, with_overrides

    spec = build(EvalSpec, result.get("spec") or {}, prefix="result.json spec")
    return with_overrides(spec, sets) if sets else spec


def vocab_of(stats: dict, given: int | None = None) -> int:
    if given:
        return int(given)
    a = stats.get("audit_p_model")
    if a is not None and np.ndim(a) == 2 and np.shape(a)[1]:
        return int(np.shape(a)[1])
    return 1024


def val_tokens(stats: dict, data_dir: str | Path | None, vocab_size: int) -> np.ndarray:
    """The validation stream the stats were scored on: read from data_dir, or rebuilt from the stats."""
    if data_dir:
        from golf_core.data.shards import load_split

        val = load_split(Path(data_dir), "val", vocab_size).numpy().astype(np.int64)
        n = int(np.max(stats["pos"])) + 1
        if val.size < n:
            raise MixError(f"{data_dir}: validation split has {val.size} tokens, the stats need {n}")
        return val[:n]
    return stream_from_stats(stats)


def _ngram_for(stats, val, cfg: MixerConfig, chunk_tokens, vocab, device, reuse, audit_idx=None) -> NgramResult:
    n = len(stats["pos"])
    if cfg.mode == "none":
        return NgramResult(np.zeros(n, dtype=np.int8), np.zeros(n))
    if cfg.mode == "tilt":  # the hints and q came with the stats (the eval priced them)
        from golf_core.eval.tilt_eval import tilt_arrays

        return tilt_arrays(stats, cfg)
    if reuse is not None and cfg.table_key() == reuse and "order" in stats and "p_ngram" in stats and audit_idx is None:
        return NgramResult(stats["order"], stats["p_ngram"], table_key=reuse)  # the run's own pass
    # n_ctx: the window context the fused path used (it matters where stride == seq_len)
    return ngram_pass(val, stats["pos"], stats["chunk"], cfg, chunk_tokens, vocab_size=vocab,
                      audit_idx=audit_idx, device=device, n_ctx=stats.get("n_ctx"))


def grid_rows(run_dir, cfgs: list[MixerConfig], *, data_dir=None, chunk_tokens: int | None = None,
              vocab_size: int | None = None, device="cpu") -> list[dict]:
    """val_bpb of every grid point over one eval dir: one n-gram pass per table_key."""
    result, stats = read_run(run_dir)
    spec = run_spec(result)
    vocab = vocab_of(stats, vocab_size)
    val = val_tokens(stats, data_dir, vocab)
    ct = chunk_tokens or spec.eval.chunk_tokens
    reuse = spec.mixer.table_key() if spec.mixer.mode != "none" and not chunk_tokens else None
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(cfgs):
        groups.setdefault(("none",) if c.mode == "none" else c.table_key(), []).append(i)
    bpbs = [math.nan] * len(cfgs)
    for idx in groups.values():
        sub = [cfgs[i] for i in idx]
        ng = _ngram_for(stats, val, sub[0], ct, vocab, device, reuse)
        for i, b in zip(idx, mix_bpb(stats, ng, sub, device=device)):
            bpbs[i] = b
    fields = list(MixerConfig.model_fields)
    dumps = [c.model_dump(mode="json") for c in cfgs]
    varying = [f for f in fields if len({json.dumps(d.get(f)) for d in dumps}) > 1] or ["mode"]
    # the compliance decision is the rules' (golf_core.rules.mixer_mode), not decided again here
    return [{"val_bpb": b, "compliant": bool(rules.mixer_mode(c.mode).passed), **{f: d.get(f) for f in varying},
             "config": d}
            for c, d, b in zip(cfgs, dumps, bpbs)]


def mix_job(run_dir, mixer_cfg: MixerConfig, *, data_dir=None, out_dir=None, device="cpu") -> dict:
    """One mixer config over an eval dir: val_bpb / val_loss of the mix and its audit.

    Writes out_dir/result.json when out_dir is given. Checks only the run could measure
    (model causality, its event log, artifact bytes, eval time) are carried from its result.
    """
    from golf_core.eval.audit import audit

    t0 = time.perf_counter()
    result, stats = read_run(run_dir)
    spec = run_spec(result)
    vocab = vocab_of(stats)
    val = val_tokens(stats, data_dir, vocab)
    ct = spec.eval.chunk_tokens
    t1 = time.perf_counter()
    ng = _ngram_for(stats, val, mixer_cfg, ct, vocab, device, None, audit_idx=stats.get("audit_idx"))
    nll = mix_nll(stats, ng, mixer_cfg)
    pass_s = time.perf_counter() - t1  # the n-gram pass counts against the eval cap too
    nbytes = float(np.asarray(stats["bytes"], dtype=np.float64).sum())
    run_stats = {k: v for k, v in stats.items() if k not in ("order", "p_ngram", "p_mix", "audit_p_ngram")}
    carried = {k: v for k, v in ((result.get("compliance") or {}).get("checks") or {}).items()
               if k not in ("mode", "normalized_sum", "eval_time")}
    eval_s = result.get("eval_time_s")
    comp = audit(spec=spec.model_copy(update={"mixer": mixer_cfg}), vocab_size=vocab, stats=run_stats, ngram=ng,
                 val_tokens=val, total_tokens=int(val.size - 1), artifact_bytes=result.get("artifact_bytes"),
                 eval_time_s=None if eval_s is None else float(eval_s) + pass_s, carried=carried, device=device)
    out = {
        "val_bpb": bpb(float(nll.sum()), nbytes),
        "val_loss": float(nll.mean()),
        "val_bpb_model": bpb(float(-np.log(np.asarray(stats["p_model"], dtype=np.float64)).sum()), nbytes),
        "tokens_scored": int(nll.size),
        "bytes_scored": int(nbytes),
        "mix_time_s": time.perf_counter() - t0,
        "eval_time_s": None if eval_s is None else float(eval_s) + pass_s,  # neural pass + n-gram pass
        "artifact_bytes": result.get("artifact_bytes"),
        "compliance": comp,
        "mixer": mixer_cfg.model_dump(mode="json"),
        "eval_dir": str(run_dir),
    }
    if mixer_cfg.mode == "tilt":
        from golf_core.eval.tilt_eval import tilt_counts

        out.update(tilt_counts(stats, ng, mixer_cfg))
    else:
        out["order_counts"] = np.bincount(ng.order.astype(np.int64), minlength=max(mixer_cfg.orders) + 1).tolist()
    if out_dir is not None:
        p = Path(out_dir)
        p.mkdir(parents=True, exist_ok=True)
        (p / RESULT_FILE).write_text(json.dumps(out, indent=2, default=jsonable) + "\n")
    return out


def jsonable(o):
    """json.dumps default for numpy scalars/arrays (and anything else as str)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
