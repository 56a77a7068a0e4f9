"""One driver per sweep: a lease with a heartbeat, kept in the tracking store.

Why: two `golf run`s of one sweep used to both compute every job, and the second closed the
first's live runs as KILLED "stale". Now the driver holds its sweep's lease while it runs; a
second driver refuses (LeaseHeld: one line naming host, pid and since) or, with --wait, waits for
it. Only a lease whose holder is gone is taken over, and only then are RUNNING runs closed.
The idea is marin's executor (a step's status file carries a heartbeat; a step whose heartbeat is
older than a timeout belongs to a dead worker and is taken over).

Where it lives: an experiment tag `golf.lease.<sweep identity>` in the sweep's experiment, so it
works across machines sharing one tracking store, and the key is (store, experiment, sweep).
Not a tag on the sweep's parent run: the writer creates that run asynchronously, and two
starters could each create their own parent and each "own" a lease on it. The experiment is
unique by name in every MLflow store. The value is JSON: owner (host:pid:uuid), host, pid,
machine (boot id + pid namespace: where `pid` can be checked), since, heartbeat (epoch s).

Protocol (MLflow has no compare-and-swap):
- acquire: read the tag; a live lease of another owner -> LeaseHeld (or wait). Else write our
  claim, wait `settle_s`, read it back: only the owner read back proceeds. Two claimers at the same
  moment both read the last write, so exactly one proceeds.
- heartbeat (a daemon thread, every `heartbeat_s`): read; still ours -> write a new heartbeat;
  someone else's -> `lost` is set (we missed heartbeats past the timeout and were taken over)
  and the driver stops at its next turn.
- live = heartbeat younger than `timeout_s` by our clock (clocks must agree to well within it),
  unless it was written on this machine by a pid that no longer exists: then it is takeable at once.
- release: delete the tag if it is still ours (after the tracker delivered every call, so a
  waiting driver never sees our last runs RUNNING).
- plus an flock on a lock file in the work dir: two starters on one machine sharing a work dir
  are serialised exactly, and the lock dies with its process (a SIGKILLed driver).
The residual race (a claimer stalled longer than `settle_s` between its read and its write) can
at worst let two drivers run one sweep for a heartbeat; the writer's finish re-check then keeps
one FINISHED run per identity (tracking/writer.py).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from orchestrator.tracking.client import _query, make_client
from golf_core.errors import UserError

__all__ = ["LeaseHeld", "LeaseInfo", "LeaseLost", "SweepLease", "TAG_PREFIX", "machine_id"]

log = logging.getLogger("golf.lease")

TAG_PREFIX = "golf.lease."
DEFAULT_TIMEOUT_S = 60.0


class LeaseHeld(UserError):
    """Another live driver runs this sweep (a UserError: `golf` prints it as one line, exit 2)."""

    def __init__(self, message: str, info: "LeaseInfo | None" = None):
        super().__init__(message)
        self.info = info


class LeaseLost(UserError):
    """Another driver took our lease over (we missed heartbeats past the timeout)."""


def machine_id() -> str:
    """Where a pid means the same process: this kernel boot and this pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = "?"
    return f"{socket.gethostname()}/{boot}/{ns}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


