"""Artifact bytes per compressor (and int5/int6 storage layout) for a preset's model. CPU is fine.

    python bench/quant_compressors.py --preset pr779 --weights gauss --std 0.1
    python bench/quant_compressors.py --preset baseline --schemes int8 --storages int8

`--weights init` measures the model as constructed (its zero-initialized output projections
compress to almost nothing, so this undercounts); `--weights gauss` replaces every parameter of
2+ dims by N(0, std^2) noise, a stand-in with no structure. Neither is a trained model: trained
weights have heavier tails, row-dependent ranges and correlations, and compress differently.
Use the table to rank compressors and layouts, not to predict a record's exact size.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import datetime, timezone

import torch

from golf_core.model import GPT, count_params
from golf_core.presets import load_preset
from golf_core.quant.artifact import build_payload, code_bytes_for
from golf_core.quant.compress import compress


def make_model(preset: str, weights: str, std: float, seed: int):
    cfg = load_preset(preset)
    torch.manual_seed(seed)
    model = GPT(cfg.model)
    if weights == "gauss":
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * std)
    return cfg, model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="pr779")
    ap.add_argument("--weights", choices=["init", "gauss"], default="gauss")
    ap.add_argument("--std", type=float, default=0.1, help="std of the gauss weights")
    ap.add_argument("--schemes", default=None, help="comma list; default: the preset's scheme")
    ap.add_argument("--storages", default="int8,packed")
    ap.add_argument("--compressors", default="zlib,lzma,zstd")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    cfg, model = make_model(args.preset, args.weights, args.std, args.seed)
    n = count_params(model)
    code = code_bytes_for(cfg)
    schemes = args.schemes.split(",") if args.schemes else [cfg.quant.scheme]
    print(f"# {args.preset} ({n:,} params), weights={args.weights}"
          + (f" std={args.std}" if args.weights == "gauss" else "")
          + f", {platform.processor() or platform.machine()} CPU, torch {torch.__version__}, "
          + datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    print(f"# code_bytes (golf_core.export single-file script for this config) = {code:,}")
    print("| scheme | storage | compressor | raw bytes | model bytes | bits/param | artifact bytes | fits 16MB | compress s |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|")
    for scheme in schemes:
        storages = args.storages.split(",") if scheme != "int8" else ["int8"]
        for storage in storages:
            qcfg = cfg.quant.model_copy(update={"scheme": scheme, "storage": storage})
            raw, stats = build_payload(model, cfg.model, qcfg)
            for comp in args.compressors.split(","):
                t0 = time.perf_counter()
                blob = compress(raw, comp, None)
                dt = time.perf_counter() - t0
                total = len(blob) + code
                print(f"| {scheme} | {storage} | {comp} (max) | {len(raw):,} | {len(blob):,} | "
                      f"{8 * len(blob) / n:.3f} | {total:,} | {'yes' if total <= 16_000_000 else 'NO'} | {dt:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
