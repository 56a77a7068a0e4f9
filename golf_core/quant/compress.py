"""Byte compressors for the artifact: zlib, lzma, zstd (zstandard). The format is detected from
the blob's magic bytes on decompression, so a reader needs no config."""
from __future__ import annotations

import lzma
import zlib

import zstandard

MAX_LEVEL = {"zlib": 9, "lzma": 9, "zstd": 22}
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class CompressionError(ValueError):
    """A blob none of the known decompressors recognizes."""


def compress(data: bytes, compressor: str, level: int | None = None) -> bytes:
    """`level` None = the compressor's maximum (lzma: preset 9 | EXTREME)."""
    if compressor == "zlib":
        return zlib.compress(data, MAX_LEVEL["zlib"] if level is None else level)
    if compressor == "lzma":
        preset = (9 | lzma.PRESET_EXTREME) if level is None else level
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=preset)
    if compressor == "zstd":
        return zstandard.ZstdCompressor(level=MAX_LEVEL["zstd"] if level is None else level).compress(data)
    raise ValueError(f"unknown compressor {compressor!r} (choose zlib, lzma, zstd)")


def detect(blob: bytes) -> str:
    if blob.startswith(_ZSTD_MAGIC):
        return "zstd"
    if blob.startswith(_XZ_MAGIC):
        return "lzma"
    if len(blob) >= 2 and blob[0] & 0x0F == 8 and ((blob[0] << 8) | blob[1]) % 31 == 0:
        return "zlib"
    raise CompressionError("model blob is not zlib, xz or zstd data")


def decompress(blob: bytes) -> bytes:
    kind = detect(blob)
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompress(blob)
    if kind == "lzma":
        return lzma.decompress(blob)
    return zlib.decompress(blob)
