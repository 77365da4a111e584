"""Rewind: which history a Failed instance goes back to, and which failed work runs again (pure).

Only the failures of the step that failed the instance are undone: failures in earlier steps were
handled by the orchestrator (caught, or retried), so replaying them must give the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from durafn.replay.history import (
    ExecutionCompleted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
)


@dataclass(frozen=True)
class RewindPlan:
    """The history to keep, the activities to schedule again and the children to rewind."""

    history: list[HistoryEvent]
    activities: list[TaskScheduled]
    children: list[str]

    @property
    def has_work(self) -> bool:
        """False when the instance failed in its own code, so a rewind would fail the same way."""
        return bool(self.activities or self.children)


def plan_rewind(history: Sequence[HistoryEvent]) -> RewindPlan:
    """Drop the final ExecutionCompleted and the failures of the final step from ``history``."""
    last_step = max(
        (n for n, event in enumerate(history) if isinstance(event, OrchestratorStarted)), default=0
    )
    activities: dict[int, TaskScheduled] = {}
    children: dict[int, SubOrchestrationInstanceCreated] = {}
    keep: list[HistoryEvent] = []
    rerun: list[TaskScheduled] = []
    rewind_children: list[str] = []
    for n, event in enumerate(history):
        if isinstance(event, TaskScheduled):
            activities[event.task_id] = event
        elif isinstance(event, SubOrchestrationInstanceCreated):
            children[event.task_id] = event
        if isinstance(event, ExecutionCompleted):
            continue
        if n >= last_step and isinstance(event, TaskFailed) and event.task_id in activities:
            rerun.append(activities[event.task_id])
            continue
        if (
            n >= last_step
            and isinstance(event, SubOrchestrationInstanceFailed)
            and event.task_id in children
        ):
            rewind_children.append(children[event.task_id].instance_id)
            continue
        keep.append(event)
    return RewindPlan(keep, rerun, rewind_children)
