"""Run a user's train_gpt.py as parameter-golf does: `torchrun --standalone --nproc_per_node=N`.

The job dir is the script's cwd, with the script (or its record folder) copied in, so its
`logs/` and `final_model.*` land there. stdout and stderr go line by line to `train.log` as they
come and through golf_core.logparse (each line parsed once, as it comes, so the parse counts
inside the job's timeout): training lines become `step` progress events (the live display, the
live `train_loss` metric), validation lines `val` events; every few seconds the lines since the
last report go out as a `log` event, which the driver appends to the run's `train.log` artifact
while the job runs (a driver or node lost mid-run leaves the partial log with its run). The
result is the log's summary in golf's train-job fields. An attempt never overwrites an earlier
one's files: a job dir that holds them (a driver killed and rerun) has them moved to
`<dir>.<k>` first.

The environment (issue 20): golf's variables, the job's env, and a minimal base of the worker's
(PATH, HOME, locale, CUDA/NCCL/torch/threading settings; `base_env`); nothing that looks like a
credential unless the spec's `train.pass_env` names it. A script printing its environment (any
script's output lands in an artifact) shows no MLflow password, cloud key or hub token.

The process tree: torchrun starts in a new session (its own process group) and gets SIGTERM if
this worker dies (PR_SET_PDEATHSIG), so a killed Ray actor takes its run with it; torchrun
starts each rank in a session of its own, so a timeout signals torchrun's group (it stops its
ranks), then SIGKILLs every process of the tree that is left, ranks and their children included.
When the job ends, however it ends, every process it started is stopped, daemons too: each job's
environment carries a random marker (GOLF_JOB_MARK) that every descendant inherits, and /proc
is scanned for it. Why a marker: a double-forked `setsid` daemon leaves the tree (its parent
becomes init), so a tree walk misses it; PR_SET_CHILD_SUBREAPER would make this worker the
parent of every orphan of every job it runs (and of the test or driver process that calls this
function), which must then reap them and cannot tell one job's from another's; a cgroup needs
root or a delegated cgroup tree, which a Ray worker on a rented node does not have. The marker
needs no privilege and is per job; its one escape, a process that re-executes itself with an
emptied environment, is a deliberate act, not an accident.

Disk full (ENOSPC) while writing the log is an error, not a hang: the script is stopped at once
and the job fails with `disk full writing <path>`.
"""
from __future__ import annotations

import collections
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from workers.contract import Attempt
from workers.processes import LEFTOVER_GRACE_S, MARK_VAR, TERM_GRACE_S, _pdeathsig, kill_descendants, kill_marked, \
    kill_tree
from workers.script_env import base_env, child_env, safe_run_id

# base_env / child_env (workers.script_env) and the process tree (workers.processes) are re-exported
__all__ = ["ScriptError", "run_script_job", "base_env", "child_env", "kill_tree", "kill_descendants", "kill_marked",
           "LEFTOVER_GRACE_S", "MARK_VAR", "MODEL_PREFIX", "TAIL_LINES", "TERM_GRACE_S", "safe_run_id"]

MODEL_PREFIX = "final_model"  # upstream: final_model.pt (raw) and final_model.int8.ptz / .int6.ptz ...
TAIL_LINES = 8  # the last log lines a failure's reason quotes
LOG_EVERY_S = 3.0  # how often the lines so far go to the driver (and the run's train.log artifact)
LOG_STREAM_MAX = 64 * 1024 * 1024  # a log streamed live up to this much; the whole file goes at the end
READ_MAX = 1024 * 1024  # one read from the pipe: a line without newlines is taken in pieces
# set by torchrun for its ranks; a worker (a Ray rank actor) may have its own from golf's gangs
_TAG = re.compile(r"[^A-Za-z0-9_. /-]+")  # what an MLflow metric name may hold


class ScriptError(RuntimeError):
    """The script failed (non-zero exit, or killed at its timeout); one line with the log tail."""


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


class _DiskFull(OSError):
    pass


def _disk_full(path: Path | str) -> ScriptError:
    return ScriptError(f"disk full writing {path}")


def _keep_earlier(out: Path) -> Path | None:
    """An earlier attempt's files in `out` (the same attempt number after a driver was killed and
    rerun) move to `<out>.<k>`, so this attempt never overwrites them."""
    if not out.is_dir() or not any(out.iterdir()):
        return None
    k = 1
    while True:
        aside = out.with_name(f"{out.name}.{k}")
        try:
            aside.mkdir()
            break
        except FileExistsError:
            k += 1
    for p in list(out.iterdir()):
        p.rename(aside / p.name)
    return aside


