"""The on-disk write-ahead journal: every tracking call is a JSON line before it is sent.

A driver that dies (OOM, SIGKILL, node loss) loses nothing that reached the journal: the next
Tracker started on the same journal directory adopts the dead journal and replays what was not
acknowledged. Lines are written and flushed to the OS on the caller's thread (cheap: no fsync),
so a process crash keeps them; the writer thread fsyncs after each batch it sends.

Records, one JSON object a line:
    {"journal": 1, "tracking_uri": ..., "pid": ..., "host": ...}   header, first line
    {"seq": n, "op": "create"|"log"|"artifact"|"finish", ...}        a tracking call
    {"ack": n}                      every op with seq <= n reached MLflow (or was dropped)
    {"run": key, "run_id": id}      the MLflow run id a local run key was given
The writer sends ops strictly in seq order, so one watermark describes what is done.
A journal is owned through an exclusive flock on its file: a lock we can take belongs to a dead
process (flock locks die with their process).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .client import redact
from golf_core.errors import UserError

__all__ = ["Journal", "JournalError", "Orphans", "adopt_orphans"]

log = logging.getLogger("golf.tracking")

# rewrite the journal once it is fully acknowledged and larger than this
_COMPACT_BYTES = 32 * 1024 * 1024


class JournalError(UserError):
    """The journal directory cannot be used (e.g. a file stands where it should be)."""


class Journal:
    def __init__(self, directory: str | os.PathLike, tracking_uri: str, experiment: str | None = None):
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise JournalError(f"{self.dir}: is a file, not the tracking journal directory; move it aside")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        name = f"journal-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = self.dir / name
        # 0600: the journal holds params, tags and paths of the user's runs
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        # a large buffer: inside hold() a loop turn's lines (a batch of mix results, ~1 KB each)
        # stay in memory until its one flush, not a write(2) (and a GIL hand-off) every 8 KB
        self._f = os.fdopen(fd, "a", encoding="utf-8", buffering=1 << 20)
        fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock = threading.Lock()
        self._held = threading.local()  # hold(): this thread's lines wait for one flush
        self.last_seq = 0
        self.acked = 0
        self._runs: dict[str, str] = {}
        self.broken = False  # a write failed: a crash now could lose calls
        self._header()

    def _header(self) -> None:
        # the URI without credentials: the journal is a file on disk (see client.redact)
        self._write({"journal": 1, "tracking_uri": redact(self.tracking_uri), "experiment": self.experiment,
                     "pid": os.getpid(), "host": socket.gethostname()})

    def _write(self, record: dict) -> None:
        try:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
            if not getattr(self._held, "depth", 0):
                self._f.flush()
        except (OSError, ValueError) as e:  # disk full, file closed: never raise into a job
            self._broken(e)

    def _broken(self, e: Exception) -> None:
        if not self.broken:
            log.warning("tracking journal %s not written (%s): calls are buffered in "
                        "memory only until the disk recovers", self.path, e)
        self.broken = True

    @contextlib.contextmanager
    def hold(self):
        """The lines this thread writes inside reach the OS in one flush at the end, not one
        each: the driver handles a loop turn's results (five lines a mix job) this way, and a
        flush per line was a fifth of its time per job (issue 21). A crash inside loses only
        what that turn learnt, which lived in the driver's memory alone anyway; the writer's
        own lines (acks, other threads) still flush at once, and carry these out with them."""
        self._held.depth = getattr(self._held, "depth", 0) + 1
        try:
            yield
        finally:
            self._held.depth -= 1
            if not self._held.depth:
                with self._lock:
                    try:
                        if not self._f.closed:
                            self._f.flush()
                    except (OSError, ValueError) as e:
                        self._broken(e)

    def append_op(self, op: dict) -> int:
        """Give `op` the next seq, write it, return the seq (the caller's thread)."""
        with self._lock:
            self.last_seq += 1
            op["seq"] = self.last_seq
            self._write(op)
            return self.last_seq

    def map_run(self, key: str, run_id: str) -> None:
        with self._lock:
            self._runs[key] = run_id
            self._write({"run": key, "run_id": run_id})

    def ack(self, seq: int) -> None:
        with self._lock:
            if seq > self.acked:
                self.acked = seq
                self._write({"ack": seq})

    def sync(self) -> None:
        with self._lock:
            try:
                os.fsync(self._f.fileno())
            except (OSError, ValueError):
                pass  # reported by _write

    def compact_if_idle(self) -> bool:
        """Truncate a fully acknowledged journal that has grown large, keeping the run map."""
        with self._lock:
            if self._f.closed or self.acked < self.last_seq or self._f.tell() < _COMPACT_BYTES:
                return False
            self._f.seek(0)
            self._f.truncate()
            self._header()
            for key, run_id in self._runs.items():
                self._write({"run": key, "run_id": run_id})
            self._write({"ack": self.acked})
            # seqs keep growing: a later reader must not take old seqs for new ones
            return True

    def close(self, delete: bool) -> None:
        with self._lock:
            if self._f.closed:
                return
            if delete:
                self.path.unlink(missing_ok=True)
            else:
                os.fsync(self._f.fileno())
            self._f.close()  # releases the flock


@dataclass
class Orphans:
    """What dead journals left: ops to replay (in order; those MLflow had acknowledged marked
    `_history`) and the run ids they had been given (not yet checked against MLflow: the writer
    verifies each before touching its run)."""

    ops: list[dict] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)
    _held: list = field(default_factory=list)  # (path, open file, corrupt?)

    def release(self) -> None:
        """Delete the adopted journals (call once their ops are safe in our own journal); a
        journal that had malformed lines is moved aside as *.corrupt instead, for a human."""
        for path, f, corrupt in self._held:
            if corrupt:
                _move_aside(path)
            else:
                path.unlink(missing_ok=True)
            f.close()
        self._held.clear()


