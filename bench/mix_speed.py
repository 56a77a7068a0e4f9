"""Throughput of `mix_bpb`: many alpha configs over the same token stats.

Usage: python bench/mix_speed.py [--tokens 2000000] [--configs 100] [--device cpu] [--threads 2]
Prints config-positions per second for float64 and float32 compute and extrapolates to the
GPU target (1,000 configs x 62,021,632 tokens in < 10 s). Synthetic stats: every position
active (order 2..7), so no warm-up shortcut flatters the number.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from golf_core.eval.config import MixerConfig
from golf_core.eval.mix import mix_bpb
from golf_core.eval.ngram import NgramResult

FULL_TOKENS, FULL_CONFIGS = 62_021_632, 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--configs", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)  # 2 threads spin badly on a busy 2-core box
    ap.add_argument("--per-order", action="store_true", help="per-order entropy centers (#798) in every config")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.tokens
    stats = {"p_model": rng.uniform(1e-4, 1, n), "entropy": rng.uniform(0, 7, n).astype(np.float32),
             "bytes": rng.integers(1, 6, n)}
    ng = NgramResult(rng.integers(2, 8, n).astype(np.int8), rng.uniform(0, 1, n))
    centers = {7: 3.0, 6: 3.2, 5: 3.5, 4: 3.8, 3: 4.2, 2: 4.5} if args.per_order else None
    cfgs = [MixerConfig(mode="normalized", alpha_base=0.3 * (i % 10) / 10, alpha_range=0.5,
                        entropy_center=2 + (i // 10) % 5, entropy_centers=centers) for i in range(args.configs)]
    for dtype in (torch.float64, torch.float32):
        mix_bpb(stats, ng, cfgs[:2], device=args.device, dtype=dtype)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        mix_bpb(stats, ng, cfgs, device=args.device, dtype=dtype)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        rate = n * len(cfgs) / dt
        print(f"{str(dtype).split('.')[-1]:8s} device={args.device} threads={args.threads} tokens={n:,} "
              f"configs={len(cfgs)} per_order={bool(centers)}: {dt:.2f} s = {rate / 1e6:.1f}M config-positions/s; "
              f"1000 x 62M at this rate: {FULL_TOKENS * FULL_CONFIGS / rate:.0f} s")


if __name__ == "__main__":
    main()
