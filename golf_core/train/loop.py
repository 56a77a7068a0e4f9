"""The wallclock-capped training loop: `run_training(cfg, data_dir, out_dir, on_progress)`.

Follows upstream train_gpt.py's main(): validate the data, build the model and the optimizer
split, prime the compiled paths with `warmup_steps` real steps and then restore the initial
weights, optimizer state and data stream (so warm-up changes nothing but the compile caches),
train until `iterations` or the wallclock cap (time spent in warm-up and validation is not
counted; every rank stops at the same step), then score the final weights, write the artifact
and score the artifact read back (the roundtrip score is the result's `val_bpb`).
PR #779's extras, each off unless its TrainConfig field is set: EMA, SWA, late QAT, CROWN-Q,
decoupled weight decay, the wallclock reserve.
"""
from __future__ import annotations

from golf_core.errors import UserError
import contextlib
import copy
import math
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from golf_core.accel import autocast_ctx, compile_fn, resolve_autocast, resolve_compile
from golf_core.model import crownq_penalty
from golf_core.train import distributed as D
from golf_core.train.averaging import EMA, SWA, load_averaged
from golf_core.train.optim import build_optimizers
from golf_core.train.schedule import effective_cap_ms, lr_scale, muon_momentum

Progress = Callable[[dict], None]


def format_event(event: dict) -> str:
    """One log line per progress event, in upstream train_gpt.py's format where it has one, so
    the same parser reads both logs (bench/train_throughput.py)."""
    kind = event.get("event")
    if kind == "step":
        return (f"step:{event['step']}/{event['iterations']} train_loss:{event['train_loss']:.4f} "
                f"train_time:{1000 * event['elapsed_s']:.0f}ms step_avg:{event['step_avg_ms']:.2f}ms "
                f"lr_scale:{event['lr_scale']:.4f}")
    if kind == "val":
        return (f"{event.get('phase', 'val')} step:{event['step']} val_loss:{event['val_loss']:.4f} "
                f"val_bpb:{event['val_bpb']:.4f}")
    if kind == "done":
        return (f"done stopped_by:{event['stopped_by']} steps:{event['steps']} "
                f"train_time:{event['train_time_s']:.1f}s")
    return " ".join(f"{k}:{v}" for k, v in event.items())


def print_progress(event: dict) -> None:
    """The default `on_progress`: one line per event (called on rank 0 only)."""
    print(format_event(event), flush=True)


