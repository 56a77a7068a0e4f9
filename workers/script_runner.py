"""Run a user's train_gpt.py as parameter-golf does: `torchrun --standalone --nproc_per_node=N`.

The job dir is the script's cwd, with the script (or its record folder) copied in, so its
`logs/` and `final_model.*` land there. stdout and stderr go line by line to `train.log` as they
come and through golf_core.logparse.parse_line: training lines become `step` progress events
(the live display, the live `train_loss` metric), validation lines `val` events. The result is
the log's summary in golf's train-job fields.

The process tree: torchrun starts in a new session (its own process group) and gets SIGTERM if
this worker dies (PR_SET_PDEATHSIG), so a killed Ray actor takes its run with it; torchrun
starts each rank in a session of its own, so a timeout signals torchrun's group (it stops its
ranks), then SIGKILLs every process of the tree that is left, ranks and their children included.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from workers.contract import Attempt

__all__ = ["ScriptError", "run_script_job", "child_env", "kill_tree", "kill_descendants", "MODEL_PREFIX", "TAIL_LINES"]

MODEL_PREFIX = "final_model"  # upstream: final_model.pt (raw) and final_model.int8.ptz / .int6.ptz ...
TAIL_LINES = 8  # the last log lines a failure's reason quotes
TERM_GRACE_S = 5.0  # torchrun's own shutdown of its ranks before everything left is SIGKILLed
# set by torchrun for its ranks; a worker (a Ray rank actor) may have its own from golf's gangs
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
              "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
_SAFE = re.compile(r"[^A-Za-z0-9._=-]+")
_TAG = re.compile(r"[^A-Za-z0-9_. /-]+")  # what an MLflow metric name may hold


class ScriptError(RuntimeError):
    """The script failed (non-zero exit, or killed at its timeout); one line with the log tail."""


def _pdeathsig() -> None:  # runs in the child between fork and exec (Linux): die with the worker
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the timeout still kills the tree
        pass


def safe_run_id(name: str) -> str:
    """A job name as a file name: `script/s42/LR=0.02` -> `script_s42_LR=0.02`."""
    return _SAFE.sub("_", name).strip("._-")[:120] or "run"


def child_env(base: dict[str, str], job_env: dict[str, str], data_dir: str, run_id: str,
              tokenizer: str | None = None) -> dict[str, str]:
    """The script's environment: the worker's (minus rank variables torchrun sets), golf's
    defaults (DATA_PATH; TOKENIZER_PATH = `tokenizer`, the spec's data.tokenizer_path, else the
    data dir's own; RUN_ID), then the job's resolved env, which wins. The tokenizer comes with
    the attempt, not the job's env, so a path of one machine is never part of a job's identity."""
    env = {k: v for k, v in base.items() if k not in _DIST_VARS}
    env["DATA_PATH"] = str(data_dir)
    try:
        from golf_core.data.shards import find_tokenizer

        env["TOKENIZER_PATH"] = str(find_tokenizer(data_dir, tokenizer))
    except Exception:  # noqa: BLE001 - the script may set its own (train.env.TOKENIZER_PATH)
        pass
    env["RUN_ID"] = run_id
    env["PYTHONUNBUFFERED"] = "1"  # lines as they come, not when a 4 KiB buffer fills
    env.update(job_env)
    return env


def _tree(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def kill_tree(proc: subprocess.Popen, grace_s: float = TERM_GRACE_S) -> None:
    """SIGTERM torchrun's process group, then SIGKILL every process of its tree that is left
    (ranks run in sessions of their own, so one killpg does not reach them)."""
    seen = set(_tree(proc.pid))
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    while proc.poll() is None and time.monotonic() < deadline:
        seen.update(_tree(proc.pid))
        time.sleep(0.1)
    seen.update(_tree(proc.pid))
    for pid in seen:
        for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
            try:
                kill(pid)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def kill_descendants(root: int, grace_s: float = 2.0) -> int:
    """Stop every process below `root` now (not `root` itself): SIGTERM, then SIGKILL what is
    left after `grace_s`. Only the processes below root's children of this moment are followed:
    the actor that started them may start the next job's torchrun meanwhile, which is left alone.
    A pruned job: the Ray actor that started torchrun stays up for the next job."""
    tops = [p for p in _tree(root) if p != root]
    seen = set(tops)
    for pid in tops:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass

    def follow() -> None:
        for pid in list(seen):
            seen.update(_tree(pid))

    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_running(p) for p in seen):
        follow()
        time.sleep(0.05)
    follow()
    for pid in seen:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(tops)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# torchrun's own report of a failed rank (`E1201 ... failed (exitcode: 1) local_rank: 0 ...`, then its
# traceback and a ChildFailedError table): the script's last words come before it
_TORCHRUN_FAILED = re.compile(r"failed \(exitcode: -?\d+\) local_rank")


def _tail(lines: list[str], n: int = TAIL_LINES) -> str:
    cut = next((i for i, x in enumerate(lines) if _TORCHRUN_FAILED.search(x)), len(lines))
    own = [x.strip() for x in lines[:cut] if x.strip()]
    return " | ".join(own[-n:])[-400:]


def _write_files(files: dict[str, bytes], root: Path) -> None:
    for rel, blob in files.items():
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not parts:
            raise ValueError(f"script file name {rel!r} is not a relative path")
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(blob)


def _event(ev, wall_s: float) -> dict | None:
    """A progress event (the shape golf_core's training reports) for a parsed log line;
    `train_time_s` is the line's own `train_time:` (what pruners compare at), when it has one."""
    v = ev.values
    tt = v.get("train_time_ms")
    tt = {"train_time_s": tt / 1000.0} if isinstance(tt, (int, float)) else {}
    if ev.kind == "train" and ev.step is not None:
        return {"event": "step", "step": ev.step, "total_steps": ev.total_steps, "train_loss": v.get("train_loss"),
                "step_ms": v.get("step_avg_ms"), "elapsed_s": wall_s, "log": True, **tt}
    if ev.kind == "val" and ev.step is not None:
        return {"event": "val", "step": ev.step, "val_loss": v.get("val_loss"), "val_bpb": v.get("val_bpb"),
                "elapsed_s": wall_s, "log": True, **tt}
    return None


def run_script_job(attempt: Attempt, data_dir: str, out_dir: str,
                   on_progress: Callable[[dict], None] | None = None) -> dict:
    """Run one script_train job in `out_dir`; returns its result (raises ScriptError on failure).

    `attempt.job` is a ScriptTrainJob (entry, env, nproc, timeout_s, score_tag), its files'
    bytes in `attempt.script_files`. Writes out_dir/train.log, out_dir/result.json and copies
    the script's model files next to them (the files that go to MLflow)."""
    from golf_core.logparse import parse_line, summarize

    job = attempt.job
    files = attempt.script_files or {}
    out = Path(out_dir)
    run_dir = out / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _write_files(files, run_dir)
    entry = job.script.entry
    nproc = int(job.nproc or 1)
    env = child_env(dict(os.environ), dict(job.env), data_dir, safe_run_id(job.name or "run"), attempt.tokenizer)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", entry]
    timeout = float(job.timeout_s or 0) or None
    log_path = out / "train.log"
    lines: list[str] = []
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_pdeathsig)

        def pump() -> None:  # a thread: the main one keeps the clock for the timeout
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                lines.append(line)
                if on_progress is not None:
                    ev = parse_line(line)
                    pe = _event(ev, time.monotonic() - t0) if ev is not None else None
                    if pe is not None:
                        on_progress(pe)

        reader = threading.Thread(target=pump, name="script-log", daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_tree(proc)
        except BaseException:
            kill_tree(proc)  # the worker is being torn down: never leave the run behind
            raise
        reader.join(timeout=30)
    wall_s = time.monotonic() - t0
    last = _tail(lines)
    if timed_out:
        raise ScriptError(f"{entry} killed at its timeout after {timeout:.0f} s; log tail: {last}")
    if proc.returncode != 0:
        raise ScriptError(f"{entry} exited with {proc.returncode}; log tail: {last}")

    summary = summarize(lines, score_tag=job.score_tag)
    models = sorted(p for p in run_dir.glob(f"{MODEL_PREFIX}*") if p.is_file())
    for p in models:
        shutil.copy2(p, out / p.name)
    script_bytes = len(files[entry])
    compressed = [p for p in models if p.suffix != ".pt"]
    model_bytes = max((p.stat().st_size for p in compressed), default=None)
    result = {
        "val_bpb": summary.val_bpb, "val_loss": summary.val_loss, "final_tag": summary.final_tag,
        "artifact_bytes": summary.artifact_bytes if summary.artifact_bytes is not None else
        (script_bytes + model_bytes if model_bytes is not None else None),
        "artifact_bytes_source": "log" if summary.artifact_bytes is not None else "files",
        "code_bytes": script_bytes, "model_bytes": model_bytes,
        "steps": summary.steps, "train_time_s": summary.train_time_s, "step_avg_ms": summary.step_avg_ms,
        "eval_time_s": summary.eval_time_s, "peak_mem_mib": summary.peak_mem_mib,
        "world_size": nproc, "wall_s": wall_s, "exit_code": proc.returncode,
        "train_loss_curve": [[s, v] for s, v in summary.curve_points],
        "val_curve": [[s, loss, b] for s, loss, b in summary.val_points],
        "model_files": [p.name for p in models], "seed": job.seed,
    }
    for tag, (_loss, bpb) in summary.scores.items():
        result[f"val_bpb.{_TAG.sub('_', tag)}"] = bpb
    if summary.val_bpb is None:
        result["no_score"] = (f"no score line tagged {job.score_tag!r} in train.log (tags seen: "
                              f"{', '.join(summary.scores) or 'none'})" if job.score_tag else
                              "no score line ('<tag> val_loss:X val_bpb:Y') in train.log")
    result = {k: v for k, v in result.items() if v is not None}
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    return result
