"""A model.ptz is a file anyone can hand us (issue 7): truncated, garbage, a decompression bomb
or a pickle that would run code are each one ArtifactError naming the file, and `golf eval`
says it in one line with exit 2; the malicious pickle never runs."""
from __future__ import annotations

import io
import lzma
import zlib

import pytest
import torch
import zstandard

from golf_core.cli import main
from golf_core.presets import load_preset
from golf_core.quant import ArtifactError, load_artifact, write_artifact
from golf_core.quant.compress import CompressionError, compress, decompress
from tests.golf_core.quant.test_artifact import trained_ish


@pytest.fixture(scope="module")
def good_artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("art")
    cfg = load_preset("tiny")
    write_artifact(trained_ish(cfg), cfg, d)
    return d


def _with_model(src, dst, blob: bytes):
    dst.mkdir()
    (dst / "artifact.json").write_bytes((src / "artifact.json").read_bytes())
    (dst / "model.ptz").write_bytes(blob)
    return dst


class _Evil:  # a pickle whose loading would create a file
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _evil_blob(marker) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": "golf_artifact_v1", "model": "{}", "quant": _Evil(str(marker))}, buf)
    return zlib.compress(buf.getvalue())


def _zstd_bomb_without_size(n_mib: int) -> bytes:
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(buf, closefd=False) as w:
        for _ in range(n_mib):
            w.write(b"\0" * (1 << 20))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zlib", "lzma", "zstd"])
def test_decompression_is_bounded_and_truncation_is_caught(kind):
    data = b"\0" * (4 << 20)
    blob = compress(data, kind, 1)
    assert decompress(blob, limit=len(data)) == data
    with pytest.raises(CompressionError, match=f"more than {1 << 20} bytes"):
        decompress(blob, limit=1 << 20)
    with pytest.raises(CompressionError, match="cut short|corrupt"):
        decompress(blob[: len(blob) // 2])


def test_a_zstd_bomb_that_hides_its_size_stops_at_the_bound():
    bomb = _zstd_bomb_without_size(64)  # 64 MiB of zeros in ~2 KB, no content size in the frame
    assert len(bomb) < 10_000
    with pytest.raises(CompressionError, match="decompression bomb"):
        decompress(bomb, limit=8 << 20)


def test_a_bomb_with_a_recorded_size_is_refused_without_decompressing():
    # a real 600 MiB-of-zeros frame, at the default 512 MiB bound, in no memory at all: the frame
    # header's content size is checked first
    cctx = zstandard.ZstdCompressor(level=1)
    buf = io.BytesIO()
    with cctx.stream_writer(buf, size=600 << 20, closefd=False) as w:
        for _ in range(600):
            w.write(b"\0" * (1 << 20))
    bomb = buf.getvalue()
    assert zstandard.get_frame_parameters(bomb).content_size == 600 << 20
    with pytest.raises(CompressionError, match=f"more than {512 << 20} bytes"):
        decompress(bomb)


@pytest.mark.parametrize("case", ["truncated", "garbage", "not_a_pickle", "bomb_zlib", "bomb_xz", "bomb_zstd",
                                  "evil"])
def test_bad_model_ptz_is_one_artifact_error_naming_the_file(good_artifact, tmp_path, monkeypatch, case):
    marker = tmp_path / "pwned"
    good = (good_artifact / "model.ptz").read_bytes()
    blob = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00garbage" * 100,
        "not_a_pickle": zlib.compress(b"plain text, no torch zip"),
        "bomb_zlib": zlib.compress(b"\0" * (8 << 20), 9),
        "bomb_xz": lzma.compress(b"\0" * (8 << 20)),
        "bomb_zstd": _zstd_bomb_without_size(8),
        "evil": _evil_blob(marker),
    }[case]
    monkeypatch.setenv("GOLF_MAX_MODEL_BYTES", str(1 << 20))  # bombs of 8 MiB against a 1 MiB bound
    d = _with_model(good_artifact, tmp_path / "a", blob)
    with pytest.raises(ArtifactError, match=r"model\.ptz: ") as ei:
        load_artifact(d)
    assert str(d / "model.ptz") in str(ei.value) and "\n" not in str(ei.value)
    assert not marker.exists(), "the pickle's code ran"


def test_golf_eval_on_bad_model_ptz_is_one_line_exit_2(good_artifact, synthetic_data_dir, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.setenv("GOLF_MAX_MODEL_BYTES", str(1 << 20))
    for name, blob in (("evil", _evil_blob(tmp_path / "pwned")), ("bomb", zlib.compress(b"\0" * (8 << 20), 9)),
                       ("cut", (good_artifact / "model.ptz").read_bytes()[:100])):
        d = _with_model(good_artifact, tmp_path / name, blob)
        rc = main(["eval", str(d), "--data", str(synthetic_data_dir), "--out", str(tmp_path / f"out-{name}"),
                   "--set", "eval.max_tokens=4096"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and f"{d / 'model.ptz'}:" in err[0], (name, err)
    assert not (tmp_path / "pwned").exists()
