"""A script job's processes, all of them stopped when it ends (workers.script_runner's doc says why
a marker): torchrun in its own session dying with the worker (PR_SET_PDEATHSIG), the tree walked
and killed after a grace period, and every process carrying the job's GOLF_JOB_MARK found in
/proc and stopped, double-forked daemons included."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

__all__ = ["MARK_VAR", "kill_descendants", "kill_marked", "kill_tree", "marked"]

MARK_VAR = "GOLF_JOB_MARK"
TERM_GRACE_S = 5.0  # torchrun's own shutdown of its ranks before everything left is SIGKILLed
LEFTOVER_GRACE_S = 1.0  # after a clean exit: what the script left running gets this long after SIGTERM


def _pdeathsig() -> None:  # runs in the child between fork and exec (Linux): die with the worker
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the timeout still kills the tree
        pass


def marked(mark: str) -> list[int]:
    """Every live process whose environment carries this job's marker (Linux /proc; a process of
    another user, or one that exits meanwhile, is skipped)."""
    needle = f"{MARK_VAR}={mark}".encode()
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0"):
                out.append(int(d.name))
        except OSError:
            continue
    return out


def kill_marked(mark: str, grace_s: float = LEFTOVER_GRACE_S) -> int:
    """SIGTERM every process carrying `mark`, SIGKILL those still there after `grace_s` (and any
    they forked meanwhile); returns how many there were."""
    seen: set[int] = set()
    deadline = time.monotonic() + grace_s
    sig = signal.SIGTERM
    for _ in range(50):
        pids = marked(mark)
        if not pids:
            break
        seen.update(pids)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
    return len(seen)


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