def _move_aside(path: Path) -> Path | None:
    dst = path.with_name(path.name + ".corrupt")
    if dst.exists():
        dst = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.corrupt")
    try:
        os.replace(path, dst)
        return dst
    except OSError as e:
        log.warning("tracking journal %s could not be moved aside (%s)", path, e.strerror)
        return None


# -- validation: a journal is a file anyone with access to the work dir can edit --------------
_KEY = re.compile(r"^[0-9a-f]{32}$")  # uuid4().hex, what Tracker gives every run
_RUN_ID = re.compile(r"^[\w\-]{1,128}$")
_OPS = ("create", "log", "artifact", "finish")
_STATUSES = ("FINISHED", "FAILED", "KILLED")


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _str_map(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())


def _opt_str(v) -> bool:
    return v is None or isinstance(v, str)


def _metric(m) -> bool:
    return (isinstance(m, list) and len(m) == 4 and isinstance(m[0], str)
            and isinstance(m[1], (int, float)) and not isinstance(m[1], bool) and _int(m[2]) and _int(m[3]))


def _op_problem(rec: dict, experiment: str | None, roots: list[Path] | None) -> str | None:
    """Why op `rec` must not be replayed, or None."""
    op = rec.get("op")
    if op not in _OPS or not _int(rec.get("seq")) or not isinstance(rec.get("key"), str) \
            or not _KEY.match(rec["key"]):
        return "not a tracking call (op, seq or key missing or mistyped)"
    if op in ("create", "finish"):
        if not isinstance(rec.get("experiment"), str):
            return f"{op} without an experiment"
        if experiment is not None and rec["experiment"] != experiment:
            return f"{op} for experiment {rec['experiment']!r}, not this sweep's {experiment!r}"
    if op == "create":
        if not (_str_map(rec.get("tags")) and _int(rec.get("start_ms")) and _opt_str(rec.get("name"))
                and (rec.get("parent") is None or (isinstance(rec["parent"], str) and _KEY.match(rec["parent"])))
                and (rec.get("reuse") is None or _str_map(rec["reuse"]))):
            return "create with mistyped fields"
    elif op == "log":
        if not (isinstance(rec.get("metrics", []), list) and all(map(_metric, rec.get("metrics", [])))
                and _str_map(rec.get("params", {})) and _str_map(rec.get("tags", {}))):
            return "log with mistyped fields"
    elif op == "artifact":
        if not (isinstance(rec.get("path"), str) and _opt_str(rec.get("artifact_path"))):
            return "artifact with mistyped fields"
        if roots is not None:
            real = Path(rec["path"]).resolve()  # symlinks resolved: a link out of the work dir is out
            if not any(real == r or r in real.parents for r in roots):
                return f"artifact {rec['path']} outside this sweep's job dirs"
    elif op == "finish":
        if not (rec.get("status") in _STATUSES and _int(rec.get("end_ms")) and _opt_str(rec.get("identity"))
                and _str_map(rec.get("tags", {}))):
            return "finish with mistyped fields"
    return None


