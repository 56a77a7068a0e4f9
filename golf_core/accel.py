"""Where the CUDA path and the CPU path part: torch.compile, bf16 autocast, fused Adam.

Every decision that used to read `device.type == "cuda"` inline goes through one of these small
functions, so a test can ask for the GPU's choice on a CPU (inductor compiles for CPU, and bf16
autocast runs on CPU) and run the same code path the GPU runs. `auto` keeps the old behaviour:
compile and bf16 on CUDA, plain fp32 eager on CPU.
"""
from __future__ import annotations

import contextlib

import torch

COMPILE_MODES = ("auto", "on", "off")
AUTOCAST_MODES = ("auto", "bf16", "off")


def _dev(device) -> torch.device:
    return torch.device(device)


def resolve_compile(mode: str, device) -> bool:
    """Whether to torch.compile the model (and Muon's Newton-Schulz): auto = on for CUDA."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile: unknown mode {mode!r} (choose from {', '.join(COMPILE_MODES)})")
    return _dev(device).type == "cuda" if mode == "auto" else mode == "on"


def resolve_autocast(mode: str, device) -> torch.dtype | None:
    """The autocast dtype (bf16) or None for plain fp32: auto = bf16 for CUDA, as the records run."""
    if mode not in AUTOCAST_MODES:
        raise ValueError(f"autocast: unknown mode {mode!r} (choose from {', '.join(AUTOCAST_MODES)})")
    on = _dev(device).type == "cuda" if mode == "auto" else mode == "bf16"
    return torch.bfloat16 if on else None


def autocast_ctx(dtype: torch.dtype | None, device):
    """A fresh autocast context for `device` (None = no autocast)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_dev(device).type, dtype=dtype)


def autocast_for(device, mode: str = "auto"):
    """The autocast context a forward pass on `device` runs under."""
    return autocast_ctx(resolve_autocast(mode, device), device)



# Inductor is what the GPU runs. Tests may swap in "aot_eager" (dynamo tracing with fullgraph and
# AOT autograd, the part that breaks on graph breaks, without inductor's C++ build: seconds, not
# minutes, on 2 cores); one slow test keeps inductor itself.
COMPILE_BACKEND = "inductor"


def compile_fn(fn, **kwargs):
    """torch.compile with this module's backend (the model and Muon's Newton-Schulz use it)."""
    return torch.compile(fn, backend=COMPILE_BACKEND, **kwargs)
