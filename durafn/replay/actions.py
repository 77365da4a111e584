"""Actions: the decisions one orchestration step returns for the runtime to make durable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from durafn.models import FailureDetails
from durafn.replay.history import EventRaised


@dataclass(frozen=True, slots=True)
class ScheduleActivity:
    """Run activity ``name`` with ``input`` (JSON text); its outcome returns as ``task_id``."""

    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True, slots=True)
class CreateTimer:
    """Deliver TimerFired for task ``task_id`` at ``fire_at``."""

    task_id: int
    fire_at: datetime


@dataclass(frozen=True, slots=True)
class StartSubOrchestration:
    """Start orchestrator ``name`` as child ``instance_id``; its outcome returns as ``task_id``."""

    task_id: int
    name: str
    instance_id: str
    input: str | None


@dataclass(frozen=True, slots=True)
class CompleteOrchestration:
    """The orchestrator returned ``result`` (JSON text)."""

    result: str | None


@dataclass(frozen=True, slots=True)
class FailOrchestration:
    """The orchestrator raised, or its replay was nondeterministic."""

    failure: FailureDetails


@dataclass(frozen=True, slots=True)
class ContinueOrchestrationAsNew:
    """Restart with fresh history and ``input``, keeping the unconsumed ``carryover_events``."""

    input: str | None
    carryover_events: tuple[EventRaised, ...] = ()


Action = (
    ScheduleActivity
    | CreateTimer
    | StartSubOrchestration
    | CompleteOrchestration
    | FailOrchestration
    | ContinueOrchestrationAsNew
)
"""Any decision an orchestration step can return."""

TERMINAL_ACTIONS = (CompleteOrchestration, FailOrchestration, ContinueOrchestrationAsNew)
