"""A stand-in for `huggingface_hub.hf_hub_download` over a local hub-shaped dir (no network).

Like the real one it answers from a cache: the file is copied to `cache/blobs/<n>` once and
returned as a snapshot symlink to that blob, so callers must resolve it, as upstream's
downloader and golf's do. Every call is appended to `calls` (a list) for the test to read.
"""
from __future__ import annotations

import shutil
from pathlib import Path


def make_hf_hub_download(hub_root, cache_root, calls: list):
    hub_root, cache_root = Path(hub_root), Path(cache_root)
    served = iter(range(1, 1 << 30))  # one blob per call, even after a test clears `calls`

    def hf_hub_download(repo_id, filename, subfolder=None, repo_type=None, **kw):
        calls.append({"repo_id": repo_id, "filename": filename, "subfolder": subfolder, "repo_type": repo_type})
        rel = f"{subfolder}/{filename}" if subfolder else filename
        src = hub_root / rel
        if not src.is_file():
            raise FileNotFoundError(f"404: {repo_id}/{rel}")
        n = next(served)
        blob = cache_root / "blobs" / str(n)
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, blob)
        link = cache_root / "snapshots" / str(n) / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
        return str(link)

    return hf_hub_download


class StubApi:
    """The HfApi shape golf_core.data.fineweb.hf_download_fn calls."""

    def __init__(self, hub_root, cache_root):
        self.calls: list = []
        self.hf_hub_download = make_hf_hub_download(hub_root, cache_root, self.calls)
