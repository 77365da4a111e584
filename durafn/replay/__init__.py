"""The pure replay core: orchestrator generators driven from history events to actions."""

from durafn.replay.context import FUNCTION_NAME_ATTR, DurableOrchestrationContext, function_name
from durafn.replay.executor import OrchestrationExecutor, Step
from durafn.replay.tasks import Task

__all__ = [
    "FUNCTION_NAME_ATTR",
    "DurableOrchestrationContext",
    "OrchestrationExecutor",
    "Step",
    "Task",
    "function_name",
]
