"""Byte compressors for the artifact: zlib, lzma, zstd (zstandard). The format is detected from
the blob's magic bytes on decompression, so a reader needs no config.

Decompression is bounded (MAX_OUTPUT_BYTES, 512 MiB; a 16 MB artifact's payload is far below):
a model.ptz is a file anyone can hand us, and a few KB of zeros compress to gigabytes. Every
decompressor is driven incrementally, so a bomb costs at most the bound in memory.
"""
from __future__ import annotations

import io
import lzma
import zlib

import zstandard
from golf_core.errors import UserError

MAX_LEVEL = {"zlib": 9, "lzma": 9, "zstd": 22}
_XZ_MAGIC = b"\xfd7zXZ\x00"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


MAX_OUTPUT_BYTES = 512 * 2**20


class CompressionError(UserError):
    """A blob none of the known decompressors recognizes, one that is cut short or corrupt, or
    one that would decompress past the bound."""


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


def _too_big(limit: int) -> CompressionError:
    return CompressionError(f"decompresses to more than {limit} bytes (a decompression bomb or not a model)")


def decompress(blob: bytes, limit: int | None = None) -> bytes:
    """The decompressed bytes; CompressionError when the blob is unknown, truncated, corrupt or
    would exceed `limit` bytes (default MAX_OUTPUT_BYTES)."""
    limit = MAX_OUTPUT_BYTES if limit is None else limit
    kind = detect(blob)
    try:
        if kind == "zstd":
            size = zstandard.get_frame_parameters(blob).content_size  # 2**64-1 when not recorded
            known = size != zstandard.CONTENTSIZE_UNKNOWN
            if known and size > limit:
                raise _too_big(limit)
            out = bytearray()
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as r:
                while chunk := r.read(min(1 << 20, limit + 1 - len(out)) or 1):
                    out += chunk
                    if len(out) > limit:
                        raise _too_big(limit)
            # the stream reader stops quietly at a cut: compare with the frame's own size
            if known and len(out) != size:
                raise CompressionError("zstd data cut short (truncated file)")
            if not known:  # output is bounded now, so a one-shot object can tell us about the end
                d = zstandard.ZstdDecompressor().decompressobj()
                d.decompress(blob)
                if not d.eof:
                    raise CompressionError("zstd data cut short (truncated file)")
            return bytes(out)
        if kind == "lzma":
            d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            out = d.decompress(blob, max_length=limit + 1)
            if len(out) > limit or (not d.eof and not d.needs_input):
                raise _too_big(limit)
            if not d.eof:
                raise CompressionError("xz data cut short (truncated file)")
            return out
        d = zlib.decompressobj()
        out = d.decompress(blob, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise _too_big(limit)
        if not d.eof:
            raise CompressionError("zlib data cut short (truncated file)")
        return out
    except (zstandard.ZstdError, lzma.LZMAError, zlib.error) as e:
        raise CompressionError(f"corrupt {kind} data ({e})") from None
