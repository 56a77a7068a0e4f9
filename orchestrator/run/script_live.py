"""A running script job's log lines as live MLflow metrics (a part of the driver).

The worker parses each line of train_gpt.py's output as it comes (workers.script_runner); the
driver drains the parsed events of every running script job every `every_s` seconds (a
threaded actor call it never waits on) and logs `train_loss` at step N and `val_bpb_step` /
`val_loss_step` through the job's run handle, which batches them into the tracker's queue.
When the job ends, only the points not yet streamed are logged from its result, so every
step lands once. Beside each streamed point its train time goes to `curve_train_time_s` (same
step): a curve keeps its x axis for pruning against it later (orchestrator.plan.reference).
Every drained batch is also handed to the driver's `intermediate(ident, events)`, the prune hook
(orchestrator.run.spend); a pruned job's partial train.log and unstreamed points: `log_partial`.

The log itself streams too (issue 20: "lost logs when a VM died"): the worker sends the lines
since its last report every few seconds (`log` events); the driver appends them to a spool file
and uploads it as the run's `train.log` at most every LIVE_LOG_EVERY_S, so a driver, worker or
node killed mid-run leaves the partial log with its run (closed KILLED by the next driver). The
finished job's own train.log replaces it.

`ScriptLive` is a mixin of orchestrator.run.driver._Driver; it uses the scheduler's gangs
(`sched.gangs`), the driver's report and track (the TrackingAdapter), and reaches the running
actors only through the launcher (`drain`, `ready`, `value`: orchestrator.run.scheduler.Launcher).
"""
from __future__ import annotations

import time
from typing import Any

from orchestrator import kinds
from workers.files import unpack_to

__all__ = ["ScriptLive", "LIVE_LOG_EVERY_S"]

LIVE_LOG_EVERY_S = 5.0  # a running job's train.log artifact is at most this old (plus the worker's 3 s)