class TrainLog:
    """`out_dir/train.log` on rank 0: what made the run (code version, libraries, device, the
    resolved config), then one line per progress event. It is the per-seed log a record folder
    ships and the artifact MLflow keeps, written whatever `on_progress` the caller chose."""

    def __init__(self, path: Path, cfg, device: torch.device, world_size: int):
        import json
        import platform

        from golf_core import code_version

        self._f = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        self.write(f"golf_core {code_version('train')}  python {platform.python_version()}  torch {torch.__version__}  "
                   f"device {device} ({gpu})  world_size {world_size}")
        self.write("config " + json.dumps(cfg.model_dump(mode="json"), sort_keys=True))

    def write(self, line: str) -> None:
        self._f.write(line + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def check_batch_shape(train, world_size: int) -> int:
    """grad_accum_steps for this world size; input errors before any expensive work."""
    if train.micro_batches % world_size:
        raise UserError(f"train.micro_batches {train.micro_batches} is not divisible by world_size {world_size}")
    per_micro = train.train_batch_tokens // train.micro_batches
    if train.train_batch_tokens % train.micro_batches or per_micro % train.train_seq_len:
        raise UserError(
            f"train.train_batch_tokens {train.train_batch_tokens} must split into micro_batches "
            f"{train.micro_batches} x whole sequences of train_seq_len {train.train_seq_len}")
    return train.micro_batches // world_size


QAT_BITS = {"int5": 5, "int6": 6, "int8": 8}


class Trainer:
    """One rank's training state. `run_training` drives it; tests poke at its phases."""

    def __init__(self, cfg, data_dir: Path, ctx: D.DistContext):
        from golf_core.data import DistributedTokenLoader, split_files
        from golf_core.model import GPT

        self.cfg, self.tc, self.ctx, self.device = cfg, cfg.train, ctx, ctx.device
        self.grad_accum = check_batch_shape(self.tc, ctx.world_size)
        self.train_files = split_files(data_dir, "train")
        self._loader_cls = DistributedTokenLoader
        cuda = self.device.type == "cuda"
        # The GPU's choices, each forceable on CPU so tests run the code path the GPU runs.
        self.use_compile = resolve_compile(self.tc.compile, self.device)
        self.amp_dtype = resolve_autocast(self.tc.autocast, self.device)
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(self.tc.seed)
        if cuda:
            torch.cuda.manual_seed_all(self.tc.seed)
        self.base = GPT(cfg.model).to(self.device)
        if self.amp_dtype is not None:
            self.base.upstream_dtypes()  # bf16 embedding tables, fp32 elsewhere, as upstream under bf16 autocast
        model = compile_fn(self.base, dynamic=False, fullgraph=True) if self.use_compile else self.base
        if ctx.distributed:
            # The GPT has no buffers, so upstream's broadcast_buffers=False (deprecated in newer
            # torch) changes nothing and is left out.
            model = nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None)
        self.model = model
        # Newton-Schulz in bf16 as upstream under bf16 autocast; fp32 otherwise.
        self.optimizers, self.muon = build_optimizers(
            self.base, self.tc, cfg.model.tie_embeddings, ns_dtype=self.amp_dtype or torch.float32,
            compile_ns=self.use_compile)
        self.loader = self._new_loader()
        self.qat_on = False

    def _new_loader(self):
        return self._loader_cls(self.train_files, self.ctx.rank, self.ctx.world_size, self.device)

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def forward_backward(self) -> torch.Tensor:
        """One optimizer step's gradients over grad_accum micro-batches; mean LM loss (local)."""
        total = torch.zeros((), device=self.device)
        ddp = isinstance(self.model, nn.parallel.DistributedDataParallel)
        for micro in range(self.grad_accum):
            # All-reduce the gradients only on the last micro-batch (upstream's require_backward_grad_sync).
            sync = not ddp or micro == self.grad_accum - 1
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                x, y = self.loader.next_batch(self.tc.train_batch_tokens, self.tc.train_seq_len, self.grad_accum)
                with autocast_ctx(self.amp_dtype, self.device):
                    loss = self.model(x, y)
                obj = loss
                # CROWN-Q (#779): a quantization-sensitivity penalty, active while QAT is.
                if self.qat_on and self.tc.crownq_lambda > 0:
                    obj = loss + self.tc.crownq_lambda * crownq_penalty(self.base)
                (obj / self.grad_accum).backward()
            total += loss.detach().float()
        return total / self.grad_accum

    def optimizer_step(self, scale: float, step: int) -> None:
        mom = muon_momentum(step, start=self.tc.muon_momentum_warmup_start, end=self.tc.muon_momentum,
                            warmup_steps=self.tc.muon_momentum_warmup_steps)
        for group in self.muon.param_groups:
            group["momentum"] = mom
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * scale
        if self.tc.grad_clip_norm > 0:
            nn.utils.clip_grad_norm_(self.base.parameters(), self.tc.grad_clip_norm)
        for opt in self.optimizers:
            opt.step()
        self.zero_grad()

    def warmup(self) -> None:
        """Run warmup_steps real steps to compile, then restore weights, optimizers and data."""
        if self.tc.warmup_steps <= 0:
            return
        model_state = {k: t.detach().cpu().clone() for k, t in self.base.state_dict().items()}
        opt_states = [copy.deepcopy(opt.state_dict()) for opt in self.optimizers]
        self.model.train()
        for step in range(self.tc.warmup_steps):
            self.zero_grad()
            self.forward_backward()
            self.optimizer_step(1.0, step)
        self.base.load_state_dict(model_state, strict=True)
        for opt, state in zip(self.optimizers, opt_states, strict=True):
            opt.load_state_dict(state)
        self.zero_grad()
        self.loader = self._new_loader()

    def set_qat(self, on: bool) -> None:
        # Fake-quantize at the export's bit width (#779: int5, clip range 15; int6 on the last blocks).
        q = self.cfg.quant
        self.base.set_qat(on, bits=QAT_BITS[q.scheme], int6_last_n=q.int6_last_n)
        self.qat_on = on


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_memory_allocated"
    import resource

    # Linux reports ru_maxrss in KiB: the process's resident-set peak, model and data included.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process_rss_peak"


def _info(info, key: str):
    return info[key] if isinstance(info, dict) else getattr(info, key)


