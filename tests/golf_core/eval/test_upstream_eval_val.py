"""golf's val_bpb == upstream's eval_val (imported from the reference baseline train_gpt.py, run
on CPU) on the same weights and tokens: stride == seq_len, tail dropped, within 1e-6."""
from __future__ import annotations

import importlib.util
import os
import types
import warnings
from pathlib import Path

import pytest
import torch

from golf_core.data.luts import build_byte_luts
from golf_core.data.shards import load_split
from golf_core.eval.config import EvalConfig
from golf_core.eval.sliding import evaluate_sliding
from golf_core.model import GPT, ModelConfig


def _reference_baseline():
    ref = os.environ.get("GOLF_REFERENCE_DIR")
    if not ref:
        pytest.skip("GOLF_REFERENCE_DIR is not set (the folder holding parameter-golf/)")
    path = Path(ref) / "parameter-golf" / "train_gpt.py"
    if not path.is_file():
        pytest.skip("GOLF_REFERENCE_DIR has no parameter-golf/train_gpt.py")
    spec = importlib.util.spec_from_file_location("golf_ref_baseline", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("seq_len, n_targets", [(64, 3000), (128, 4096 + 77)])
def test_val_bpb_equals_upstream_eval_val(seq_len, n_targets, synthetic_data_dir, tokenizer_path):
    import sentencepiece as spm

    up = _reference_baseline()
    kw = dict(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, mlp_mult=2)
    torch.manual_seed(0)
    ref = up.GPT(vocab_size=1024, tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0,
                 rope_base=10000.0, qk_gain_init=1.5, **kw)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-looking weights, not the near-uniform init
        for p in ref.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    ours = GPT(ModelConfig(**kw))
    ours.load_state_dict(ref.state_dict())

    val = load_split(synthetic_data_dir, "val")[: n_targets + 1]
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_path))
    luts = up.build_sentencepiece_luts(sp, 1024, torch.device("cpu"))
    args = types.SimpleNamespace(val_batch_size=4 * seq_len, train_seq_len=seq_len)  # several batches
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eval_val's CUDA autocast is disabled on CPU, with a warning
        up_loss, up_bpb = up.eval_val(args, ref, 0, 1, torch.device("cpu"), 1, val, *luts)

    cfg = EvalConfig(seq_len=seq_len, stride=seq_len, tail="drop", batch_seqs=4)
    r = evaluate_sliding(ours, val, build_byte_luts(tokenizer_path, 1024, "cpu"), cfg, "cpu")
    assert r["tokens_scored"] == (n_targets // seq_len) * seq_len
    assert abs(r["val_bpb"] - up_bpb) < 1e-6, (r["val_bpb"], up_bpb)
    assert abs(r["val_loss"] - up_loss) < 1e-6
    # scoring the tail is a different number: the knob matters
    scored = evaluate_sliding(ours, val, build_byte_luts(tokenizer_path, 1024, "cpu"),
                              cfg.model_copy(update={"tail": "score"}), "cpu")
    assert scored["tokens_scored"] == n_targets and abs(scored["val_bpb"] - up_bpb) > 1e-6
