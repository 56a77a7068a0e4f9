"""A script job's environment (issue 20): golf's variables, the job's env, and a minimal base of
the worker's (PATH, HOME, locale, CUDA/NCCL/torch/threading settings; `base_env`); nothing that
looks like a credential unless the spec's `train.pass_env` names it. A script printing its
environment (any script's output lands in an artifact) shows no MLflow password, cloud key or
hub token."""
from __future__ import annotations

import re

from workers.processes import MARK_VAR

__all__ = ["base_env", "child_env", "safe_run_id"]

_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
              "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
# the base a script gets from the worker's environment: what a shell, Python, CUDA, NCCL and torch need
_BASE_VARS = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "PWD",
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",
    "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_HUB_OFFLINE",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
})
_BASE_PREFIXES = ("LC_", "CUDA_", "CUDNN_", "CUBLAS_", "NCCL_", "NVIDIA_", "TORCH_", "TORCHINDUCTOR_",
                  "PYTORCH_", "TRITON_", "GLOO_", "KMP_", "OMP_", "MKL_", "HIP_", "ROCM_", "HSA_")
# a name that looks like a credential never passes on a prefix (CUDA_..._TOKEN), only by pass_env
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE|AUTH", re.IGNORECASE)
_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_run_id(name: str) -> str:
    """A job name as a file name: `script/s42/LR=0.02` -> `script_s42_LR=0.02`."""
    return _SAFE.sub("_", name).strip("._-")[:120] or "run"


def base_env(environ: dict[str, str], pass_env: tuple[str, ...] | list[str] = ()) -> dict[str, str]:
    """What a script gets of `environ` before golf's and the job's variables: the minimal base
    (_BASE_VARS, _BASE_PREFIXES; never a name that looks like a credential, never torchrun's rank
    variables), plus every name in `pass_env` that `environ` has."""
    out = {k: v for k, v in environ.items()
           if (k in _BASE_VARS or k.startswith(_BASE_PREFIXES)) and not _SECRET.search(k) and k not in _DIST_VARS}
    out.update({k: environ[k] for k in pass_env if k in environ})
    return out


def child_env(base: dict[str, str], job_env: dict[str, str], data_dir: str, run_id: str,
              tokenizer: str | None = None, pass_env: tuple[str, ...] | list[str] = (),
              mark: str | None = None) -> dict[str, str]:
    """The script's environment: the minimal base of the worker's (`base_env`: `base` filtered,
    plus `pass_env`), golf's defaults (DATA_PATH; TOKENIZER_PATH = `tokenizer`, the spec's
    data.tokenizer_path, else the data dir's own; RUN_ID), then the job's resolved env, which wins,
    then the job's process marker. The tokenizer comes with the attempt, not the job's env, so a
    path of one machine is never part of a job's identity."""
    env = base_env(base, pass_env)
    env["DATA_PATH"] = str(data_dir)
    try:
        from golf_core.data.shards import find_tokenizer

        env["TOKENIZER_PATH"] = str(find_tokenizer(data_dir, tokenizer))
    except Exception:  # noqa: BLE001 - the script may set its own (train.env.TOKENIZER_PATH)
        pass
    env["RUN_ID"] = run_id
    env["PYTHONUNBUFFERED"] = "1"  # lines as they come, not when a 4 KiB buffer fills
    env.update(job_env)
    if mark:
        env[MARK_VAR] = mark
    return env
