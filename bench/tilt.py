"""Speed of golf's tilt hint pass (golf_core.eval.tilt) against PR #2135's C token channel.

Usage: python bench/tilt.py [--tokens 2000000] [--big 47851520] [--order 16] [--configs 1000]
                            [--skip-reference] [--compare OLD_TILT_PY] [--repeat 5]
1. Side by side on the same `--tokens` stream, orders 4, 8, 16: the reference C token channel
   (built from $GOLF_REFERENCE_DIR/parameter-golf/pr2135/online_ngram_state.c with
   gcc -O3 -shared -fPIC into a temp dir, ctypes, within-word channel off) and golf's pass;
   outputs compared for equality, tokens/s of each: the best of `--repeat` runs, golf and C
   alternating, and the ratio of their CPU times beside the wall-time one.
2. golf's pass at `--order` over `--big` tokens (47,851,520 = PR #2135's validation targets),
   wall time and peak RSS; the C channel on the same stream too unless --skip-reference.
3. `--configs` (threshold, boost) points over the big stream's hints (tilt_grid), CPU.
`--compare FILE`: another version of golf_core/eval/tilt.py (e.g. `git show REV:golf_core/eval/tilt.py
> old.py`) whose hint_pass is timed on the same streams too (after golf's, so peak RSS is golf's)
and checked equal to golf's: before/after in one run (side by side: best of --repeat as well).
Tokens are synthetic (vocab 1024, spans copied from a 4M-token base so contexts recur): timing
only. One process, one core (numpy is single-threaded for these ops).
"""
from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from golf_core.eval.tilt import auto_table_bits, hint_pass, tilt_grid