def train_loop(tr: Trainer, emit: Progress, evaluate: Callable[[int], dict] | None) -> dict:
    """The timed loop. Returns the training part of the result (no scores)."""
    tc, ctx, device = tr.tc, tr.ctx, tr.device
    cap_ms = effective_cap_ms(tc.max_wallclock_seconds, tc.wallclock_reserve_seconds)
    ema = EMA(tr.base, tc.ema_decay) if tc.ema_decay > 0 else None
    swa = SWA() if tc.swa_every > 0 and ema is None else None  # #779 never uses SWA next to EMA
    curve: list[list[float]] = []
    out = {"nan": False, "nan_reason": None, "qat_step": None, "stopped_by": "iterations"}
    train_ms, step, last_step_ms = 0.0, 0, 0.0
    tr.model.train()
    _sync(device)
    t0 = time.perf_counter()
    while step < tc.iterations:
        if evaluate is not None and tc.val_loss_every > 0 and step > 0 and step % tc.val_loss_every == 0:
            _sync(device)
            train_ms += 1000.0 * (time.perf_counter() - t0)  # validation is not training time
            evaluate(step)
            tr.model.train()
            _sync(device)
            t0 = time.perf_counter()
        t_step = time.perf_counter()
        elapsed_ms = train_ms + 1000.0 * (t_step - t0)
        scale = lr_scale(step, elapsed_ms, iterations=tc.iterations, warmdown_iters=tc.warmdown_iters,
                         max_wallclock_ms=cap_ms)
        if tc.late_qat_threshold > 0 and scale < tc.late_qat_threshold and not tr.qat_on:
            tr.set_qat(True)  # late QAT (#779): fake-quantize weights for the end of warmdown
            out["qat_step"] = step
        tr.zero_grad()
        loss = tr.forward_backward()
        tr.optimizer_step(scale, step)
        if ema is not None:
            ema.update()
        step += 1
        if swa is not None and scale < tc.swa_lr_threshold and step % tc.swa_every == 0:
            swa.add(tr.base)
        now = time.perf_counter()
        approx_ms = train_ms + 1000.0 * (now - t0)
        last_step_ms = 1000.0 * (now - t_step)
        # One small all-reduce per step gives every rank the global loss (NaN check, curve) and
        # the cap decision (MAX via SUM > 0), so all ranks stop after the same step.
        reached = cap_ms is not None and approx_ms >= cap_ms
        flags = torch.stack([loss, torch.tensor(float(reached), device=device)])
        if ctx.distributed:
            dist.all_reduce(flags, op=dist.ReduceOp.SUM)
        global_loss, n_reached = flags.tolist()
        global_loss /= ctx.world_size
        stop = n_reached > 0
        if not math.isfinite(global_loss):
            out.update(nan=True, stopped_by="nan",
                       nan_reason=f"non-finite train loss {global_loss} at step {step}")
            stop = True
        if stop or step <= 10 or step % tc.train_log_every == 0 or step == tc.iterations:
            curve.append([step, global_loss])
            emit({"event": "step", "step": step, "iterations": tc.iterations, "train_loss": global_loss,
                  "step_ms": last_step_ms,
                  "step_avg_ms": approx_ms / step, "elapsed_s": approx_ms / 1000.0, "lr_scale": scale})
        if stop:
            if not out["nan"]:
                out["stopped_by"] = "wallclock"
            break
    _sync(device)
    train_ms += 1000.0 * (time.perf_counter() - t0)
    final_weights = "raw"
    if not out["nan"]:
        if ema is not None:
            load_averaged(tr.base, ema.state)
            final_weights = "ema"
        elif swa is not None and swa.count > 0:
            load_averaged(tr.base, swa.mean())
            final_weights = "swa"
    out.update(steps=step, train_time_ms=train_ms, train_loss_curve=curve, final_weights=final_weights,
               swa_count=swa.count if swa is not None else 0)
    return out


def run_training(cfg, data_dir, out_dir, on_progress: Progress | None = None, tokenizer=None,
                 code_bytes: int | None = None) -> dict:
    """Train `cfg` on `data_dir`; rank 0 writes `out_dir/result.json` and the artifact.

    Called on every rank (WORLD_SIZE/RANK/MASTER_* from the environment, or an initialized
    group); `tokenizer`: the SentencePiece model when not found from `data_dir`
    (golf_core.data.layout). Every rank returns the result (scores and steps agree across ranks; timings and
    memory are each rank's own, rank 0's are written). `on_progress` is called on rank 0 only.
    `code_bytes`: the size of the script that runs this (an exported train_gpt.py knows its own);
    default: the size golf_core.export would give this config's script.
    """
    from golf_core.data import check_data_dir
    from golf_core.data.shards import SPLITS

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    ctx = D.setup(cfg.train.device)
    try:
        # every shard checked before a model exists; by rank 0 alone, its verdict shared
        D.on_main_rank(ctx, lambda: check_data_dir(data_dir, cfg.model.vocab_size, SPLITS, tokenizer=tokenizer))
        check_batch_shape(cfg.train, ctx.world_size)
        return _run(cfg, data_dir, out_dir, ctx, on_progress or print_progress, tokenizer, code_bytes)
    finally:
        D.teardown(ctx)


