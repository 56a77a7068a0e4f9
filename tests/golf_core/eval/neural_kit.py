"""Helpers for the neural-eval tests: a tiny GPT with every weight random (so no zero-init
projection makes the model, or its TTT gradients, trivial), the val stream of the shared
synthetic data dir, and the 2-rank worker (`python neural_kit.py two-ranks DATA OUT`, one
process per rank under golf_core.train.distributed.launch_local)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script by launch_local: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig  # noqa: E402
from golf_core.model import GPT, ModelConfig  # noqa: E402

TINY = dict(num_layers=2, model_dim=32, num_heads=2, num_kv_heads=1, mlp_mult=2.0)
EC = EvalConfig(seq_len=32, stride=8, batch_seqs=8, chunk_tokens=200, audit_positions=6)


def tiny_model(seed: int = 0, **over) -> GPT:
    torch.manual_seed(seed)
    model = GPT(ModelConfig(**{**TINY, **over}))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if "emb" in name else 0.15))
    return model.eval()


def val_stream(data_dir, n: int) -> torch.Tensor:
    from golf_core.data.shards import load_split

    return load_split(data_dir, "val")[:n]


def fused_eval(data_dir, luts, rank: int = 0, world: int = 1):
    """Chunked eval + fused normalized mixer of 1,200 targets (the 2-rank == 1-rank check)."""
    from golf_core.eval.chunked import evaluate_chunked
    from golf_core.eval.run import FusedMixer

    val = val_stream(data_dir, 1201)
    # batch_seqs=1: a window's logits do not depend on which other windows share its batch
    ec = EC.model_copy(update={"batch_seqs": 1})
    fused = FusedMixer(MixerConfig(mode="normalized", buckets=1024, warmup_tokens=50), val, 1024, "cpu")
    return evaluate_chunked(tiny_model(4), val, luts, ec, TTTConfig(), "cpu", rank, world,
                            on_scored=fused.on_scored, after_score=fused.absorb)


def two_rank_worker(data_dir: str, out: str) -> None:
    """One rank: the fused eval (rank 0 saves sums + stats), then TTT with uneven shares."""
    import torch.distributed as dist

    from golf_core.data.luts import build_byte_luts
    from golf_core.data.shards import find_tokenizer
    from golf_core.eval.chunked import evaluate_chunked

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        luts = build_byte_luts(find_tokenizer(data_dir), 1024)
        res = fused_eval(data_dir, luts, rank, world)
        if rank == 0:
            np.savez(out, sum_nll=res.sums.nll, sum_bytes=res.sums.bytes, sum_tokens=res.sums.tokens,
                     sum_mix=res.mix_sums.nll, **res.stats)
        # TTT on 2 ranks: 7 seqs per chunk split 3 + 4, batches of 2 (uneven shares)
        model = tiny_model(6)
        ttt = evaluate_chunked(model, val_stream(data_dir, 4 * 7 * 32 + 1), luts,
                               EC.model_copy(update={"chunk_tokens": 7 * 32}),
                               TTTConfig(enabled=True, lr=1e-2, batch_seqs=2), "cpu", rank, world)
        np.save(f"{out}.cq{rank}.npy", model.blocks[-1].attn.c_q.weight.detach().numpy())
        if rank == 0:
            np.save(f"{out}.steps.npy", np.array([ttt.ttt_steps]))
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    if sys.argv[1:2] != ["two-ranks"] or len(sys.argv) != 4:
        sys.exit("usage: neural_kit.py two-ranks DATA_DIR OUT")
    two_rank_worker(sys.argv[2], sys.argv[3])
