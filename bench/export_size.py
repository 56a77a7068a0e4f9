"""Code bytes of the exported train_gpt.py: what a record's script costs out of 16,000,000 bytes.

    python bench/export_size.py [--preset pr779]

Prints, for the preset with its own evaluation baked in: the readable and the compressed
script sizes, the bundled runtime's source bytes against all of golf_core's, and the form
golf exported before the runtime-only bundle (every golf_core source, xz tar, base85),
rebuilt here from today's sources so the comparison is side by side on the same code.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import lzma
import platform
import tarfile
import time
from pathlib import Path

import golf_core
from golf_core.eval.config import EvalSpec
from golf_core.export import script_sizes
from golf_core.export.bundle import runtime_sources
from golf_core.presets import load_preset


def whole_package_blob_bytes() -> int:
    """Base85 bytes of every golf_core source as a deterministic tar, xz -9e (the old form)."""
    root = Path(golf_core.__file__).resolve().parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for p in golf_core.source_files():
            data = p.read_bytes()
            info = tarfile.TarInfo("golf_core/" + p.relative_to(root).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return len(base64.b85encode(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="pr779")
    args = ap.parse_args()
    run = load_preset(args.preset)
    sizes = script_sizes(run, EvalSpec(eval=run.eval), title=args.preset)
    bundled = runtime_sources()
    out = {
        "preset": args.preset, "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "script_readable_bytes": sizes["readable"], "script_compressed_bytes": sizes["compressed"],
        "bundled_modules": len(bundled), "bundled_source_bytes": sum(len(t.encode()) for t in bundled.values()),
        "all_golf_core_modules": len(golf_core.source_files()),
        "all_golf_core_source_bytes": sum(len(p.read_bytes()) for p in golf_core.source_files()),
        "old_form_blob_bytes_all_sources": whole_package_blob_bytes(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
