"""TrainConfig: the training loop, optimizers and wallclock cap.

Defaults are upstream train_gpt.py's (Muon lr 0.04, momentum 0.85->0.95 over 500 steps,
524,288 tokens/step at seq 1024, warmdown over the last 1200 steps' worth of wall clock).
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from golf_core.rules import TRAIN_CAP_S
from golf_core.config import MAX_BATCH, MAX_COUNT, MAX_SEED, MAX_SEQ, MAX_STEPS, Frozen


class TrainConfig(Frozen):
    seed: int = Field(1337, ge=0, le=MAX_SEED)
    iterations: int = Field(20_000, ge=0, le=MAX_STEPS)
    max_wallclock_seconds: float = Field(TRAIN_CAP_S, ge=0, le=10**8)  # 0 = no cap
    # #779 stops training this many seconds before the cap (train_reserve_ms = 18000)
    wallclock_reserve_seconds: float = Field(0.0, ge=0, le=10**8)
    train_batch_tokens: int = Field(524_288, ge=1, le=MAX_BATCH)
    train_seq_len: int = Field(1024, ge=8, le=MAX_SEQ)
    # world_size x grad_accum_steps; the global batch is the same for any world size dividing it.
    micro_batches: int = Field(8, ge=1, le=MAX_COUNT)
    warmup_steps: int = Field(20, ge=0, le=MAX_STEPS)  # compile warm-up; weights restored, not counted
    warmdown_iters: int = Field(1200, ge=0, le=MAX_STEPS)
    # optimizers
    embed_lr: float = 0.6
    head_lr: float = 0.008
    tied_embed_lr: float = 0.05
    matrix_lr: float = 0.04
    scalar_lr: float = 0.04
    muon_momentum: float = 0.95
    muon_backend_steps: int = Field(5, ge=0, le=100)
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = Field(500, ge=0, le=MAX_STEPS)
    muon_wd: float = 0.0
    adam_wd: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.0
    # record-stack training options (#779), off in the baseline
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # 0 = off; #779 uses 0.997
    swa_every: int = Field(0, ge=0, le=MAX_STEPS)  # 0 = off; #779 averages every 50 steps in warmdown
    swa_lr_threshold: float = Field(0.2, ge=0.0, le=1.0)  # #779: SWA snapshots once lr scale < 0.2
    late_qat_threshold: float = Field(0.0, ge=0.0, le=1.0)  # STE fake-quant once lr scale < this
    crownq_lambda: float = Field(0.0, ge=0.0)  # CROWN-Q quantization-aware penalty weight
    # logging / eval cadence
    val_loss_every: int = Field(0, ge=0, le=MAX_STEPS)  # 0 = only at the end
    train_log_every: int = Field(50, ge=1, le=MAX_STEPS)
    # execution
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # auto = today's GPU behaviour: compile and bf16 autocast on CUDA, eager fp32 on CPU. `on` /
    # `bf16` force the GPU's path on CPU too (tests run it there: inductor and bf16 work on CPU).
    compile: Literal["auto", "on", "off"] = "auto"
    autocast: Literal["auto", "bf16", "off"] = "auto"

    @field_validator("compile", "autocast", mode="before")
    @classmethod
    def _yaml_bools(cls, v, info):
        # YAML reads `on`/`off` as booleans, and older specs wrote compile: true/false/null
        if isinstance(v, bool) or v is None:
            return {None: "auto", False: "off", True: "on" if info.field_name == "compile" else "bf16"}[v]
        return v
