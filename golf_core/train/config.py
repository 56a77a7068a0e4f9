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
    """The training loop: steps, batch, wallclock cap, optimizers, EMA/SWA/QAT, execution."""

    seed: int = Field(1337, ge=0, le=MAX_SEED, description="Random seed for init and data order")
    iterations: int = Field(20_000, ge=0, le=MAX_STEPS, description="Maximum training steps")
    max_wallclock_seconds: float = Field(TRAIN_CAP_S, ge=0, le=10**8,  # 0 = no cap
                                         description="Training wall-clock cap (seconds); 0 = no cap")
    # #779 stops training this many seconds before the cap (train_reserve_ms = 18000)
    wallclock_reserve_seconds: float = Field(
        0.0, ge=0, le=10**8, description="Stop this many seconds before the cap (PR #779: 18 s)")
    train_batch_tokens: int = Field(524_288, ge=1, le=MAX_BATCH, description="Global batch size per step (tokens)")
    train_seq_len: int = Field(1024, ge=8, le=MAX_SEQ, description="Training sequence length (tokens)")
    # world_size x grad_accum_steps; the global batch is the same for any world size dividing it.
    micro_batches: int = Field(8, ge=1, le=MAX_COUNT,
                               description="Micro-batches per step (world_size x grad_accum_steps)")
    warmup_steps: int = Field(20, ge=0, le=MAX_STEPS,  # compile warm-up; weights restored, not counted
                              description="Compile warm-up steps (weights restored after, not counted)")
    warmdown_iters: int = Field(1200, ge=0, le=MAX_STEPS,
                                description="LR warmdown length (steps' worth of wall clock)")
    # optimizers
    embed_lr: float = Field(0.6, description="Adam learning rate of the untied input embedding")
    head_lr: float = Field(0.008, description="Adam learning rate of the untied output head")
    tied_embed_lr: float = Field(0.05, description="Adam learning rate of the tied embedding")
    matrix_lr: float = Field(0.04, description="Muon learning rate of the block matrices")
    scalar_lr: float = Field(0.04, description="Adam learning rate of scalars and vectors")
    muon_momentum: float = Field(0.95, description="Muon momentum after warm-up")
    muon_backend_steps: int = Field(5, ge=0, le=100, description="Newton-Schulz iterations per Muon step")
    muon_momentum_warmup_start: float = Field(0.85, description="Muon momentum at step 0")
    muon_momentum_warmup_steps: int = Field(500, ge=0, le=MAX_STEPS,
                                            description="Steps over which Muon momentum ramps to muon_momentum")
    muon_wd: float = Field(0.0, description="Muon decoupled weight decay")
    adam_wd: float = Field(0.0, description="Adam decoupled weight decay")
    beta1: float = Field(0.9, description="Adam beta1")
    beta2: float = Field(0.95, description="Adam beta2")
    adam_eps: float = Field(1e-8, description="Adam epsilon")
    grad_clip_norm: float = Field(0.0, description="Global gradient-norm clip; 0 = off")
    # record-stack training options (#779), off in the baseline
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0,  # 0 = off; #779 uses 0.997
                             description="Weight EMA decay per step; 0 = off (PR #779: 0.997)")
    swa_every: int = Field(0, ge=0, le=MAX_STEPS,  # 0 = off; #779 averages every 50 steps in warmdown
                           description="SWA snapshot interval in warmdown (steps); 0 = off (PR #779: 50)")
    swa_lr_threshold: float = Field(0.2, ge=0.0, le=1.0,  # #779: SWA snapshots once lr scale < 0.2
                                    description="SWA snapshots once the LR scale is below this (PR #779: 0.2)")
    late_qat_threshold: float = Field(0.0, ge=0.0, le=1.0,  # STE fake-quant once lr scale < this
                                      description="STE fake-quant training once the LR scale is below this; 0 = off")
    crownq_lambda: float = Field(0.0, ge=0.0,  # CROWN-Q quantization-aware penalty weight
                                 description="CROWN-Q quantization-aware penalty weight; 0 = off")
    # logging / eval cadence
    val_loss_every: int = Field(0, ge=0, le=MAX_STEPS,  # 0 = only at the end
                                description="Validation loss interval (steps); 0 = only at the end")
    train_log_every: int = Field(50, ge=1, le=MAX_STEPS, description="Training log interval (steps)")
    # execution
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device: auto = CUDA if available, else CPU")
    # auto = today's GPU behaviour: compile and bf16 autocast on CUDA, eager fp32 on CPU. `on` /
    # `bf16` force the GPU's path on CPU too (tests run it there: inductor and bf16 work on CPU).
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile: auto = on CUDA only; on/off force it")
    autocast: Literal["auto", "bf16", "off"] = Field(
        "auto", description="bf16 autocast: auto = on CUDA only; bf16/off force it")

    @field_validator("compile", "autocast", mode="before")
    @classmethod
    def _yaml_bools(cls, v, info):
        # YAML reads `on`/`off` as booleans, and older specs wrote compile: true/false/null
        if isinstance(v, bool) or v is None:
            return {None: "auto", False: "off", True: "on" if info.field_name == "compile" else "bf16"}[v]
        return v
