"""Compile warm-up runs real steps, then restores weights, optimizer state and the data stream."""
from __future__ import annotations

import torch

from golf_core.presets import load_preset
from golf_core.train import distributed as D
from golf_core.train.loop import Trainer, train_loop

SMALL = ["train.iterations=4", "train.max_wallclock_seconds=0", "train.warmdown_iters=2"]


def _trainer(data_dir, warmup_steps: int) -> Trainer:
    cfg = load_preset("tiny", SMALL + [f"train.warmup_steps={warmup_steps}"])
    return Trainer(cfg, data_dir, D.setup("cpu"))


def test_warmup_restores_initial_weights_and_optimizer_state(synthetic_data_dir):
    tr = _trainer(synthetic_data_dir, warmup_steps=3)
    before = {k: v.clone() for k, v in tr.base.state_dict().items()}
    first_batch = tr.loader.next_batch(tr.tc.train_batch_tokens, tr.tc.train_seq_len, tr.grad_accum)
    tr.loader = tr._new_loader()
    steps = []
    tr.muon.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    tr.warmup()
    assert len(steps) == 3  # warm-up really ran optimizer steps
    for k, v in tr.base.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(len(opt.state) == 0 for opt in tr.optimizers)  # no momentum / Adam moments left
    again = tr.loader.next_batch(tr.tc.train_batch_tokens, tr.tc.train_seq_len, tr.grad_accum)
    assert torch.equal(again[0], first_batch[0])  # the stream starts over


def test_warmup_does_not_change_training(synthetic_data_dir):
    # The steps really ran (weights moved) and yet training after warm-up is step-for-step identical.
    curves = []
    for warm in (0, 3):
        tr = _trainer(synthetic_data_dir, warm)
        init = {k: v.clone() for k, v in tr.base.state_dict().items()}
        tr.warmup()
        out = train_loop(tr, lambda e: None, None)
        moved = any(not torch.equal(v, init[k]) for k, v in tr.base.state_dict().items())
        assert moved and out["steps"] == 4
        curves.append(out["train_loss_curve"])
    assert curves[0] == curves[1]


def test_ema_and_swa_average_the_weights():
    from golf_core.train.averaging import EMA, SWA, load_averaged

    model = torch.nn.Linear(3, 2)
    history = [model.weight.detach().clone()]
    ema, swa = EMA(model, decay=0.9), SWA()
    for i in range(3):
        with torch.no_grad():
            model.weight.add_(1.0 + i)  # in place, as optimizers do
        history.append(model.weight.detach().clone())
        ema.update()
        swa.add(model)
    expected = history[0]
    for w in history[1:]:
        expected = 0.9 * expected + 0.1 * w
    torch.testing.assert_close(ema.state["weight"], expected)
    torch.testing.assert_close(swa.mean()["weight"], torch.stack(history[1:]).mean(0))
    load_averaged(model, ema.state)
    torch.testing.assert_close(model.weight.detach(), expected)
