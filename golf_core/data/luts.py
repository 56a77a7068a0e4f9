"""Per-token byte lookup tables: how many UTF-8 bytes each scored target stands for.

val_bpb divides nats by bytes of the original text, so the byte count of a token must be
exactly what decoding adds. Rules as upstream `build_sentencepiece_luts` (train_gpt.py):
- control / unknown / unused ids: 0 bytes, and they are "boundaries" (BOS starts a document);
- byte-fallback pieces `<0xNN>`: 1 byte;
- other pieces: UTF-8 length without a leading "▁"; that "▁" is a space, counted only when the
  previous token is not a boundary (no space is emitted at the start of a document).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPACE_MARK = "\u2581"  # "▁", SentencePiece's whitespace symbol


@dataclass(frozen=True)
class ByteLUTs:
    base_bytes: torch.Tensor  # (V,) int16
    has_leading_space: torch.Tensor  # (V,) bool
    is_boundary: torch.Tensor  # (V,) bool

    @property
    def vocab_size(self) -> int:
        return int(self.base_bytes.numel())

    def to(self, device) -> ByteLUTs:
        return ByteLUTs(*(t.to(device) for t in (self.base_bytes, self.has_leading_space, self.is_boundary)))

    def target_bytes(self, prev: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Bytes of each target `tgt` following `prev` (same shape), as int32."""
        space = self.has_leading_space[tgt] & ~self.is_boundary[prev]
        return self.base_bytes[tgt].to(torch.int32) + space.to(torch.int32)

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base_bytes int16, has_leading_space bool, is_boundary bool) as numpy arrays."""
        return tuple(t.detach().cpu().numpy() for t in (self.base_bytes, self.has_leading_space, self.is_boundary))

    def target_bytes_np(self, prev: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        """Numpy twin of `target_bytes` (for the CPU n-gram / mix passes), as int32."""
        base, lead, bound = self.numpy()
        prev = np.asarray(prev, dtype=np.int64)
        tgt = np.asarray(tgt, dtype=np.int64)
        return base[tgt].astype(np.int32) + (lead[tgt] & ~bound[prev]).astype(np.int32)


def build_byte_luts(tokenizer_path: str | Path, vocab_size: int, device="cpu") -> ByteLUTs:
    """Tables of size max(tokenizer vocab, vocab_size); ids beyond the tokenizer are boundaries."""
    import sentencepiece as spm

    path = Path(tokenizer_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer model not found")
    sp = spm.SentencePieceProcessor(model_file=str(path))
    sp_vocab = int(sp.vocab_size())
    size = max(sp_vocab, int(vocab_size))
    base = np.zeros(size, dtype=np.int16)
    lead = np.zeros(size, dtype=np.bool_)
    bound = np.ones(size, dtype=np.bool_)
    for i in range(sp_vocab):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        bound[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith(SPACE_MARK):
            lead[i] = True
            piece = piece[len(SPACE_MARK):]
        base[i] = len(piece.encode("utf-8"))
    return ByteLUTs(
        base_bytes=torch.tensor(base, dtype=torch.int16, device=device),
        has_leading_space=torch.tensor(lead, dtype=torch.bool, device=device),
        is_boundary=torch.tensor(bound, dtype=torch.bool, device=device),
    )