class ScriptLive:
    _sl_refs: dict | None = None

    def _sl_state(self) -> tuple[dict, dict, dict]:
        if self._sl_refs is None:
            self._sl_refs, self._sl_cursor, self._sl_logged = {}, {}, {}
            self._sl_t = 0.0
        return self._sl_refs, self._sl_cursor, self._sl_logged

    def poll_script_logs(self, every_s: float = 2.0) -> None:
        refs, cursor, _logged = self._sl_state()
        if refs:
            for ref in self.launcher.ready(list(refs)):
                ident = refs.pop(ref)
                try:
                    nxt, events = self.launcher.value(ref)
                except Exception:  # noqa: BLE001 - a dying actor: its job's own ref reports that
                    continue
                cursor[ident] = nxt
                self._log_events(ident, events)
        for logged in list(_logged.values()):  # lines that came since the last upload, now old enough
            self._upload_log(logged)
        if refs or time.time() - self._sl_t < every_s:
            return
        self._sl_t = time.time()
        for ident, g in self.sched.gangs.items():
            if kinds.of(g.attempt.job).streams_log and g.phase == "training":
                ref = self.launcher.drain(g, cursor.get(ident, 0))
                if ref is not None:
                    refs[ref] = ident

    def _log_events(self, ident: str, events: list[dict], judge: bool = True) -> None:
        if judge:
            self.intermediate(ident, events)
        out = self.report.outcomes.get(ident)
        h = self.track.handles.get(out.run_id) if out is not None else None
        if h is None or h.finished:
            return
        logged = self._sl_state()[2].setdefault(ident, {"step": -1, "val": -1})
        text = "".join(ev["text"] for ev in events if ev.get("event") == "log" and isinstance(ev.get("text"), str))
        if text:
            self._stream_log(ident, out.run_id, h, logged, text)
        for ev in events:
            step = int(ev.get("step") or 0)
            tt = {"curve_train_time_s": ev["train_time_s"]} if isinstance(ev.get("train_time_s"), (int, float)) else {}
            if ev.get("event") == "step" and isinstance(ev.get("train_loss"), (int, float)) and step > logged["step"]:
                h.log_metrics({"train_loss": ev["train_loss"], **tt}, step=step)
                logged["step"] = step
            elif ev.get("event") == "val" and isinstance(ev.get("val_bpb"), (int, float)) and step > logged["val"]:
                h.log_metrics({"val_bpb_step": ev["val_bpb"], "val_loss_step": ev.get("val_loss")}, step=step)
                logged["val"] = step

    def _stream_log(self, ident: str, key: str, h: Any, logged: dict, text: str) -> None:
        """Append a running job's new lines to its spool copy; upload the copy as `train.log`
        when the last upload is LIVE_LOG_EVERY_S old (the tracker reads the file at upload time,
        so an upload carries every line appended until then)."""
        path = logged.get("log_path")
        if path is None:
            d = self.track.spool / f"{ident[:16]}-{key[:8]}-live"
            d.mkdir(parents=True, exist_ok=True)
            path = logged["log_path"] = d / "train.log"
            logged["log_t"] = 0.0
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:  # the driver's own disk: the job's final train.log still goes up
            return
        logged["log_h"], logged["log_dirty"] = h, True
        self._upload_log(logged)

    @staticmethod
    def _upload_log(logged: dict) -> None:
        h = logged.get("log_h")
        if logged.get("log_dirty") and h is not None and not h.finished \
                and time.time() - logged["log_t"] >= LIVE_LOG_EVERY_S:
            logged["log_t"], logged["log_dirty"] = time.time(), False
            h.log_artifact(logged["log_path"])

    def script_result_to_log(self, out: Any, result: dict) -> dict:
        """The finished job's result with the curve points not yet streamed (those are logged
        by the result's `train_loss_curve`; the rest of `val_curve` is logged here)."""
        if not kinds.of(out.job).streams_log:
            return result
        ident = out.job.identity
        self._sl_state()[1].pop(ident, None)
        logged = self._sl_state()[2].pop(ident, {"step": -1, "val": -1})
        h = self.track.handles.get(out.run_id)
        if h is not None:
            if result.get("final_tag"):
                h.set_tags({"golf.final_tag": str(result["final_tag"])})
            for step, loss, bpb in result.get("val_curve") or ():
                if step > logged["val"]:
                    h.log_metrics({"val_bpb_step": bpb, "val_loss_step": loss}, step=int(step))
        trimmed = dict(result)
        trimmed["train_loss_curve"] = [p for p in result.get("train_loss_curve") or () if p[0] > logged["step"]]
        trimmed.pop("val_curve", None)
        return trimmed

    def intermediate(self, ident: str, events: list[dict]) -> None:  # the driver's prune hook
        pass

    def log_partial(self, out: Any, files: dict[str, bytes]) -> None:
        """A pruned script job: the points of its partial train.log not streamed yet, then the
        log itself as an artifact (its curve stays, to the step it was stopped at)."""
        from golf_core.logparse import parse_line
        from workers.script_runner import _event

        log = files.get("train.log")
        if log and kinds.of(out.job).streams_log:
            events = [e for line in log.decode("utf-8", errors="replace").splitlines()
                      if (p := parse_line(line)) is not None and (e := _event(p, 0.0)) is not None]
            h = self.track.handles.get(out.run_id)
            if h is not None and not h.finished:
                self._log_events(out.job.identity, events, judge=False)  # already decided
        self.log_failed_files(out, files)

    def log_failed_files(self, out: Any, files: dict[str, bytes]) -> None:
        """A script that exited non-zero or hit its timeout (FAILED, not retried: it would fail
        again): its train.log is still logged as an artifact."""
        h = self.track.handles.get(out.run_id)
        if h is not None and files:
            d = self.track.spool / f"{out.job.identity[:16]}-{out.run_id[:8]}"
            unpack_to(files, d)
            h.log_artifact(d)
        self._sl_state()[2].pop(out.job.identity, None)