@dataclass
class _Read:
    header: dict | None = None
    ops: list[dict] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)
    acked: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def _read(path: Path, experiment: str | None = None, roots: list[Path] | None = None) -> _Read:
    out = _Read()
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    last = len(lines) - 1  # lines[last] is what follows the final newline: b"" unless cut short
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.bad.append((no, "not UTF-8"))
            continue
        except json.JSONDecodeError:
            if no - 1 == last:
                continue  # the line the crash cut short: it never reached MLflow either way
            out.bad.append((no, "not JSON"))
            continue
        why = None
        if not isinstance(rec, dict):
            why = "not a JSON object"
        elif "journal" in rec:
            if no != 1 or not isinstance(rec.get("tracking_uri"), str) or not _opt_str(rec.get("experiment")):
                why = "a header that is not the first line or is mistyped"
            else:
                out.header = rec
        elif "ack" in rec:
            if _int(rec["ack"]):
                out.acked = max(out.acked, rec["ack"])
            else:
                why = "an ack that is not a count"
        elif "run" in rec:
            if isinstance(rec["run"], str) and _KEY.match(rec["run"]) and isinstance(rec.get("run_id"), str) \
                    and _RUN_ID.match(rec["run_id"]):
                out.runs[rec["run"]] = rec["run_id"]
            else:
                why = "a run mapping with mistyped fields"
        elif "op" in rec:
            why = _op_problem(rec, experiment, roots)
            if why is None:
                out.ops.append(rec)
        else:
            why = "an unknown record"
        if why:
            out.bad.append((no, why))
    return out


def _warn_bad(path: Path, bad: list[tuple[int, str]], what: str) -> None:
    no, why = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    log.warning("tracking journal %s: line %d is %s%s; skipped, %s", path, no, why, more, what)


def adopt_orphans(directory: str | os.PathLike, tracking_uri: str, own: Path, experiment: str | None = None,
                  artifact_roots: list[Path] | None = None) -> Orphans:
    """Lock and read every journal in `directory` whose process is gone and whose tracking
    URI (and experiment, when the journal names one) is ours; their files stay locked by us
    until Orphans.release(). A replayed op may only name our experiment and upload files under
    `artifact_roots` (resolved); anything else is a malformed line. A malformed line costs one
    warning naming the file and line and moves the file aside (*.corrupt) once its good lines
    are safe: a bad file never blocks the work dir, nor is it read again."""
    out = Orphans()
    uri = redact(tracking_uri)
    roots = None if artifact_roots is None else [Path(r).resolve() for r in artifact_roots]
    for path in sorted(Path(directory).glob("journal-*.jsonl")):
        if path == own:
            continue
        if path.is_symlink() or not path.is_file():
            log.warning("tracking journal %s is not a regular file; moved aside", path)
            _move_aside(path)
            continue
        try:
            f = open(path, "a", encoding="utf-8")
        except OSError as e:
            log.warning("tracking journal %s unreadable (%s); skipped", path, e.strerror)
            continue
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()  # a live tracker owns it
            continue
        try:
            rd = _read(path, experiment, roots)
        except OSError as e:
            f.close()
            log.warning("tracking journal %s unreadable (%s); skipped", path, e.strerror)
            continue
        if rd.header is None and not rd.ops and not rd.bad:
            path.unlink(missing_ok=True)  # died before its first line: nothing to replay
            f.close()
            continue
        if rd.header is None:  # whose store? unknowable: keep it for a human, never replay it
            _warn_bad(path, rd.bad or [(1, "not a journal header")], "file moved aside as *.corrupt")
            _move_aside(path)
            f.close()
            continue
        theirs = rd.header.get("experiment")
        if rd.header["tracking_uri"] not in (uri, tracking_uri) or (theirs is not None and theirs != experiment):
            f.close()  # another store's or another sweep's journal: its own Tracker replays it
            continue
        if rd.bad:
            _warn_bad(path, rd.bad, "file moved aside as *.corrupt")
        pending = [op for op in rd.ops if op["seq"] > rd.acked]
        if pending:
            log.warning("replaying %d tracking calls from %s (a driver that died, or a store that went away)",
                        len(pending), path.name)
        # the calls MLflow had acknowledged come too, marked: the writer replays them only into a
        # store that lacks their run (the store was deleted or replaced since; issue 20)
        for op in rd.ops:
            if op["seq"] <= rd.acked:
                op["_history"] = True
        out.ops.extend(rd.ops)
        out.runs.update(rd.runs)
        out._held.append((path, f, bool(rd.bad)))
    return out
