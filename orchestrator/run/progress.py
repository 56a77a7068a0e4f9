"""The sweep on the terminal: jobs by state, the best val_bpb so far, an ETA.

A rich Live table when stdout is a terminal; otherwise (a Ray job's log, CI) one plain line
per change of the state counts, so logs stay readable. The driver calls `update(report,
running)` after every event; rendering is throttled here.
"""
from __future__ import annotations

import time
from collections import defaultdict

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["SweepProgress", "estimate_eta"]

STATES = ("pending", "ready", "running", "stopping", "finished", "reused", "pruned", "failed", "skipped", "cancelled")


def estimate_eta(report, running: dict | None = None) -> float | None:
    """Seconds left: each unfinished job costs the mean duration of its kind seen so far,
    divided by the number of jobs running side by side. None until one job of a kind ended."""
    durations = defaultdict(list)
    for o in report.outcomes.values():
        if o.state == "finished" and o.started and o.ended:
            durations[o.job.kind].append(o.ended - o.started)
    left, unknown = 0.0, False
    n_running = 0
    now = time.time()
    for o in report.outcomes.values():
        if o.state in ("pending", "ready", "running"):
            d = durations.get(o.job.kind)
            if not d:
                unknown = True
                continue
            mean = sum(d) / len(d)
            if o.state == "running":
                n_running += 1
                left += max(0.0, mean - (now - (o.started or now)))
            else:
                left += mean
    if unknown:  # a kind with no finished job yet: no honest estimate (never `ETA=0m00s` with jobs pending)
        return None
    return left / max(1, n_running)


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class SweepProgress:
    def __init__(self, console: Console | None = None, live: bool | None = None, min_interval_s: float = 0.25,
                 line_interval_s: float = 5.0, heartbeat_s: float = 30.0):
        self.console = console or Console()
        self.live_mode = self.console.is_terminal if live is None else live
        self.min_interval_s = min_interval_s
        self._live: Live | None = None
        self._last_render = 0.0
        self._last_line = ""
        self.line_interval_s = line_interval_s
        self._last_line_t = 0.0
        self.heartbeat_s = heartbeat_s  # plain mode: a line at least this often, counts changed or not

    def _table(self, report, running: dict | None = None) -> Group:
        counts = report.counts()
        by_kind = defaultdict(lambda: defaultdict(int))
        for o in report.outcomes.values():
            by_kind[o.job.kind][o.state] += 1
        t = Table(title=f"sweep {report.plan.sweep_name}", title_justify="left")
        t.add_column("kind")
        shown = [s for s in STATES if counts.get(s)]
        for s in shown:
            t.add_column(s, justify="right")
        for kind in sorted(by_kind):
            t.add_row(kind, *[str(by_kind[kind].get(s, 0) or "") for s in shown])
        from orchestrator.cli.run import headline

        elapsed = time.time() - report.started
        eta = estimate_eta(report)
        lines = [headline(report) + f"   elapsed {_fmt_s(elapsed)}" + (f"   ETA {_fmt_s(eta)}" if eta is not None else "")]
        lines += [f"  {name}: {what}" for name, what in sorted((running or {}).items())]  # live gangs
        return Group(t, Text("\n".join(lines), no_wrap=True, overflow="ellipsis"))

    def _line(self, report) -> str:
        """The counts and the best compliant single seed so far, named as one (a non-compliant
        score never heads it; the winner's seed mean is the final table's)."""
        counts = report.counts()
        best = report.best(compliant=True)
        parts = [f"{s}={counts[s]}" for s in STATES if counts.get(s)]
        bpb = f"best compliant seed val_bpb={best['val_bpb']:.5f}" if best else "best compliant seed val_bpb=-"
        return f"golf: {' '.join(parts)} {bpb}"

    def _timing(self, report) -> str:
        eta = estimate_eta(report)
        return f" elapsed={_fmt_s(time.time() - report.started)}" + (f" ETA={_fmt_s(eta)}" if eta is not None else "")

    def start(self, report) -> None:
        if self.live_mode:
            self._live = Live(self._table(report), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def update(self, report, running: dict | None = None) -> None:
        now = time.time()
        if self._live is not None:
            if now - self._last_render >= self.min_interval_s:
                self._live.update(self._table(report, running))
                self._last_render = now
            return
        # plain mode (logs): a line when the counts changed, at most every line_interval_s, and
        # one every heartbeat_s regardless (elapsed and ETA), so a quiet log still shows life
        if now - self._last_line_t >= self.line_interval_s:
            self._print_line(report, force=now - self._last_line_t >= self.heartbeat_s)

    def _print_line(self, report, force: bool = False) -> None:
        line = self._line(report)
        if line != self._last_line or force:
            self.console.print(line + self._timing(report), highlight=False, markup=False, soft_wrap=True)
            self._last_line = line
            self._last_line_t = time.time()

    def stop(self, report) -> None:
        if self._live is None:
            self._print_line(report)
        if self._live is not None:
            self._live.update(self._table(report))
            self._live.stop()
            self._live = None
