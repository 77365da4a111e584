"""The management API's URLs and JSON shapes (pure: no I/O)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

from durafn.http import HttpRequest, HttpResponse
from durafn.models import FailureDetails, format_datetime
from durafn.replay.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
)

WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
TASK_HUB = "durafn"


def base_url_of(req: HttpRequest) -> str:
    """``scheme://host:port`` of a request, honouring the Host header it came with."""
    scheme, _, rest = req.url.partition("://")
    host = req.headers.get("host") or rest.split("/", 1)[0]
    return f"{scheme or 'http'}://{host}"


def management_payload(base_url: str, instance_id: str, code: str | None = None) -> dict[str, str]:
    """The check-status payload: ``id`` and the absolute management URLs of one instance."""
    root = f"{base_url.rstrip('/')}{WEBHOOK_PREFIX}/instances/{quote(instance_id, safe='')}"
    params = {"taskHub": TASK_HUB, "connection": "Storage"}
    if code:
        params["code"] = code
    query = urlencode(params)
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{root}?{query}",
        "sendEventPostUri": f"{root}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{root}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{root}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{root}?{query}",
        "restartPostUri": f"{root}/restart?{query}",
        "suspendPostUri": f"{root}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{root}/resume?reason={{text}}&{query}",
    }


def check_status_response(payload: dict[str, str]) -> HttpResponse:
    """202 Accepted with the payload as JSON and ``Location`` at the status URL."""
    return HttpResponse(
        json.dumps(payload),
        status_code=202,
        headers={"Location": payload["statusQueryGetUri"], "Retry-After": "1"},
        mimetype="application/json",
    )


def _decoded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def history_to_json(events: list[HistoryEvent], show_output: bool) -> list[dict[str, Any]]:
    """History as the status API shows it: Durable Task event names, PascalCase fields.

    OrchestratorStarted markers are left out (as Azure does); completions carry the Name and
    ScheduledTime of the task they complete.
    """
    scheduled: dict[int, TaskScheduled | SubOrchestrationInstanceCreated] = {}
    out: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, OrchestratorStarted):
            continue
        item: dict[str, Any] = {
            "EventType": event.event_type,
            "Timestamp": format_datetime(event.timestamp),
        }
        if isinstance(event, (TaskScheduled, SubOrchestrationInstanceCreated)):
            scheduled[event.task_id] = event
        name = getattr(event, "name", None)
        task_id = getattr(event, "task_id", None)
        origin = scheduled.get(task_id) if task_id is not None else None
        if name is None and origin is not None:
            name = origin.name
            item["ScheduledTime"] = format_datetime(origin.timestamp)
        if name is not None:
            item["Name"] = name
            item["FunctionName"] = name
        if isinstance(event, SubOrchestrationInstanceCreated):
            item["InstanceId"] = event.instance_id
        fire_at = getattr(event, "fire_at", None)
        if fire_at is not None:
            item["FireAt"] = format_datetime(fire_at)
        if isinstance(event, ExecutionCompleted):
            item["OrchestrationStatus"] = event.status.value
        reason = getattr(event, "reason", None)
        if reason is not None:
            item["Reason"] = reason
        if show_output:
            for field, key in (("input", "Input"), ("result", "Result")):
                if hasattr(event, field):
                    item[key] = _decoded(getattr(event, field))
            failure: FailureDetails | None = getattr(event, "failure", None)
            if failure is not None:
                item["FailureDetails"] = failure.to_json()
        if isinstance(event, ExecutionStarted) and event.parent_instance_id:
            item["ParentInstanceId"] = event.parent_instance_id
        out.append(item)
    return out
