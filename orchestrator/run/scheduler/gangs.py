"""Gangs: a training job's own group of ranks, started, handed to a waiting job of the same shape
when it ends (its group is held, its ranks are up), dropped (a mixin of the Scheduler)."""
from __future__ import annotations

from typing import Any

from orchestrator import kinds
from orchestrator.run.scheduler.ports import Gang
from orchestrator.run.scheduler.states import one_line

__all__ = ["Gangs"]


class Gangs:
    def _start_gang(self, out: Any) -> bool:
        job = out.job
        if not self._fits(out):  # a STRICT_PACK group larger than any node
            return False
        try:
            extra = self.hooks.prepare(job)  # a script job carries its files (checked against the plan)
        except Exception as e:  # noqa: BLE001 - the job cannot start; the sweep goes on
            self._cannot_start(out, one_line(e))
            return False
        attempt = self._attempt(out, extra)
        # its kind's shape: a script job is ONE actor with all its GPUs (torchrun starts the ranks)
        ranks, cpus = kinds.of(job).gang_shape(job, self.use_gpus)
        gang = self.launcher.start_gang(attempt, ranks=ranks, gpus=job.gpus or 0, use_gpus=self.use_gpus,
                                        cpus_per_rank=cpus)
        self.gangs[job.identity] = gang
        for ref in gang.pending():
            self.inflight[ref] = ("gang", gang, job.identity)
        return True

    def _reuse_gang(self, gang: Gang) -> bool:
        """Hand a waiting gang's job (same shape) to this finished one: its placement group is
        held and its ranks are up, which saves the waiting job a placement and process start."""
        for ident, g in self.gangs.items():
            if g.phase == "placing" and g.ranks == gang.ranks and g.bundle == gang.bundle:
                for r in g.pending():
                    self.inflight.pop(r, None)
                g.release()
                gang.reassign(g.attempt)
                self.outcomes[ident].placed = self.clock()  # it takes held resources: no placement
                self.gangs[ident] = gang
                for r in gang.pending():
                    self.inflight[r] = ("gang", gang, ident)
                return True
        return False

    def _drop_gang(self, where: str, host: Any, ident: str) -> None:
        if where == "gang":
            for r in host.pending():
                self.inflight.pop(r, None)
            host.release()
            self.gangs.pop(ident, None)
