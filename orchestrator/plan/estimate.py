"""Rough cost estimates for a Plan: seconds per job and GPU-hours (what `golf plan` prints).

A FLOP model calibrated on measured anchors, good to a factor of ~1.5, not a promise:
- training step = 6 · N · tokens_per_step / (F_train · ranks); F_train = 1.75e14 FLOP/s per
  H100, between the upstream baseline (43.5 ms/step at 524,288 tokens, 17.06M params, 8×H100 →
  1.54e14) and PR #779's log (98.7 ms/step at 786,432 tokens, 33.3M params → 1.99e14).
  Steps = `train.iterations`, cut at `train.max_wallclock_seconds` when that is set.
- evaluation forward = 2 · N · tokens · (seq_len / stride) / (F_eval · ranks); F_eval = 8.6e13,
  from #779's sliding-window eval (62,021,632 tokens, seq 2048, stride 64, 95.9 s on 8×H100).
  TTT multiplies it by 3.87 (#779: 371 s with TTT + mixer vs 95.9 s without).
- n-gram pass: once per (eval job, table key: mode, orders, buckets, ...) as the factorized
  evaluation does it; normalized mode gathers all V candidates at 7.5M position-orders/s on an
  H100 (CONTEXT.md anchor), hashed_target is ~V times cheaper; every other mix point is ~0.
- CPU jobs (train.device cpu): the same model with F = 1e10 FLOP/s per process plus 20 ms of
  per-step overhead (a tiny model is overhead-bound); they cost 0 GPU-hours.
- Every job pays a fixed start-up (GPU: 60 s for compile/warm-up; CPU: 5 s).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from golf_core.eval.config import EvalConfig, MixerConfig, TTTConfig
from golf_core.model.config import ModelConfig
from golf_core.presets import RunConfig
from orchestrator.plan.build import Plan, data_dir
from orchestrator import kinds
from workers.contract import OptunaMixJob, TrainJob

F_TRAIN_GPU = 1.75e14
F_EVAL_GPU = 8.6e13
F_CPU = 1e10
CPU_STEP_OVERHEAD_S = 0.02
TTT_FACTOR = 3.87
NORMALIZED_RATE_GPU = 7.5e6  # position-orders per second (all V candidates gathered)
STARTUP_GPU_S, STARTUP_CPU_S = 60.0, 5.0
HEADER_BYTES = 1024  # shard header: 256 int32


def approx_params(m: ModelConfig) -> int:
    """Parameter count from the config (matrices only; norms/gains are negligible)."""
    head = m.model_dim // m.num_heads
    kv = m.num_kv_heads * head
    attn = 2 * m.model_dim * m.model_dim + 2 * m.model_dim * kv
    mlp = 2 * m.model_dim * int(m.mlp_mult * m.model_dim)
    n = m.num_layers * (attn + mlp) + m.vocab_size * m.model_dim * (1 if m.tie_embeddings else 2)
    if m.bigram_vocab_size:
        n += m.bigram_vocab_size * m.bigram_dim + m.bigram_dim * m.model_dim
    if m.value_embed:
        n += m.vocab_size * m.ve_dim + m.ve_dim * kv
    return n


# The first 50,000 FineWeb validation documents under the sp1024 tokenizer (shared/CONTEXT.md).
FINEWEB_VAL_TOKENS = 62_021_632


def val_tokens(plan: Plan, workspace: str | Path = ".") -> int:
    """Validation tokens: the val shards' counts if present, else what will be there: FineWeb's
    sp1024 validation split (shared/CONTEXT.md) or the synthetic size."""
    root = data_dir(plan, workspace)
    shards = sorted(root.glob("fineweb_val_*.bin")) if root.is_dir() else []
    if shards:
        return sum(max(0, (f.stat().st_size - HEADER_BYTES) // 2) for f in shards)
    return FINEWEB_VAL_TOKENS if plan.data.source == "fineweb" else plan.data.synthetic_val_tokens


def _on_gpu(run: RunConfig) -> bool:
    return run.train.device != "cpu"


def eval_seconds(n_params: int, ev: EvalConfig, ttt: TTTConfig, tokens: int, ranks: int, gpu: bool) -> float:
    scored = min(tokens, ev.max_tokens) if ev.max_tokens else tokens
    flops = 2.0 * n_params * scored * (ev.seq_len / ev.stride)
    sec = flops / ((F_EVAL_GPU if gpu else F_CPU) * ranks)
    return sec * (TTT_FACTOR if ttt.enabled else 1.0)


def train_seconds(run: RunConfig, ranks: int, tokens: int) -> float:
    gpu, n = _on_gpu(run), approx_params(run.model)
    t = run.train
    step = 6.0 * n * t.train_batch_tokens / ((F_TRAIN_GPU if gpu else F_CPU) * ranks)
    if not gpu:
        step += CPU_STEP_OVERHEAD_S
    loop = t.iterations * step
    if t.max_wallclock_seconds > 0:
        loop = min(loop, t.max_wallclock_seconds)
    roundtrip = eval_seconds(n, run.eval, TTTConfig(), tokens, ranks, gpu)  # the artifact's score
    return loop + roundtrip + (STARTUP_GPU_S if gpu else STARTUP_CPU_S)


# tilt hint pass (golf_core.eval.tilt.hint_pass), tokens/s on one CPU core: bench/tilt.py,
# order 16 over 47.85M synthetic tokens on a loaded 2-core CPU (bench/RESULTS.md)
TILT_HINT_RATE = 0.5e6


def mix_seconds(mixer: MixerConfig, tokens: int, vocab: int, gpu: bool, first_of_key: bool) -> float:
    if mixer.mode in ("none", "tilt") or not first_of_key:  # tilt: its hints came with the eval
        return 0.01
    pos_orders = tokens * len(mixer.orders)
    rate = NORMALIZED_RATE_GPU * (1 if gpu else 0.05)
    if mixer.mode == "hashed_target":
        rate *= vocab  # one gather per position-order instead of V
    return pos_orders / rate


_TABLE_FIELDS = ("orders", "buckets", "min_count", "primes", "warmup_tokens")


def _optuna_seconds(job: OptunaMixJob, tokens: int, vocab: int, gpu: bool) -> float:
    base, opt = job.mixer_base, job.optuna
    table = {k: base[k] for k in _TABLE_FIELDS if k in base}
    mixer = MixerConfig(mode=base["mode"], **table) if "orders" in table else MixerConfig(mode=base["mode"])
    passes = opt.n if any(k in opt.space for k in _TABLE_FIELDS) else 1
    return passes * mix_seconds(mixer, tokens, vocab, gpu, True) + 0.01 * opt.n


@dataclass(frozen=True)
class Estimate:
    seconds: dict[str, float]  # job identity -> estimated wall seconds
    gpu_hours: dict[str, float]  # job identity -> GPU-hours (seconds × GPUs / 3600)

    def total_gpu_hours(self, identities=None) -> float:
        ids = self.gpu_hours.keys() if identities is None else identities
        return sum(self.gpu_hours[i] for i in ids)


@dataclass
class EstimateContext:
    """What pricing one job needs from the jobs before it (filled in plan order)."""
    tokens: int
    runs: dict[str, RunConfig] = field(default_factory=dict)  # train/eval identity -> its RunConfig
    seen_keys: set = field(default_factory=set)  # (eval identity, table key) already priced


def estimate_plan(plan: Plan, workspace: str | Path = ".", tokens: int | None = None) -> Estimate:
    tokens = tokens if tokens is not None else val_tokens(plan, workspace)
    # each kind prices its jobs (orchestrator.kinds: JobKind.estimate_s), in plan order: an eval
    # reads its train's RunConfig, a mix its eval's, the first mix of a table key pays its n-gram pass
    ctx = EstimateContext(tokens)
    seconds = {job.identity: kinds.of(job).estimate_s(job, ctx) for job in plan.jobs}
    gpu_hours = {j.identity: seconds[j.identity] * j.gpus / 3600.0 for j in plan.jobs}
    return Estimate(seconds, gpu_hours)


# ---------------------------------------------------------------- GPU memory per rank
# Peak memory of one training rank, counted from the model the Trainer builds (on the meta
# device: no memory, exact shapes and dtypes) and the optimizer state as golf_core's optimizers
# hold it. Activations are a per-token model: saved for backward per layer and token, about
# ACT_ELEMS_D · model_dim + ACT_ELEMS_KV · kv_dim + ACT_ELEMS_H · mlp_hidden elements (block input
# and norms, q/k/v, attention output and projection input, the MLP input, fc output and
# activation) at the autocast width, plus the fp32 logits, their softcap and softmax gradient
# (LOGIT_COPIES · V floats per token). For the upstream baseline on one GPU at 524,288 tokens/step
# (8 micro-batches of 65,536 tokens) that counts 9.4 GiB, + the 1 GiB reserve = 10.4 GiB; measured
# peak 10.3 GiB (CONTEXT.md anchor). Not yet checked against a #779 run on a GPU.
ACT_ELEMS_D, ACT_ELEMS_KV, ACT_ELEMS_H = 8, 2, 3
LOGIT_COPIES = 3
RUNTIME_RESERVE_BYTES = 1 << 30  # CUDA context, NCCL buffers, allocator slack: not in the count above
DEFAULT_GPU_MEM_GIB = 80.0  # an H100 SXM
GIB = 1 << 30


@dataclass(frozen=True)
class TrainMemory:
    """Bytes per rank at the training peak (after backward, before the optimizer frees grads)."""

    n_params: int
    weights: int
    grads: int
    optimizer: int  # Muon momentum (this rank's round-robin share) + its flat update, Adam moments
    averaging: int  # EMA's fp32 copy (or SWA's running sum)
    ddp: int  # DDP's gradient buckets (world size > 1)
    activations: int
    reserve: int = RUNTIME_RESERVE_BYTES
    dtype: str = "bf16"

    @property
    def total(self) -> int:
        return (self.weights + self.grads + self.optimizer + self.averaging + self.ddp + self.activations
                + self.reserve)

    def line(self) -> str:
        def g(b: int) -> str:
            return f"{b / GIB:.2f}"

        return (f"{self.total / GIB:.1f} GiB = weights {g(self.weights)} + grads {g(self.grads)} + "
                f"optimizer {g(self.optimizer)} + averaging {g(self.averaging)} + ddp {g(self.ddp)} + "
                f"activations {g(self.activations)} ({self.dtype}) + reserve {g(self.reserve)}")


def _meta_model(run: RunConfig, bf16: bool):
    import torch

    from golf_core.model import GPT

    with torch.device("meta"):
        model = GPT(run.model)
    if bf16:
        model.upstream_dtypes()  # what the Trainer does under bf16 autocast
    return model


def train_memory(run: RunConfig, ranks: int) -> TrainMemory:
    """Estimated peak GPU memory of one rank of a training job (see the constants above)."""
    from golf_core.model import split_params

    bf16 = run.train.autocast != "off"  # auto = bf16 on CUDA; this estimate is for the GPU
    model = _meta_model(run, bf16)
    nbytes = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    params = list(model.parameters())
    weights = nbytes(params)
    groups = split_params(model)
    adam = 2 * nbytes(groups["embed"] + groups["head"] + groups["scalar"])  # exp_avg, exp_avg_sq
    # Muon: rank r keeps momentum only for matrices i with i % ranks == r (rank 0 holds the most),
    # and every rank allocates the flat update of all matrices in the Newton-Schulz dtype.
    muon = groups["matrix"]
    momentum = nbytes(p for i, p in enumerate(muon) if i % ranks == 0)
    flat = sum(p.numel() for p in muon) * (2 if bf16 else 4)
    averaging = 4 * sum(p.numel() for p in params) if (run.train.ema_decay > 0 or run.train.swa_every > 0) else 0
    m = run.model
    kv = m.num_kv_heads * (m.model_dim // m.num_heads)
    hidden = int(m.mlp_mult * m.model_dim)
    per_token = (m.num_layers * (ACT_ELEMS_D * m.model_dim + ACT_ELEMS_KV * kv + ACT_ELEMS_H * hidden)
                 * (2 if bf16 else 4) + LOGIT_COPIES * m.vocab_size * 4)
    micro_tokens = run.train.train_batch_tokens // run.train.micro_batches
    return TrainMemory(
        n_params=sum(p.numel() for p in params), weights=weights, grads=weights, optimizer=adam + momentum + flat,
        averaging=averaging, ddp=weights if ranks > 1 else 0, activations=per_token * micro_tokens,
        dtype="bf16" if bf16 else "fp32")


def plan_memory(plan: Plan) -> list[tuple[str, int, TrainMemory]]:
    """(first job name, ranks, memory) per distinct GPU training config of the plan (seeds share one)."""
    seen: dict[tuple, tuple[str, int, TrainMemory]] = {}
    for job in plan.jobs:
        if not isinstance(job, TrainJob):  # golf_core's own training (a script sizes itself)
            continue
        run = job.run
        if not _on_gpu(run):
            continue
        key = (run.model, run.train.model_copy(update={"seed": 0}), job.ranks)
        if key not in seen:
            seen[key] = (job.name, job.ranks, train_memory(run, job.ranks))
    return list(seen.values())