def synthetic(n: int, vocab: int = 1024, seed: int = 0) -> np.ndarray:
    """n tokens: spans of 8..200 tokens, about 60% copied from a 4M-token base (recurring
    contexts), the rest fresh Zipf-like draws; vectorized."""
    rng = np.random.default_rng(seed)
    w = 1.0 / np.arange(1, vocab + 1) ** 1.1
    w /= w.sum()
    base = rng.choice(vocab, size=min(n, 4_000_000), p=w)
    fresh = rng.choice(vocab, size=n, p=w)
    lens = rng.integers(8, 201, size=n // 8 + 1)
    starts = np.cumsum(lens) - lens
    keep = starts < n
    lens, starts = lens[keep], starts[keep]
    copy = rng.random(lens.size) < 0.6
    src = rng.integers(0, base.size - 201, size=lens.size)
    out = fresh.copy()
    idx = np.arange(n)
    span = np.repeat(np.arange(lens.size), lens)[:n]
    c = copy[span]
    out[c] = base[(src[span] + idx - starts[span])[c]]
    return out.astype(np.int64)


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("tilt_compared", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _time_old(mod, stream, order, bits, h, tg) -> str:
    """Time mod.hint_pass on the same stream; equal to golf's Hints h?"""
    t = time.perf_counter()
    o = mod.hint_pass(stream, order, bits)
    to = time.perf_counter() - t
    same = bool(np.array_equal(o.hint, h.hint) and np.array_equal(o.p_top, h.p_top)
                and (o.contexts, o.pairs) == (h.contexts, h.pairs))
    return f" | compared {to:6.2f} s (golf {to / tg:4.2f}x faster) equal={same}"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=2_000_000)
    ap.add_argument("--big", type=int, default=47_851_520)
    ap.add_argument("--order", type=int, default=16)
    ap.add_argument("--configs", type=int, default=1000)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--repeat", type=int, default=5, help="side by side: best of this many runs, alternating")
    ap.add_argument("--compare", type=Path, default=None, help="an older tilt.py to time beside golf's")
    a = ap.parse_args(argv)
    old = _load(a.compare) if a.compare else None
    lib = None
    if not a.skip_reference:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.fixtures import tilt_reference as ref

        src = ref.reference_c_file()
        if src is None or ref.compiler() is None:
            print("reference: skipped (GOLF_REFERENCE_DIR/parameter-golf/pr2135 or gcc missing)")
        else:
            tmp = tempfile.TemporaryDirectory()
            lib = ref.build(src, Path(tmp.name))
    small = synthetic(a.tokens, seed=1)
    print(f"side by side: {a.tokens:,} synthetic tokens")
    seeded = np.r_[small[0], small]  # the reference's seeded stream
    for order in (4, 8, 16):
        bits = auto_table_bits(small.size)
        # best of --repeat, golf and C alternating, wall and CPU time: on a shared machine one
        # timing moves with the load (see RESULTS.md), the minimum and the CPU time much less
        wall, cpu = {"golf": [], "C": [], "old": []}, {"golf": [], "C": [], "old": []}
        for _ in range(max(a.repeat, 1)):
            t, c = time.perf_counter(), time.process_time()
            h = hint_pass(seeded, order, bits)
            wall["golf"].append(time.perf_counter() - t)
            cpu["golf"].append(time.process_time() - c)
            if old is not None:
                t, c = time.perf_counter(), time.process_time()
                ho = old.hint_pass(seeded, order, bits)
                wall["old"].append(time.perf_counter() - t)
                cpu["old"].append(time.process_time() - c)
            if lib is not None:
                t, c = time.perf_counter(), time.process_time()
                top, prob = ref.token_channel(lib, small, order, bits)
                wall["C"].append(time.perf_counter() - t)
                cpu["C"].append(time.process_time() - c)
        tg = min(wall["golf"])
        line = f"  order {order:2d} bits {bits}: golf {tg:6.2f} s ({small.size / tg / 1e6:5.2f} M tok/s)"
        if old is not None:
            same = bool(np.array_equal(ho.hint, h.hint) and np.array_equal(ho.p_top, h.p_top)
                        and (ho.contexts, ho.pairs) == (h.contexts, h.pairs))
            to = min(wall["old"])
            line += (f" | compared {to:6.2f} s (golf {to / tg:4.2f}x faster, CPU time "
                     f"{min(cpu['old']) / min(cpu['golf']):4.2f}x) equal={same}")
        if lib is not None:
            tc = min(wall["C"])
            same = bool(np.array_equal(np.where(h.hint[1:] >= 0, h.hint[1:], 0), top)
                        and np.array_equal(h.p_top[1:], prob))
            line += (f" | C {tc:6.2f} s ({small.size / tc / 1e6:5.2f} M tok/s) | golf/C {tc / tg:4.2f}x"
                     f" (CPU time {min(cpu['C']) / min(cpu['golf']):4.2f}x) equal={same}")
        print(line + f"  [best of {max(a.repeat, 1)}]", flush=True)
    del small
    big = synthetic(a.big, seed=2)
    bits = auto_table_bits(big.size)
    print(f"big: {big.size:,} synthetic tokens, order {a.order}, table bits {bits}")
    t = time.perf_counter()
    h = hint_pass(big, a.order, bits)
    tg = time.perf_counter() - t
    hinted = int((h.hint >= 0).sum())
    print(f"  golf hint pass {tg:.2f} s ({big.size / tg / 1e6:.2f} M tok/s), peak RSS {peak_rss_gb():.2f} GB, "
          f"hinted {hinted:,}, contexts {h.contexts:,}, pairs {h.pairs:,}", flush=True)
    rng = np.random.default_rng(3)
    nll = rng.exponential(2.5, size=big.size)
    q = rng.random(big.size)
    side = int(np.sqrt(a.configs))
    th = np.repeat(np.linspace(0.5, 0.99, side), a.configs // side)
    bo = np.tile(np.linspace(0.5, 4.0, a.configs // side), side)
    t = time.perf_counter()
    sums = tilt_grid(nll, q, h.hint, h.p_top, big, th, bo)
    tm = time.perf_counter() - t
    print(f"  {th.size} (threshold, boost) configs: {tm:.2f} s CPU ({th.size / tm:.0f} configs/s); "
          f"gated at 0.8: {int(sums.gated[np.argmin(np.abs(th - 0.8))]):,}; GPU not measured (none here)", flush=True)
    if old is not None:
        print("  compared:" + _time_old(old, big, a.order, bits, h, tg), flush=True)
    if lib is not None:
        del h
        t = time.perf_counter()
        ref.token_channel(lib, big[1:], a.order, bits)
        tc = time.perf_counter() - t
        print(f"  C token channel, same stream: {tc:.2f} s ({big.size / tc / 1e6:.2f} M tok/s); golf/C {tc / tg:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