def _run(cfg, data_dir: Path, out_dir: Path, ctx: D.DistContext, on_progress: Progress, tokenizer=None,
         code_bytes: int | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    log = None
    if ctx.is_main:
        (out_dir / "result.json").unlink(missing_ok=True)  # a crash must not leave an older run's result
        log = TrainLog(out_dir / "train.log", cfg, ctx.device, ctx.world_size)

    def emit(event: dict) -> None:
        if ctx.is_main:
            log.write(format_event(event))
            on_progress(event)

    try:
        return _train_and_score(cfg, data_dir, out_dir, ctx, emit, tokenizer, code_bytes)
    finally:
        if log is not None:
            log.close()


def _train_and_score(cfg, data_dir: Path, out_dir: Path, ctx: D.DistContext, emit: Progress, tokenizer=None,
                     code_bytes: int | None = None) -> dict:
    from golf_core import code_version
    from golf_core.data import build_byte_luts, find_tokenizer, load_split
    from golf_core.eval.sliding import evaluate_sliding
    from golf_core.quant import load_artifact, write_artifact
    from golf_core.train.result import write_result

    device = ctx.device
    val_tokens = load_split(data_dir, "val", cfg.model.vocab_size)
    luts = build_byte_luts(find_tokenizer(data_dir, tokenizer), cfg.model.vocab_size, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tr = Trainer(cfg, data_dir, ctx)
    tr.warmup()

    def score(model: nn.Module, step: int, phase: str) -> dict:
        r = evaluate_sliding(model, val_tokens, luts, cfg.eval, device, ctx.rank, ctx.world_size,
                             autocast=cfg.train.autocast)
        emit({"event": "val", "phase": phase, "step": step, **r})
        return r

    trained = train_loop(tr, emit, lambda step: score(tr.base, step, "train"))
    steps, train_s = trained["steps"], trained["train_time_ms"] / 1000.0
    peak, peak_kind = _peak_memory(device)
    result = {
        "val_bpb": None, "val_loss": None, "val_bpb_prequant": None, "val_loss_prequant": None,
        "artifact_bytes": None, "model_bytes": None, "code_bytes": None, "over_limit": None,
        "steps": steps, "train_time_s": train_s,
        "step_avg_ms": 1000.0 * train_s / steps if steps else None,
        "tokens_per_s": steps * cfg.train.train_batch_tokens / train_s if steps and train_s > 0 else None,
        "peak_mem_bytes": peak, "peak_mem_kind": peak_kind,
        "seed": cfg.train.seed, "config": cfg.model_dump(mode="json"), "code_version": code_version("train"),
        "stopped_by": trained["stopped_by"], "world_size": ctx.world_size, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "grad_accum_steps": tr.grad_accum, "train_loss_curve": trained["train_loss_curve"],
        "final_train_loss": trained["train_loss_curve"][-1][1] if trained["train_loss_curve"] else None,
        "nan": trained["nan"], "nan_reason": trained["nan_reason"], "final_weights": trained["final_weights"],
        "swa_count": trained["swa_count"], "qat_step": trained["qat_step"],
        "n_params": sum(p.numel() for p in tr.base.parameters()), "torch_version": str(torch.__version__),
        "cuda_version": torch.version.cuda,
    }
    if not trained["nan"]:
        if tr.qat_on:
            tr.set_qat(False)  # the pre-quant score is of the float weights
        pre = score(tr.base, steps, "prequant")
        result.update(val_bpb_prequant=pre["val_bpb"], val_loss_prequant=pre["val_loss"])
        if ctx.is_main:
            write_artifact(tr.base, cfg, out_dir, code_bytes=code_bytes)
        D.barrier(ctx)
        del tr  # free the training model and optimizer state before the roundtrip model
        model, _, info = load_artifact(out_dir, device)
        rt = score(model, steps, "roundtrip")
        result.update(val_bpb=rt["val_bpb"], val_loss=rt["val_loss"], tokens_scored=rt["tokens_scored"],
                      ratio_scored=rt["ratio_scored"], eval_time_s=rt["eval_time_s"],
                      **{k: _info(info, k) for k in ("artifact_bytes", "model_bytes", "code_bytes", "over_limit")})
    if ctx.is_main:
        write_result(out_dir, result)
    emit({"event": "done", **{k: v for k, v in result.items() if k not in ("config", "train_loss_curve")}})
    D.barrier(ctx)
    return result
