"""Where and when a ready job runs (orchestrator.run.scheduler.core.Scheduler, its module doc):
job states (states), the Launcher/Hooks/Gang it drives (ports), worker slots and placement
(placement), gangs (gangs), stopping one job (stopping)."""
from orchestrator.run.scheduler.core import Scheduler
from orchestrator.run.scheduler.placement import SHORT_MIX_S, Slot
from orchestrator.run.scheduler.ports import Gang, Hooks, Launcher
from orchestrator.run.scheduler.states import LEGAL, TERMINAL, IllegalTransition, JobState, one_line, transition

__all__ = ["IllegalTransition", "JobState", "Gang", "Hooks", "LEGAL", "Launcher", "SHORT_MIX_S",
           "Scheduler", "Slot", "TERMINAL", "one_line", "transition"]