class _Pump:
    """Drains the script's stdout on a thread: each line to the log file, through the parser
    (progress events), into the tail and the batch of lines the next `log` event carries. A write
    that fails (ENOSPC) stops the pump and is reported to the waiting thread, which stops the
    script: nothing else would drain the pipe, and the script would block on its next print."""

    def __init__(self, proc: subprocess.Popen, log, log_path: Path, score_tag: str | None,
                 on_progress: Callable[[dict], None] | None, t0: float):
        from golf_core.logparse import summarize

        self.proc, self.log, self.log_path, self.t0 = proc, log, log_path, t0
        self.on_progress = on_progress
        self.tail: collections.deque[str] = collections.deque(maxlen=400)
        self.error: OSError | None = None
        self.summary = None
        self._batch: list[str] = []
        self._streamed = 0
        self._lock = threading.Lock()
        self._score_tag = score_tag
        self._summarize = summarize
        self.thread = threading.Thread(target=self._run, name="script-log", daemon=True)

    def _lines(self):
        assert self.proc.stdout is not None
        for raw in iter(lambda: self.proc.stdout.readline(READ_MAX), b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            try:
                self.log.write(line + "\n")
            except OSError as e:
                raise _DiskFull(e.errno, e.strerror) from e
            self.tail.append(line)
            if self.on_progress is not None and self._streamed < LOG_STREAM_MAX:
                with self._lock:
                    self._batch.append(line)
                    self._streamed += len(line) + 1
            yield line

    def _event(self, ev) -> None:
        if self.on_progress is not None:
            pe = _event(ev, time.monotonic() - self.t0)
            if pe is not None:
                self.on_progress(pe)

    def _run(self) -> None:
        try:
            self.summary = self._summarize(self._lines(), score_tag=self._score_tag, on_event=self._event)
        except OSError as e:  # the log cannot be written: the waiting thread stops the script
            self.error = e
        except ValueError:  # the log was closed under a parse that overran the job's timeout
            pass

    def flush_log(self) -> None:
        """The lines since the last call as one `log` event (the driver appends them to train.log)."""
        with self._lock:
            batch, self._batch = self._batch, []
        if batch and self.on_progress is not None:
            self.on_progress({"event": "log", "text": "\n".join(batch) + "\n", "log": True})


def run_script_job(attempt: Attempt, data_dir: str, out_dir: str,
                   on_progress: Callable[[dict], None] | None = None, *, log_path: str | None = None) -> dict:
    """Run one script_train job in `out_dir`; returns its result (raises ScriptError on failure).

    `attempt.job` is a ScriptTrainJob (entry, env, nproc, timeout_s, score_tag), its files'
    bytes in `attempt.script_files`. Writes out_dir/train.log (or `log_path`: a test points it at
    /dev/full), out_dir/result.json and copies the script's model files next to them (the files
    that go to MLflow). The timeout covers the parse of the log, and when the call returns no
    process the script started is left."""
    job = attempt.job
    files = attempt.script_files or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _keep_earlier(out)
    run_dir = out / "run"
    run_dir.mkdir(parents=True)
    _write_files(files, run_dir)
    entry = job.script.entry
    nproc = int(job.nproc or 1)
    mark = uuid.uuid4().hex
    env = child_env(dict(os.environ), dict(job.env), data_dir, safe_run_id(job.name or "run"), attempt.tokenizer,
                    pass_env=tuple(getattr(job, "pass_env", ()) or ()), mark=mark)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", entry]
    timeout = float(job.timeout_s or 0) or None
    log_file = Path(log_path) if log_path else out / "train.log"
    t0 = time.monotonic()
    deadline = t0 + timeout if timeout else None
    timed_out = False
    try:
        log = open(log_file, "w", encoding="utf-8", buffering=1)
    except OSError as e:
        raise (_disk_full(log_file) if e.errno == errno.ENOSPC else ScriptError(f"cannot write {log_file}: {e}"))
    try:
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_pdeathsig)
        pump = _Pump(proc, log, log_file, job.score_tag, on_progress, t0)
        pump.thread.start()
        last_flush = t0
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if pump.error is not None:
                    break
                if deadline is not None and now >= deadline:
                    timed_out = True
                    break
                if now - last_flush >= LOG_EVERY_S:
                    pump.flush_log()
                    last_flush = now
                try:
                    proc.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                kill_tree(proc)
        except BaseException:
            kill_tree(proc)  # the worker is being torn down: never leave the run behind
            kill_marked(mark, 0.0)
            raise
        finally:
            kill_marked(mark)  # whatever the script left running: background children, daemons
        # the pump ends at EOF (every writer of the pipe is gone now); its parse counts in the budget
        left = (deadline - time.monotonic()) if deadline is not None else 60.0
        pump.thread.join(timeout=max(left, 0.5))
        if pump.thread.is_alive() and not timed_out and pump.error is None:
            timed_out = True  # still parsing at the deadline
        pump.flush_log()
    finally:
        try:
            log.close()
        except OSError:  # the flush of a full disk: already reported by the pump
            pass
    wall_s = time.monotonic() - t0
    last = _tail(list(pump.tail))
    if pump.error is not None:
        if pump.error.errno == errno.ENOSPC:
            raise _disk_full(log_file)
        raise ScriptError(f"cannot write {log_file}: {pump.error.strerror or pump.error}")
    if timed_out:
        raise ScriptError(f"{entry} killed at its timeout after {timeout:.0f} s; log tail: {last}")
    if proc.returncode != 0:
        raise ScriptError(f"{entry} exited with {proc.returncode}; log tail: {last}")
    summary = pump.summary
    if summary is None:  # the pump died on something it could not write or read
        raise ScriptError(f"{entry}: its log could not be read; log tail: {last}")
    try:
        return _result(job, files, out, run_dir, nproc, summary, wall_s, proc.returncode)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise _disk_full(e.filename or out) from None
        raise


def _result(job, files: dict[str, bytes], out: Path, run_dir: Path, nproc: int, summary, wall_s: float,
            returncode: int) -> dict:
    entry = job.script.entry
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
        "world_size": nproc, "wall_s": wall_s, "exit_code": returncode,
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
    path = out / "result.json"
    try:
        path.write_text(json.dumps(result, indent=1, default=str))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise _disk_full(path) from None
        raise
    return result
