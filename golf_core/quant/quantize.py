"""State dict <-> quantized object: upstream per-row int8, #779 int5/int6 with clip search, pruning.

Which tensor gets what (upstream `quantize_state_dict_int8`, #779 `mixed_quantize_int6`):
- non-float tensors: stored as they are;
- float tensors with <= keep_float_max_numel elements: kept as floats, fp16 (control tensors
  fp32 when control_fp32, as upstream; #779 stores them fp16 too);
- large control tensors: fp32;
- scheme int5/int6: block attention/MLP matrices (#779's "attn"/"mlp" classes) get the low-bit
  per-row quantizer; blocks among the last int6_last_n get int6 when the scheme is int5.
  (#779 defines the per-layer int6 rule but its exporter calls the quantizer with the int5 range
  for every layer; with its INT6_LAST_N=0 the two agree.) Everything else (embeddings, bigram and
  value tables) gets upstream int8, as in #779;
- scheme int8: every large float tensor gets upstream int8.

The object holds only tensors, str, int, float, lists and dicts, so `torch.load(weights_only=True)`
reads it.
"""
from __future__ import annotations

import re

import torch
from torch import Tensor

from golf_core.model.gpt import CONTROL_TENSOR_PATTERNS
from golf_core.quant.config import QuantConfig
from golf_core.quant.pack import pack_bits, unpack_bits

FORMAT = "golf_quant_v1"
INT8_CLIP_Q = 0.9999984  # upstream INT8_CLIP_PERCENTILE 99.99984 / 100
_TORCH_QUANTILE_MAX = 1 << 24  # torch.quantile refuses larger inputs


def quantile(x: Tensor, q: float, dim: int | None = None) -> Tensor:
    """torch.quantile (linear interpolation), with a sort-based path for inputs it refuses."""
    if x.numel() <= _TORCH_QUANTILE_MAX:
        return torch.quantile(x, q) if dim is None else torch.quantile(x, q, dim=dim)
    xs = (x.reshape(-1) if dim is None else x).sort(dim=-1 if dim is None else dim).values
    d = -1 if dim is None else dim
    n = xs.size(d)
    pos = q * (n - 1)
    lo, hi = int(pos), min(int(pos) + 1, n - 1)
    return torch.lerp(xs.select(d, lo), xs.select(d, hi), pos - lo)


def is_control(name: str) -> bool:
    return any(p in name for p in CONTROL_TENSOR_PATTERNS)


def param_class(name: str) -> str:
    """#779 `_classify_param`: embed / mlp / attn / other."""
    if "tok_emb" in name or "lm_head" in name:
        return "embed"
    if ".mlp." in name:
        return "mlp"
    if ".attn." in name or ".proj." in name:
        return "attn"
    return "other"


