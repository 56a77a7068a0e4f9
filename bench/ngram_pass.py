"""Throughput of the factorized n-gram pass (`ngram_pass`) in both mixer modes.

Usage: python bench/ngram_pass.py [--tokens 1000000] [--chunk 262144] [--buckets 4194304] [--device cpu]
                                  [--reference] [--dedupe]
Tokens are a sparse random Markov stream over V=1024 (entropy_source), so every order gets
hits. normalized sums all V candidates of the selected order once per distinct
(order, ctx_key) of a chunk: the hot path. --reference also times the former per-position
(N, V) gather (tests/golf_core/eval/test_ngram_fast.py) under the name normalized_ref;
--dedupe prints, per order, distinct ctx keys / active positions summed over the chunks.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.entropy_source import make_source, sample
from golf_core.eval.ngram import NgramTables, context_matrix, ngram_pass


def dedupe_ratios(val, chunk_tokens: int, cfg: MixerConfig, V: int) -> dict[int, tuple[int, int]]:
    """{order: (distinct (order, ctx_key) summed over chunks, active positions)} of the pass."""
    tab = NgramTables(cfg, V)
    vt = torch.from_numpy(val).to(torch.int64)
    total = len(val) - 1
    out = {o: [0, 0] for o in cfg.orders}
    for lo in range(0, total, chunk_tokens):
        hi = min(lo + chunk_tokens, total)
        pos = torch.arange(lo + 1, hi + 1)  # the targets of chunk lo // chunk_tokens
        order, slot, h, _ = tab.select(context_matrix(vt, pos, tab.width), pos)
        for o in cfg.orders:
            m = order == o
            out[o][0] += int(torch.unique(h[m] & tab.mask).numel())
            out[o][1] += int(m.sum())
        tab.absorb(vt[lo:hi])
    return {o: (u, n) for o, (u, n) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=262_144)
    ap.add_argument("--buckets", type=int, default=4_194_304)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)  # 2 threads spin badly on a busy 2-core box
    ap.add_argument("--modes", default="hashed_target,normalized")
    ap.add_argument("--reference", action="store_true", help="also time the former normalized lookup")
    ap.add_argument("--sample-tokens", type=int, default=0,
                    help="sample only this many tokens of the chain (python loop: ~4 us/token) and extend the "
                         "stream with copies under fresh random relabellings of the vocabulary (same statistics, "
                         "no repeated contexts across copies); 0 = sample all --tokens")
    ap.add_argument("--dedupe", action="store_true", help="print distinct ctx keys / active positions per order")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    V = 1024
    t0 = time.perf_counter()
    n_sample = args.sample_tokens or args.tokens + 1
    val = sample(make_source(V, seed=0), min(n_sample, args.tokens + 1), seed=1)
    if val.size < args.tokens + 1:
        rng = np.random.default_rng(2)
        copies = [val] + [rng.permutation(V)[val] for _ in range((args.tokens + 1) // val.size)]
        val = np.concatenate(copies)[: args.tokens + 1]
    print(f"stream of {args.tokens:,} tokens in {time.perf_counter() - t0:.1f} s")
    pos = np.arange(1, args.tokens + 1)
    chunk = (pos - 1) // args.chunk
    modes = args.modes.split(",") + (["normalized_ref"] if args.reference else [])
    results = {}
    for mode in modes:
        cfg = MixerConfig(mode=mode.removesuffix("_ref"), buckets=args.buckets)
        fast = NgramTables.lookup_normalized
        if mode == "normalized_ref":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests/
            from tests.golf_core.eval.test_ngram_fast import ref_lookup_normalized
            NgramTables.lookup_normalized = ref_lookup_normalized
        t0 = time.perf_counter()
        try:
            res = ngram_pass(val, pos, chunk, cfg, args.chunk, vocab_size=V, device=args.device)
        finally:
            NgramTables.lookup_normalized = fast
        results[mode] = res
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        hist = np.bincount(res.order, minlength=8)
        print(f"{mode:13s} device={args.device} threads={args.threads} tokens={args.tokens:,} chunk={args.chunk:,} "
              f"buckets={args.buckets:,}: {dt:.2f} s = {args.tokens / dt / 1e6:.2f}M tokens/s; "
              f"orders 0..7 = {hist.tolist()}")
    if "normalized" in results and "normalized_ref" in results:
        a, b = results["normalized"], results["normalized_ref"]
        same = np.array_equal(a.order, b.order) and np.array_equal(a.p_ngram, b.p_ngram)
        print(f"normalized vs normalized_ref: bit-identical = {same}, "
              f"max |diff| = {np.abs(a.p_ngram - b.p_ngram).max():.3g}")
    if args.dedupe:
        cfg = MixerConfig(mode="normalized", buckets=args.buckets)
        for o, (u, n) in dedupe_ratios(val, args.chunk, cfg, V).items():
            print(f"order {o}: {u:,} distinct ctx keys / {n:,} active positions = {u / max(n, 1):.4f}")


if __name__ == "__main__":
    main()
