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

import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Journal", "Orphans", "adopt_orphans"]

log = logging.getLogger("golf.tracking")

# rewrite the journal once it is fully acknowledged and larger than this
_COMPACT_BYTES = 32 * 1024 * 1024


class Journal:
    def __init__(self, directory: str | os.PathLike, tracking_uri: str):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        name = f"journal-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.path = self.dir / name
        self._f = open(self.path, "a", encoding="utf-8")
        fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock = threading.Lock()
        self.last_seq = 0
        self.acked = 0
        self._runs: dict[str, str] = {}
        self.broken = False  # a write failed: a crash now could lose calls
        self._header()

    def _header(self) -> None:
        self._write({"journal": 1, "tracking_uri": self.tracking_uri, "pid": os.getpid(),
                     "host": socket.gethostname()})

    def _write(self, record: dict) -> None:
        try:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._f.flush()
        except (OSError, ValueError) as e:  # disk full, file closed: never raise into a job
            if not self.broken:
                log.warning("tracking journal %s not written (%s): calls are buffered in "
                            "memory only until the disk recovers", self.path, e)
            self.broken = True

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
    """What dead journals left: ops to replay (in order) and the run ids they had been given."""

    ops: list[dict] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)
    _held: list = field(default_factory=list)

    def release(self) -> None:
        """Delete the adopted journals (call once their ops are safe in our own journal)."""
        for path, f in self._held:
            path.unlink(missing_ok=True)
            f.close()
        self._held.clear()


def _read(path: Path) -> tuple[dict | None, list[dict], dict[str, str], int]:
    header, ops, runs, acked = None, [], {}, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the crash: it never reached MLflow either way
            if "journal" in rec:
                header = rec
            elif "ack" in rec:
                acked = max(acked, rec["ack"])
            elif "run" in rec:
                runs[rec["run"]] = rec["run_id"]
            elif "op" in rec:
                ops.append(rec)
    return header, ops, runs, acked


def adopt_orphans(directory: str | os.PathLike, tracking_uri: str, own: Path) -> Orphans:
    """Lock and read every journal in `directory` whose process is gone and whose tracking
    URI is ours; their files stay locked by us until Orphans.release()."""
    out = Orphans()
    for path in sorted(Path(directory).glob("journal-*.jsonl")):
        if path == own:
            continue
        f = open(path, "a", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()  # a live tracker owns it
            continue
        header, ops, runs, acked = _read(path)
        if header is None and not ops:
            path.unlink(missing_ok=True)  # died before its first line: nothing to replay
            f.close()
            continue
        if header is None or header.get("tracking_uri") != tracking_uri:
            f.close()
            continue
        pending = [op for op in ops if op["seq"] > acked]
        if pending:
            log.warning("replaying %d tracking calls from %s (a driver that died)",
                        len(pending), path.name)
        out.ops.extend(pending)
        out.runs.update(runs)
        out._held.append((path, f))
    return out