def layer_index(name: str) -> int | None:
    m = re.search(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def prune_(t: Tensor, frac: float) -> int:
    """Zero the entries with |w| below the `frac` quantile of |w| (in place; #779 PRUNE_PCT).
    Returns how many entries are zero afterwards that were not before."""
    before = int((t == 0).sum())
    thresh = quantile(t.abs().float(), frac)
    t[t.abs() < thresh] = 0
    return int((t == 0).sum()) - before


def quantize_int8(t: Tensor, clip_q: float = INT8_CLIP_Q, scale_floor: bool = True) -> tuple[Tensor, Tensor]:
    """Upstream `quantize_float_tensor`: matrices per row (fp16 scales), others per tensor (fp32 scalar).
    q is computed with the fp32 scale and the fp16 copy is stored, exactly as upstream."""
    t32 = t.float()
    if t32.ndim == 2:
        clip = quantile(t32.abs(), clip_q, dim=1) if t32.numel() else torch.empty(t32.shape[0])
        clipped = torch.maximum(torch.minimum(t32, clip[:, None]), -clip[:, None])
        scale = clip / 127.0
        scale = scale.clamp_min(1.0 / 127.0) if scale_floor else torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.clamp(torch.round(clipped / scale[:, None]), -127, 127).to(torch.int8)
        return q.contiguous(), scale.to(torch.float16).contiguous()
    clip = float(quantile(t32.abs().flatten(), clip_q)) if t32.numel() else 0.0
    scale = torch.tensor(clip / 127.0 if clip > 0 else 1.0, dtype=torch.float32)
    q = torch.clamp(torch.round(torch.clamp(t32, -clip, clip) / scale), -127, 127).to(torch.int8)
    return q.contiguous(), scale


def quantize_lowbit(t: Tensor, bits: int, percentiles: tuple[float, ...], search: str = "row",
                    scale_floor: bool = True) -> tuple[Tensor, Tensor]:
    """Symmetric per-row quantization to [-(2^(bits-1)-1), 2^(bits-1)-1] (#779 `quantize_int6_per_row`).

    Each candidate percentile p gives row clips (quantile of |w|, or the max for p = 1), scales
    clip/range (fp16; floored at 1/range when scale_floor) and the rounded values; the candidate
    with the lowest squared reconstruction error wins, per tensor (#779) or per row. Values beyond
    the clip saturate. Returns (q int8, scale fp16 of shape (rows,)); a non-matrix is one row.
    """
    cr = 2 ** (bits - 1) - 1
    t32 = t.float().reshape(t.shape[0], -1) if t.ndim >= 2 else t.float().reshape(1, -1)
    a = t32.abs()
    best_q = best_s = best_err = None
    for p in percentiles:
        clip = a.amax(dim=1) if p >= 1.0 else quantile(a, p, dim=1)
        s = clip / cr
        s = s.clamp_min(1.0 / cr) if scale_floor else torch.where(s > 0, s, torch.ones_like(s))
        s16 = s.to(torch.float16)
        s16 = torch.where(s16 > 0, s16, torch.ones_like(s16))  # fp16 underflow -> usable scale
        sf = s16.float()[:, None]
        q = torch.clamp(torch.round(t32 / sf), -cr, cr)
        err = (t32 - q * sf).pow(2).mean(dim=1)  # (rows,)
        if best_err is None:
            best_q, best_s, best_err = q, s16, err
        elif search == "tensor":
            if err.mean() < best_err.mean():  # strict: the first candidate wins ties, as #779
                best_q, best_s, best_err = q, s16, err
        else:
            better = err < best_err
            best_q = torch.where(better[:, None], q, best_q)
            best_s = torch.where(better, s16, best_s)
            best_err = torch.where(better, err, best_err)
    return best_q.to(torch.int8).reshape(t.shape).contiguous(), best_s.contiguous()


def _dtype_name(dt: torch.dtype) -> str:
    return str(dt).removeprefix("torch.")


def quantize_state_dict(sd: dict[str, Tensor], cfg: QuantConfig, num_layers: int | None = None) -> tuple[dict, dict]:
    """-> (obj, stats). Pruning (cfg.prune_frac) is applied to a copy before quantization."""
    if num_layers is None:
        idx = [i for i in (layer_index(n) for n in sd) if i is not None]
        num_layers = max(idx) + 1 if idx else 0
    int6_from = num_layers - cfg.int6_last_n
    q_out: dict[str, Tensor] = {}
    s_out: dict[str, Tensor] = {}
    f_out: dict[str, Tensor] = {}
    meta: dict[str, dict] = {}
    stats = {"param_count": 0, "num_tensors": 0, "num_int8": 0, "num_lowbit": 0, "num_float": 0,
             "num_int5": 0, "num_int6": 0,
             "baseline_tensor_bytes": 0, "payload_bytes": 0, "pruned_params": 0, "prunable_params": 0,
             "quant_sq_err": 0.0, "quant_numel": 0}
    for name, tensor in sd.items():
        t = tensor.detach().to("cpu").contiguous()
        stats["param_count"] += t.numel()
        stats["num_tensors"] += 1
        stats["baseline_tensor_bytes"] += t.numel() * t.element_size()
        dtype = _dtype_name(t.dtype)
        if not t.is_floating_point():
            f_out[name] = t
            meta[name] = {"kind": "raw"}
        elif t.numel() <= cfg.keep_float_max_numel or is_control(name):
            keep32 = is_control(name) and (cfg.control_fp32 or t.numel() > cfg.keep_float_max_numel)
            f_out[name] = t.float() if keep32 else (t.to(torch.float16) if t.dtype in (torch.float32, torch.bfloat16) else t)
            meta[name] = {"kind": "float", "dtype": dtype}
            stats["num_float"] += 1
        else:
            if cfg.prune_frac > 0 and t.ndim == 2:
                t = t.clone()
                stats["pruned_params"] += prune_(t, cfg.prune_frac)
                stats["prunable_params"] += t.numel()
            layer = layer_index(name)
            lowbit = cfg.scheme != "int8" and param_class(name) in ("attn", "mlp")
            if lowbit:
                bits = 6 if cfg.scheme == "int6" or (layer is not None and layer >= int6_from) else 5
                q, s = quantize_lowbit(t, bits, cfg.clip_percentiles, cfg.clip_search, cfg.scale_floor)
                stats["num_lowbit"] += 1
                stats[f"num_int{bits}"] += 1
            else:
                bits = 8
                q, s = quantize_int8(t, scale_floor=cfg.scale_floor)
                stats["num_int8"] += 1
            recon = _dequant_values(q.to(torch.int64), s, bits, t.shape)
            stats["quant_sq_err"] += float((t.float() - recon).pow(2).sum())
            stats["quant_numel"] += t.numel()
            packed = lowbit and cfg.storage == "packed"
            if packed:
                q = pack_bits(q.to(torch.int64) + (2 ** (bits - 1) - 1), bits)
            q_out[name], s_out[name] = q, s
            meta[name] = {"kind": "quant", "dtype": dtype, "bits": bits, "packed": packed, "shape": list(t.shape)}
            stats["payload_bytes"] += q.numel() * q.element_size() + s.numel() * s.element_size()
            continue
        stats["payload_bytes"] += f_out[name].numel() * f_out[name].element_size()
    stats["prune_frac_actual"] = stats["pruned_params"] / max(stats["prunable_params"], 1)
    stats["quant_mse"] = stats["quant_sq_err"] / max(stats["quant_numel"], 1)
    obj = {"format": FORMAT, "scheme": cfg.scheme, "q": q_out, "scale": s_out, "float": f_out, "meta": meta}
    return obj, stats


def _dequant_values(q: Tensor, s: Tensor, bits: int, shape) -> Tensor:
    sf = s.float()
    if sf.ndim == 0:
        return (q.float() * sf).reshape(shape)
    return (q.float().reshape(sf.shape[0], -1) * sf[:, None]).reshape(shape)


def dequantize_state_dict(obj: dict) -> dict[str, Tensor]:
    """The float state dict (original dtypes) a quantized object stands for."""
    if obj.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} object (format={obj.get('format')!r})")
    out: dict[str, Tensor] = {}
    for name, m in obj["meta"].items():
        if m["kind"] == "raw":
            out[name] = obj["float"][name]
        elif m["kind"] == "float":
            out[name] = obj["float"][name].to(getattr(torch, m["dtype"])).contiguous()
        else:
            q, bits, shape = obj["q"][name], m["bits"], m["shape"]
            numel = 1
            for d in shape:
                numel *= d
            qi = (unpack_bits(q, bits, numel) - (2 ** (bits - 1) - 1)) if m["packed"] else q.to(torch.int64)
            out[name] = _dequant_values(qi, obj["scale"][name], bits, shape).to(getattr(torch, m["dtype"])).contiguous()
    return out
