"""Throughput of the factorized n-gram pass (`ngram_pass`) in both mixer modes.

Usage: python bench/ngram_pass.py [--tokens 1000000] [--chunk 262144] [--buckets 4194304] [--device cpu]
Tokens are a sparse random Markov stream over V=1024 (entropy_source), so every order gets
hits. normalized gathers all V candidates of the selected order per position: the hot path.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.entropy_source import make_source, sample
from golf_core.eval.ngram import ngram_pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=262_144)
    ap.add_argument("--buckets", type=int, default=4_194_304)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)  # 2 threads spin badly on a busy 2-core box
    ap.add_argument("--modes", default="hashed_target,normalized")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    V = 1024
    t0 = time.perf_counter()
    val = sample(make_source(V, seed=0), args.tokens + 1, seed=1)
    print(f"stream of {args.tokens:,} tokens in {time.perf_counter() - t0:.1f} s")
    pos = np.arange(1, args.tokens + 1)
    chunk = (pos - 1) // args.chunk
    for mode in args.modes.split(","):
        cfg = MixerConfig(mode=mode, buckets=args.buckets)
        t0 = time.perf_counter()
        res = ngram_pass(val, pos, chunk, cfg, args.chunk, vocab_size=V, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        hist = np.bincount(res.order, minlength=8)
        print(f"{mode:13s} device={args.device} threads={args.threads} tokens={args.tokens:,} chunk={args.chunk:,} "
              f"buckets={args.buckets:,}: {dt:.2f} s = {args.tokens / dt / 1e6:.2f}M tokens/s; "
              f"orders 0..7 = {hist.tolist()}")


if __name__ == "__main__":
    main()
