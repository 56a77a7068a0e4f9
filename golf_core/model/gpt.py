"""GPT: the upstream baseline and the PR #779 record stack as options of one ModelConfig.

Baseline (upstream train_gpt.py): token embedding -> RMSNorm -> U-Net of blocks (the first
num_layers//2 store skips, the rest add skip_weights * skip popped in reverse) -> RMSNorm ->
tied head -> logit softcap 30*tanh(x/30). Each block mixes the stream with x0 (resid_mix), then
adds attn_scale * attention and mlp_scale * MLP. 17,059,912 params at the default size.

PR #779 options (ModelConfig fields): LeakyReLU(0.5)^2 MLP with float mlp_mult, XSA on the last
`xsa_last_n` layers, SmearGate, BigramHash embedding, partial RoPE + NTK base rescale, shared value
embeddings on `ve_layers`, ln_scale (normed block inputs * 1/sqrt(layer+1)), the "dtg" gate
(`gated_attention`), orthogonal init. Names the #779 README uses map as: "Value Residual" = the
value embeddings (VE), "Gated Attention" = dtg (off in the record run: its model_params 33,317,980
has no dtg parameters). Module construction order follows upstream/#779 so the same seed gives
the same initial weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from golf_core.model.attention import CausalSelfAttention
from golf_core.model.config import ModelConfig
from golf_core.model.embeddings import BigramHashEmbedding, SmearGate, ValueEmbedding
from golf_core.model.layers import MLP, CastedLinear, rms_norm, rope_tables

# Small "control" parameters: kept fp32 in training and (in upstream's int8 export) in the
# artifact. Upstream's list plus #779's additions.
CONTROL_TENSOR_PATTERNS = (
    "attn_scale", "attn_scales", "mlp_scale", "mlp_scales", "resid_mix", "resid_mixes", "q_gain",
    "skip_weight", "skip_weights", "smear", "dtg_gate", "ve_layer_scales", "ve_shared.scale",
)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        dim = cfg.model_dim
        # attn_norm / mlp_norm are parameter-free RMSNorms (upstream), applied functionally.
        self.attn = CausalSelfAttention(dim, cfg.num_heads, cfg.num_kv_heads, cfg.qk_gain_init,
                                        use_xsa=layer_idx >= cfg.num_layers - cfg.xsa_last_n)
        self.mlp = MLP(dim, cfg.mlp_mult, cfg.activation, cfg.leaky_slope)
        self.attn_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.mlp_scale = nn.Parameter(torch.ones(dim, dtype=torch.float32))
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(dim), torch.zeros(dim))).float())
        # ln_scale: damp deeper layers' normed inputs (PR #779)
        self.ln_scale_factor = 1.0 / math.sqrt(layer_idx + 1) if cfg.ln_scale else 1.0
        self.dtg_gate: nn.Linear | None = None
        if cfg.gated_attention:
            # #779 "dtg": a per-token sigmoid gate on the whole block update, open (sigmoid(2)) at init
            self.dtg_gate = nn.Linear(dim, 1, bias=True)
            nn.init.zeros_(self.dtg_gate.weight)
            nn.init.constant_(self.dtg_gate.bias, 2.0)

    def forward(self, x: Tensor, x0: Tensor, cos: Tensor, sin: Tensor, v_embed: Tensor | None = None) -> Tensor:
        mix = self.resid_mix.to(x.dtype)
        x_in = mix[0][None, None, :] * x + mix[1][None, None, :] * x0
        s = self.ln_scale_factor
        x_out = x_in + self.attn_scale.to(x.dtype)[None, None, :] * self.attn(rms_norm(x_in) * s, cos, sin, v_embed)
        x_out = x_out + self.mlp_scale.to(x.dtype)[None, None, :] * self.mlp(rms_norm(x_out) * s)
        if self.dtg_gate is not None:
            gate = torch.sigmoid(self.dtg_gate(x_in.detach()))  # (B, T, 1); #779 detaches the gate input
            x_out = x_in + gate * (x_out - x_in)
        return x_out


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.model_dim
        self.tok_emb = nn.Embedding(cfg.vocab_size, dim)
        self.bigram = BigramHashEmbedding(cfg.bigram_vocab_size, cfg.bigram_dim, dim) if cfg.bigram_vocab_size else None
        self.smear = SmearGate(dim) if cfg.smear_gate else None
        self.num_encoder_layers = cfg.num_layers // 2
        self.num_decoder_layers = cfg.num_layers - self.num_encoder_layers
        n_skip = min(self.num_encoder_layers, self.num_decoder_layers)
        self.skip_weights = nn.Parameter(torch.ones(n_skip, dim, dtype=torch.float32))
        self.blocks = nn.ModuleList([Block(cfg, i) for i in range(cfg.num_layers)])
        self.ve_layers = list(cfg.ve_layers) if cfg.value_embed else []
        self.ve_shared: ValueEmbedding | None = None
        self.ve_layer_scales = nn.ParameterList()
        if self.ve_layers:
            kv_dim = cfg.num_kv_heads * (dim // cfg.num_heads)
            self.ve_shared = ValueEmbedding(cfg.vocab_size, cfg.ve_dim, kv_dim)
            self.ve_layer_scales = nn.ParameterList(
                [nn.Parameter(torch.ones(1, dtype=torch.float32)) for _ in self.ve_layers])
        self.lm_head = None if cfg.tie_embeddings else CastedLinear(dim, cfg.vocab_size, zero_init=True)
        self._init_weights()

    def _init_weights(self) -> None:
        if self.cfg.tie_embeddings:
            nn.init.normal_(self.tok_emb.weight, mean=0.0, std=self.cfg.tied_embed_init_std)
        two_l = 2 * len(self.blocks)
        for name, m in self.named_modules():
            if not isinstance(m, nn.Linear):
                continue
            if getattr(m, "zero_init", False):
                nn.init.zeros_(m.weight)
            elif self.cfg.orthogonal_init and min(m.weight.shape) >= 64:
                # PR #779: orthogonal init of big matrices; output projections scaled by 1/sqrt(2L).
                # The rule is by name, as in #779, so bigram.proj / ve_shared.proj (zeroed in their
                # constructors) are re-initialized here too.
                nn.init.orthogonal_(m.weight, gain=1.0)
                if name.endswith(".proj") or ".proj." in name:
                    with torch.no_grad():
                        m.weight.mul_(1.0 / math.sqrt(two_l))

    # ------------------------------------------------------------------ forward
    def _hidden(self, input_ids: Tensor) -> Tensor:
        """Final normed hidden states (B, T, C)."""
        cfg = self.cfg
        T = input_ids.size(1)
        x = self.tok_emb(input_ids)
        if self.bigram is not None:
            x = x + self.bigram(input_ids)
        x = rms_norm(x)
        if self.smear is not None:
            x = self.smear(x)
        x0 = x
        head_dim = cfg.model_dim // cfg.num_heads
        cos, sin = rope_tables(T, cfg.rope_dims or head_dim, cfg.rope_base, cfg.rope_train_seq_len, x.device)
        ve_base = self.ve_shared(input_ids) if self.ve_shared is not None else None  # (B, T, kv_dim)
        skips: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            if i >= self.num_encoder_layers:
                j = i - self.num_encoder_layers
                if skips:
                    x = x + self.skip_weights[j].to(x.dtype)[None, None, :] * skips.pop()
            ve = None
            if ve_base is not None and i in self.ve_layers:
                ve = ve_base * self.ve_layer_scales[self.ve_layers.index(i)].to(ve_base.dtype)
            x = block(x, x0, cos, sin, ve)
            if i < self.num_encoder_layers:
                skips.append(x)
        return rms_norm(x)

    def _logits(self, h: Tensor) -> Tensor:
        if self.lm_head is not None:
            proj = self.lm_head(h)
        else:
            proj = F.linear(h, self.tok_emb.weight.to(h.dtype))
        c = self.cfg.logit_softcap
        return (c * torch.tanh(proj / c)).float()

    def forward_logits(self, input_ids: Tensor) -> Tensor:
        """Softcapped logits (B, T, V) as float32 (computed in the compute dtype, then cast)."""
        return self._logits(self._hidden(input_ids))

    def forward(self, input_ids: Tensor, target_ids: Tensor) -> Tensor:
        """Mean next-token cross entropy (nats) over all B*T positions."""
        logits = self._logits(self._hidden(input_ids))
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_ids.reshape(-1), reduction="mean")

    # ------------------------------------------------------------------ QAT / CROWN-Q
    def set_qat(self, enabled: bool, bits: int = 5, int6_last_n: int = 0) -> None:
        """Turn the STE fake-quant on every CastedLinear on or off (late QAT, PR #779).

        bits: the export's low-bit width (5 -> clip range 15, 6 -> 31); blocks among the last
        `int6_last_n` use 6 bits, as #779 sets `_clip_range = 31` there. Takes effect in train mode.
        """
        if enabled and not 2 <= bits <= 8:
            raise ValueError(f"set_qat: bits must be 2..8 (got {bits})")
        base = 2 ** (bits - 1) - 1
        for m in self.modules():
            if isinstance(m, CastedLinear):
                m.qat_clip_range = base if enabled else 0
        if enabled and int6_last_n:
            for block in self.blocks[max(0, len(self.blocks) - int6_last_n):]:
                for m in block.modules():
                    if isinstance(m, CastedLinear):
                        m.qat_clip_range = max(base, 31)

    @property
    def qat_enabled(self) -> bool:
        return any(isinstance(m, CastedLinear) and m.qat_clip_range for m in self.modules())

    def upstream_dtypes(self) -> "GPT":
        """Cast embedding tables to bf16, everything else fp32: the dtypes upstream/#779 train
        with on CUDA (`.bfloat16()`, then CastedLinear and control/low-dim params back to fp32).
        Use only with bf16 autocast; the CPU path stays fp32."""
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                m.weight.data = m.weight.data.bfloat16()
        return self


def crownq_penalty(model: nn.Module) -> Tensor:
    """CROWN-Q penalty (PR #779 main loop), to be added as `crownq_lambda * crownq_penalty(model)`.

    For every CastedLinear with QAT on: mean(w^2 * delta_row^2) with delta = rowmax|w| / clip_range
    (detached), summed, / 12 (the variance of uniform rounding noise is delta^2/12). It pushes
    weight mass away from rows with a coarse quantization step. #779 applies it only while late
    QAT is on, so this is 0 when QAT is off.
    """
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    total: Tensor | None = None
    for m in model.modules():
        if isinstance(m, CastedLinear) and m.qat_clip_range and m.weight.ndim == 2:
            w = m.weight.float()
            delta = w.detach().abs().amax(dim=1) / float(m.qat_clip_range)
            term = (w.pow(2) * delta.pow(2).unsqueeze(1)).mean()
            total = term if total is None else total + term
    if total is None:
        p = next(model.parameters())
        return torch.zeros((), device=p.device)
    return total / 12.0


def count_params(model: nn.Module) -> int:
    """Number of parameters, tied weights counted once (what upstream logs as model_params)."""
    return sum(p.numel() for p in model.parameters())


def split_params(model: "GPT") -> dict[str, list[nn.Parameter]]:
    """Optimizer groups as upstream/#779 build them: `embed` (token-lr Adam: tok_emb, bigram and
    value-embedding tables), `matrix` (Muon: 2-D block weights + bigram/VE projections), `scalar`
    (Adam: vectors, control tensors, skip weights, gates, scales), `head` (untied lm_head)."""
    groups: dict[str, list[nn.Parameter]] = {"embed": [], "matrix": [], "scalar": [], "head": []}
    embedding_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    for name, p in model.named_parameters():
        if name.startswith("lm_head"):
            groups["head"].append(p)
        elif id(p) in embedding_weights:
            groups["embed"].append(p)
        elif p.ndim == 2 and not any(k in name for k in CONTROL_TENSOR_PATTERNS):
            groups["matrix"].append(p)
        else:
            groups["scalar"].append(p)
    return groups