@dataclass(frozen=True)
class LeaseInfo:
    owner: str
    host: str
    pid: int
    machine: str
    since: float
    heartbeat: float

    @classmethod
    def parse(cls, text: str | None) -> "LeaseInfo | None":
        try:
            d = json.loads(text or "")
            return cls(str(d["owner"]), str(d["host"]), int(d["pid"]), str(d.get("machine", "")),
                       float(d["since"]), float(d["heartbeat"]))
        except (ValueError, TypeError, KeyError):
            return None  # unreadable: treated as no lease (a claim overwrites it)

    def dump(self) -> str:
        return json.dumps({"owner": self.owner, "host": self.host, "pid": self.pid, "machine": self.machine,
                           "since": round(self.since, 3), "heartbeat": round(self.heartbeat, 3)})

    def dead_here(self) -> bool:
        """Written on this machine by a process that is gone."""
        return self.machine == machine_id() and "?" not in self.machine and not _pid_alive(self.pid)

    def live(self, timeout_s: float, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return now - self.heartbeat < timeout_s and not self.dead_here()

    def describe(self, now: float | None = None) -> str:
        age = max(0.0, (time.time() if now is None else now) - self.heartbeat)
        return f"host {self.host} pid {self.pid} since {_utc(self.since)} (last heartbeat {age:.0f} s ago)"


class SweepLease:
    """The lease of one sweep in one experiment of one tracking store (see the module doc).

    lease = SweepLease(uri, experiment, sweep_identity, sweep_name, work_dir=...)
    lease.acquire(wait=False)      # LeaseHeld, or returns the stale LeaseInfo taken over (or None)
    ... lease.lost ...             # set by the heartbeat thread if another driver took over
    lease.release()
    """

    def __init__(self, tracking_uri: str, experiment: str, sweep_identity: str, sweep_name: str | None = None,
                 *, work_dir: str | os.PathLike | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 heartbeat_s: float | None = None, settle_s: float = 1.0):
        if not timeout_s > 0:
            raise ValueError(f"lease timeout must be > 0 seconds, got {timeout_s}")
        self.uri, self.experiment = tracking_uri, experiment
        self.sweep, self.name = sweep_identity, sweep_name or sweep_identity[:12]
        self.key = TAG_PREFIX + sweep_identity
        self.timeout_s = float(timeout_s)
        # several beats per timeout: one slow write must not make a live driver look dead
        self.heartbeat_s = heartbeat_s or max(0.2, min(5.0, self.timeout_s / 6))
        self.settle_s = settle_s
        self.me = LeaseInfo(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}",
                            socket.gethostname(), os.getpid(), machine_id(), 0.0, 0.0)
        self.lost: LeaseInfo | None = None
        self.held = False
        self._client = None
        self._exp_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_path = None
        if work_dir is not None:
            h = hashlib.sha256(f"{tracking_uri}\0{experiment}\0{sweep_identity}".encode()).hexdigest()[:24]
            self._lock_path = Path(work_dir) / f"lease-{h}.lock"
        self._lock_f = None

    # ------------------------------------------------------------------ store
    def _c(self):
        if self._client is None:
            self._client = make_client(self.uri)
        return self._client

    def _experiment_id(self) -> str:
        if self._exp_id is None:
            def get_or_create():
                c = self._c()
                exp = c.get_experiment_by_name(self.experiment)
                if exp is None:
                    try:
                        return c.create_experiment(self.experiment)
                    except Exception:  # noqa: BLE001 - created meanwhile by another starter
                        exp = c.get_experiment_by_name(self.experiment)
                        if exp is None:
                            raise
                if exp.lifecycle_stage != "active":
                    c.restore_experiment(exp.experiment_id)
                return exp.experiment_id
            self._exp_id = _query(self.uri, f"opening experiment {self.experiment!r}", get_or_create)
        return self._exp_id

    def _tags(self) -> dict[str, str]:
        exp_id = self._experiment_id()
        return _query(self.uri, "reading the sweep lease", lambda: dict(self._c().get_experiment(exp_id).tags))

    def read(self) -> LeaseInfo | None:
        return LeaseInfo.parse(self._tags().get(self.key))

    def _write(self, info: LeaseInfo) -> None:
        exp_id = self._experiment_id()
        _query(self.uri, "writing the sweep lease", lambda: self._c().set_experiment_tag(exp_id, self.key, info.dump()))

    def live_sweeps(self) -> set[str]:
        """Identities of the OTHER sweeps of this experiment whose driver is alive: their RUNNING
        runs are not stale."""
        now, out = time.time(), set()
        for k, v in self._tags().items():
            if k.startswith(TAG_PREFIX) and k != self.key:
                info = LeaseInfo.parse(v)
                if info is not None and info.live(self.timeout_s, now):
                    out.add(k[len(TAG_PREFIX):])
        return out

    # ------------------------------------------------------------------ local lock
    def _lock_local(self) -> LeaseInfo | None:
        """Take the work dir's flock; None when taken, else what its holder wrote."""
        if self._lock_path is None or self._lock_f is not None:
            return None
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self._lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            info = LeaseInfo.parse(f.read())
            f.close()
            now = time.time()
            return info or LeaseInfo("?", socket.gethostname(), 0, "", now, now)  # not written yet
        f.seek(0)
        f.truncate()
        now = time.time()
        f.write(LeaseInfo(self.me.owner, self.me.host, self.me.pid, self.me.machine, now, now).dump())
        f.flush()
        self._lock_f = f
        return None

    def _unlock_local(self) -> None:
        if self._lock_f is not None:
            self._lock_f.close()  # the flock goes with the descriptor; the file stays (harmless)
            self._lock_f = None

    # ------------------------------------------------------------------ acquire / release
    def _held_message(self, info: LeaseInfo) -> str:
        who = info.describe() if info.pid else f"another golf process on this machine (it holds {self._lock_path})"
        return (f"sweep {self.name!r} ({self.sweep[:12]}) is already being run by {who}; "
                "wait for it with --wait, or stop that driver")

    def try_acquire(self) -> tuple[bool, LeaseInfo | None]:
        """One attempt: (True, stale lease taken over or None) or (False, the live holder)."""
        holder = self._lock_local()
        if holder is not None:
            return False, holder
        try:
            cur = self.read()
            if cur is not None and cur.owner != self.me.owner and cur.live(self.timeout_s):
                self._unlock_local()
                return False, cur
            now = time.time()
            self.me = LeaseInfo(self.me.owner, self.me.host, self.me.pid, self.me.machine, now, now)
            try:
                self._write(self.me)
            except Exception:
                # SQL stores insert a new tag: a claimer inserting at the same moment fails the
                # unique key (HTTP 400). The other claim is there now: it holds the lease.
                back = self.read()
                if back is not None and back.owner != self.me.owner and back.live(self.timeout_s):
                    self._unlock_local()
                    return False, back
                raise
            time.sleep(self.settle_s)  # let a simultaneous claimer's write land, then read back
            back = self.read()
            if back is None or back.owner != self.me.owner:
                self._unlock_local()
                return False, back or cur
        except BaseException:
            self._unlock_local()
            raise
        self.held = True
        return True, cur if cur is not None and cur.owner != self.me.owner else None

    def acquire(self, wait: bool = False, on_wait: Callable[[str], None] | None = None,
                poll_s: float | None = None) -> LeaseInfo | None:
        """Hold the lease and start the heartbeat. Returns the stale lease taken over (its
        RUNNING runs are now ours to close), or None. Raises LeaseHeld when a live driver holds
        it and `wait` is False; with `wait`, polls until it is released or goes stale."""
        told = None
        while True:
            ok, other = self.try_acquire()
            if ok:
                break
            if not wait:
                raise LeaseHeld(self._held_message(other), other)
            if on_wait is not None and (told is None or other.owner != told):
                told = other.owner
                on_wait(f"sweep {self.name!r} is being run by {other.describe()}; waiting for it to finish")
            time.sleep(poll_s or self.heartbeat_s)
        if other is not None:
            why = "its process is gone" if other.dead_here() else f"no heartbeat for {time.time() - other.heartbeat:.0f} s"
            log.warning("took over the lease of sweep %r from host %s pid %s (%s)", self.name, other.host, other.pid, why)
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="golf-lease-heartbeat", daemon=True)
        self._thread.start()
        return other

    def _beat(self) -> None:
        warned = 0.0
        while not self._stop.wait(self.heartbeat_s):
            try:
                cur = self.read()
                if cur is not None and cur.owner != self.me.owner:
                    self.lost = cur
                    log.warning("lease of sweep %r taken over by %s", self.name, cur.describe())
                    return
                self.me = LeaseInfo(self.me.owner, self.me.host, self.me.pid, self.me.machine, self.me.since,
                                    time.time())
                self._write(self.me)
            except Exception as e:  # noqa: BLE001 - a tracking outage: keep beating
                if time.monotonic() - warned > 30:
                    warned = time.monotonic()
                    log.warning("cannot renew the lease of sweep %r: %s", self.name, str(e).splitlines()[0][:200])

    def check(self) -> None:
        """Raise LeaseLost if another driver took the lease over."""
        if self.lost is not None:
            raise LeaseLost(f"sweep {self.name!r}: another driver took the lease over ({self.lost.describe()}); "
                            "this driver stopped")

    def release(self, keep: bool = False) -> None:
        """Stop the heartbeat; delete the lease if still ours (keep=True leaves it to expire:
        calls were not delivered, so a successor must not look yet)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            if self.held and not keep and self.lost is None:
                cur = self.read()
                if cur is not None and cur.owner == self.me.owner:
                    exp_id = self._experiment_id()
                    _query(self.uri, "releasing the sweep lease",
                           lambda: self._c().delete_experiment_tag(exp_id, self.key))
        except Exception as e:  # noqa: BLE001 - it expires on its own
            log.warning("could not release the lease of sweep %r (it expires in %.0f s): %s",
                        self.name, self.timeout_s, str(e).splitlines()[0][:200])
        finally:
            self.held = False
            self._unlock_local()
