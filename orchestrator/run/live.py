"""golf_core training, live (a part of the driver): rank 0's latest progress event of each running
training job, polled every few seconds (a threaded actor call through the launcher, never
waited on). It feeds the progress display, the prune hook (its train time is the x axis), and
the run's curve: each polled step's train_loss lands on the running run, so a pruned or killed
run keeps the curve it had; the finished result logs only the steps not streamed.

`Live` is a mixin of orchestrator.run.driver._Driver (like orchestrator.run.script_live for a
script's log lines).
"""
from __future__ import annotations

import time

from orchestrator import kinds

__all__ = ["Live"]


class Live:
    def _running_progress(self) -> dict:
        """name -> what a training job is doing ("placing", "step 120 loss 3.2100", ...)."""
        out = {}
        for ident, g in self.sched.gangs.items():
            ev = self.live.get(ident)
            if g.phase == "training" and ev and ev.get("event") == "step":
                out[g.attempt.job.name] = f"step {ev.get('step')} train_loss {ev.get('train_loss', float('nan')):.4f}"
            else:
                out[g.attempt.job.name] = g.phase
        for s in self.sched.slots:
            if s.training is not None:
                ev = self.live.get(s.training)
                out[s.train_name] = (f"step {ev.get('step')} train_loss {ev.get('train_loss', float('nan')):.4f}"
                                     if ev and ev.get("event") == "step" else "training")
        return out

    def _stream_point(self, ident: str, ev: dict) -> None:
        """golf_core's loop, live: its latest step's train_loss (and train time, the x axis a
        pruner and a later `against` read) on the running run, so a pruned or killed run keeps
        the curve it had; the finished result logs only the steps not streamed (_unstreamed)."""
        out = self.report.outcomes.get(ident)
        h = self.track.handles.get(out.run_id) if out is not None else None
        step = ev.get("step")
        if h is None or h.finished or ev.get("event") != "step" or not isinstance(step, int):
            return
        seen = self._streamed.setdefault(ident, set())
        if step in seen or not isinstance(ev.get("train_loss"), (int, float)):
            return
        seen.add(step)
        point = {"train_loss": float(ev["train_loss"])}
        if isinstance(ev.get("elapsed_s"), (int, float)):
            point["curve_train_time_s"] = float(ev["elapsed_s"])
        h.log_metrics(point, step=step)

    def _unstreamed(self, ident: str, result: dict) -> dict:
        """The result with its train_loss_curve less the steps streamed live (each step lands once)."""
        seen = self._streamed.pop(ident, None)
        if not seen:
            return result
        out = dict(result)
        out["train_loss_curve"] = [p for p in result.get("train_loss_curve") or () if int(p[0]) not in seen]
        return out

    def poll_live(self, every_s: float = 2.0) -> None:
        """Rank 0's latest on_progress event of each training job (threaded actor call; never
        waited on: answers are picked up on a later turn of the loop)."""
        if self._live_refs:
            for ref in self.launcher.ready(list(self._live_refs)):
                ident = self._live_refs.pop(ref)
                try:
                    ev = self.launcher.value(ref)
                except Exception:  # noqa: BLE001 - a dying rank: its job's ref reports that
                    continue
                if ev:
                    self.live[ident] = ev
                    k = kinds.of(self.jobs[ident])
                    if k.trains and not k.streams_log:
                        self._stream_point(ident, ev)
                    if self.spend.hook is not None and k.trains and not k.streams_log:
                        # golf_core's loop: its latest step (elapsed_s = its train time); the Board
                        # interpolates between samples, so a rung between two polls is still judged
                        self.intermediate(ident, [ev])
        if time.time() - self._live_t < every_s or self._live_refs:
            return
        self._live_t = time.time()
        for ident, g in self.sched.gangs.items():
            ref = self.launcher.progress(g)
            if ref is not None:
                self._live_refs[ref] = ident
        for s in self.sched.slots:
            if s.training is not None:
                self._live_refs[self.launcher.progress(s.worker)] = s.training
