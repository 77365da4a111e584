"""durafn: durable functions in pure Python, with the API of Azure Durable Functions for Python."""

from durafn.app import App, Blueprint, DFApp
from durafn.client import DurableOrchestrationClient, PurgeHistoryResult, StatusPage
from durafn.cron import CronScheduler, TimerRequest
from durafn.errors import (
    AppLoadError,
    AppValidationError,
    BadRequestError,
    DurafnError,
    FunctionNotFoundError,
    HostRequestError,
    InstanceExistsError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    InvalidInstanceStateError,
    NonDeterminismError,
    OrchestrationTimeoutError,
    PayloadTooLargeError,
    ScaffoldError,
    SerializationError,
    StoreLockedError,
    StoreSchemaError,
    TaskFailedError,
    UnauthorizedError,
)
from durafn.http import AuthLevel, HttpRequest, HttpResponse
from durafn.models import (
    DurableOrchestrationStatus,
    EntityId,
    InstanceQuery,
    OrchestrationRuntimeStatus,
    RetryOptions,
)
from durafn.replay.context import DurableOrchestrationContext
from durafn.replay.tasks import Task
from durafn.runtime import Runtime, RuntimeConfig

__version__ = "0.1.0"

__all__ = [
    "App",
    "AppLoadError",
    "AppValidationError",
    "AuthLevel",
    "BadRequestError",
    "Blueprint",
    "CronScheduler",
    "DFApp",
    "DurableOrchestrationClient",
    "DurableOrchestrationContext",
    "DurableOrchestrationStatus",
    "DurafnError",
    "EntityId",
    "FunctionNotFoundError",
    "HostRequestError",
    "HttpRequest",
    "HttpResponse",
    "InstanceExistsError",
    "InstanceNotFoundError",
    "InstanceQuery",
    "InvalidInstanceIdError",
    "InvalidInstanceStateError",
    "NonDeterminismError",
    "OrchestrationRuntimeStatus",
    "OrchestrationTimeoutError",
    "PayloadTooLargeError",
    "PurgeHistoryResult",
    "RetryOptions",
    "Runtime",
    "RuntimeConfig",
    "ScaffoldError",
    "SerializationError",
    "StatusPage",
    "StoreLockedError",
    "StoreSchemaError",
    "Task",
    "TaskFailedError",
    "TimerRequest",
    "UnauthorizedError",
    "__version__",
]

for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        # the public path is durafn.X, whatever private module defines it
        _obj.__module__ = "durafn"
del _name, _obj
