"""Stopping one running job (a pruner's decision): STOPPING, then PRUNED when its processes are
gone (a mixin of the Scheduler)."""
from __future__ import annotations

from typing import Any

from orchestrator import kinds
from orchestrator.run.scheduler.states import JobState
from workers.contract import JobFailed, JobResult, WorkerLost

__all__ = ["Stopping"]


class Stopping:
    def stop(self, ident: str, reason: str) -> bool:
        """Stop one job (a pruner's decision). Not started yet: PRUNED at once. Running: a script
        gang's process tree is killed and the job ends PRUNED when its attempt returns (with its
        partial train.log); a golf_core gang or a per-GPU worker is released now (its GPUs free
        at once) and the job ends PRUNED. Returns whether the job was stopped."""
        out = self.outcomes[ident]
        if out.state in (JobState.PENDING, JobState.READY):
            self.set_state(out, JobState.PRUNED, reason, event="pruned")
            return True
        if out.state != JobState.RUNNING:
            return False
        self.set_state(out, JobState.STOPPING, reason, event="stopping")
        gang = self.gangs.get(ident)
        if gang is not None and kinds.of(out.job).stops_gracefully and gang.phase == "training":
            self.launcher.stop(gang)  # its train ref returns soon: handle() ends it PRUNED
            return True
        if gang is not None:
            self._drop_gang("gang", gang, ident)
        else:
            for ref, (where, slot, i) in list(self.inflight.items()):
                if i == ident and where == "slot":
                    self.inflight.pop(ref)
                    if slot in self.slots:  # its other queued calls fail on their own
                        self.slots.remove(slot)
                    self.launcher.kill(slot.worker)
        self._prune(out, None)
        return True

    def _stopped(self, out: Any, where: str, host: Any, ref: Any) -> None:
        """A stopped job's attempt came back (its partial files, an error, or a dead worker)."""
        value = None
        try:
            if where == "gang":
                value = self.launcher.advance(host, ref)
                if value is None and host.pending():  # another rank still to return
                    for r in host.pending():
                        self.inflight.setdefault(r, ("gang", host, out.job.identity))
                    return
                self.gangs.pop(out.job.identity, None)
                if not self._reuse_gang(host):  # its ranks go to a waiting gang of its shape
                    host.release()
            else:
                host.inflight.discard(ref)
                value = self.launcher.get(ref)
        except (WorkerLost, JobFailed):
            self._drop_gang(where, host, out.job.identity)
        if (value is not None and not value.failed and kinds.of(out.job).stops_gracefully
                and isinstance((value.result or {}).get("val_bpb"), (int, float))):
            # a late decision: the script had exited 0 with its score line before its processes
            # could be killed, so it trained to its end; it is FINISHED (hooks.succeeded notes the
            # decision), not PRUNED with a full run's score hidden
            self._done(out, value)
            return
        self._prune(out, value)

    def _prune(self, out: Any, value: JobResult | None) -> None:
        self.hooks.pruned(out, value)
        self.set_state(out, JobState.PRUNED, event="pruned")
        self.refresh_ready()
