"""What content identity costs (issue 20): the first `data_identity` of a data dir reads and
hashes every shard's bytes; a rerun over unchanged shards reads none (the digest cache).

Makes `--shards` train shards of `--tokens` tokens each plus one val shard (random tokens,
upstream's layout) in a work dir, then times: the first identity (empty cache), the rerun
(cached), and one shard rewritten in place (only it is hashed again). The rate is extrapolated
to the challenge's data: 80 train shards of 100M tokens + the val split (62,021,632 tokens).

    python bench/data_identity.py [--shards 4] [--tokens 10000000] [--work DIR] [--results FILE]

The shards were just written, so they are in the page cache: the figure is the hash rate, a
lower bound on a cold disk's time (add the disk's read time, e.g. 16 GB at its MB/s).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from golf_core.data.config import DataConfig  # noqa: E402
from golf_core.data.shards import write_shard  # noqa: E402

TRAIN_SHARDS, TRAIN_SHARD_TOKENS, VAL_TOKENS = 80, 100_000_000, 62_021_632


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=10_000_000, help="tokens per train shard")
    ap.add_argument("--work", default=None, help="where the shards are made (default: a temp dir)")
    ap.add_argument("--results", default=None, help="append a markdown section to this file")
    a = ap.parse_args(argv)
    work = Path(a.work or tempfile.mkdtemp(prefix="golf-bench-ident-"))
    data = work / "fineweb10B_sp1024"
    data.mkdir(parents=True, exist_ok=True)
    os.environ["GOLF_CACHE_DIR"] = str(work / "cache")  # an empty digest cache
    from orchestrator.plan.build import data_identity

    rng = np.random.default_rng(0)
    for k in range(a.shards):
        write_shard(data / f"fineweb_train_{k:06d}.bin", rng.integers(0, 1024, a.tokens, dtype=np.uint16))
    write_shard(data / "fineweb_val_000000.bin", rng.integers(0, 1024, a.tokens // 4, dtype=np.uint16))
    (data / "fineweb_1024_bpe.model").write_bytes(b"not a real model: only its bytes are hashed")
    nbytes = sum(f.stat().st_size for f in data.glob("fineweb_*.bin"))
    cfg = DataConfig(path=str(data))
    try:
        t0 = time.perf_counter()
        first = data_identity(cfg, work)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = data_identity(cfg, work)
        t_again = time.perf_counter() - t0
        assert again == first
        shard = data / "fineweb_train_000000.bin"
        shard_bytes = shard.stat().st_size
        shard.write_bytes(shard.read_bytes())  # same bytes, new ctime: hashed again, same identity
        t0 = time.perf_counter()
        assert data_identity(cfg, work) == first
        t_one = time.perf_counter() - t0
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    rate = nbytes / t_first
    full = TRAIN_SHARDS * (1024 + 2 * TRAIN_SHARD_TOKENS) + 1024 + 2 * VAL_TOKENS
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## data identity: first hash of the shards (issue 20)\n",
        f"Seen on {when}, CPU only ({platform.machine()}, {os.cpu_count()} cores shared with other jobs), "
        f"`python bench/data_identity.py --shards {a.shards} --tokens {a.tokens}`; shards in the page cache "
        "(just written), so this is the hash rate (sha256), not a cold disk's.\n",
        "| what | bytes | time | rate |",
        "|---|---:|---:|---:|",
        f"| first identity, {a.shards} train + 1 val shard | {nbytes:,} | {t_first:.2f} s | {rate / 1e6:,.0f} MB/s |",
        f"| rerun, unchanged shards (digest cache) | 0 read | {t_again * 1000:.1f} ms | |",
        f"| one shard rewritten, the rest cached | {shard_bytes:,} | "
        f"{t_one:.2f} s | |",
        f"| extrapolated: 80 x 100M-token train shards + val | {full:,} | {full / rate:.0f} s | at the rate above |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if a.results:
        with open(a.results, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
