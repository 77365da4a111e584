"""A client of a running host's management API, for ``durafn instances``.

Plain ``urllib``, so the CLI needs no HTTP library beyond the standard one. Every failure is a
HostRequestError carrying the host's own ``error`` message, or saying that no host answered.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from durafn.errors import HostRequestError

DEFAULT_URL = "http://127.0.0.1:7071"
WEBHOOKS = "/runtime/webhooks/durabletask"
CONTINUATION_HEADER = "x-ms-continuation-token"
KEY_HEADER = "x-functions-key"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status, its JSON body (None when empty) and its headers."""

    status: int
    body: Any
    headers: dict[str, str]


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    message = body.get("error") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    text = raw.decode("utf-8", "replace").strip()
    return text or "no details given"


class ManagementClient:
    """Calls ``/runtime/webhooks/durabletask`` on the host at ``url`` with an optional key."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        host = urllib.parse.urlsplit(self.url).hostname or ""
        # a proxy configured for the outside world must not swallow calls to this machine
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """One call; HostRequestError for a 4xx/5xx answer or an unreachable host."""
        url = f"{self.url}{WEBHOOKS}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        sent = dict(headers or {})
        if self.key:
            sent[KEY_HEADER] = self.key
        if body is not None:
            sent["content-type"] = "application/json"
        request = urllib.request.Request(url, data=body, headers=sent, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
                status = response.status
                got = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            raise self._refused(exc.code, exc.read()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HostRequestError(
                f"no durafn host is reachable at {self.url} ({reason}). Run 'durafn start' in "
                "your project folder, or point --url (or DURAFN_URL) at the host"
            ) from None
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return Answer(status, parsed, got)

    def _refused(self, status: int, raw: bytes) -> HostRequestError:
        if status == 401:
            return HostRequestError(
                "the host answered 401 Unauthorized: pass its master key with --key or "
                "DURAFN_MASTER_KEY ('durafn keys' in the project folder shows it)",
                status,
            )
        return HostRequestError(f"the host answered {status}: {_error_message(raw)}", status)

    def list_instances(
        self, statuses: list[str] | None = None, prefix: str | None = None, top: int | None = None
    ) -> list[dict[str, Any]]:
        """Instances matching the filters, every page followed (at most ``top`` of them)."""
        query: dict[str, str] = {}
        if statuses:
            query["runtimeStatus"] = ",".join(statuses)
        if prefix:
            query["instanceIdPrefix"] = prefix
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page_size = min(1000, top - len(found)) if top is not None else 1000
            headers = {CONTINUATION_HEADER: token} if token else None
            answer = self.request(
                "GET", "/instances", {**query, "top": str(page_size)}, None, headers
            )
            found.extend(answer.body or [])
            token = answer.headers.get(CONTINUATION_HEADER)
            if not token or (top is not None and len(found) >= top):
                return found

    def get_status(self, instance_id: str, history: bool = False) -> dict[str, Any]:
        """The instance's status JSON (with its history when asked)."""
        query = {"showInput": "true"}
        if history:
            query.update(showHistory="true", showHistoryOutput="true")
        answer = self.request("GET", f"/instances/{_quote(instance_id)}", query)
        body: dict[str, Any] = answer.body
        return body

    def start(
        self, name: str, instance_id: str | None = None, input_json: str | None = None
    ) -> dict[str, Any]:
        """Start orchestrator ``name``; the check-status payload (``id`` and the URLs)."""
        path = f"/orchestrators/{_quote(name)}"
        if instance_id:
            path += f"/{_quote(instance_id)}"
        body = input_json.encode() if input_json is not None else None
        payload: dict[str, Any] = self.request("POST", path, None, body).body
        return payload

    def raise_event(self, instance_id: str, event: str, data_json: str | None = None) -> None:
        """Send event ``event`` with JSON data to the instance."""
        path = f"/instances/{_quote(instance_id)}/raiseEvent/{_quote(event)}"
        body = data_json.encode() if data_json is not None else None
        self.request("POST", path, None, body)

    def act(self, instance_id: str, action: str, reason: str | None = None) -> None:
        """``terminate``, ``suspend`` or ``resume`` the instance, with an optional reason."""
        query = {"reason": reason} if reason else None
        self.request("POST", f"/instances/{_quote(instance_id)}/{action}", query)

    def purge(self, instance_id: str) -> int:
        """Delete a finished instance's history; the number of instances deleted."""
        answer = self.request("DELETE", f"/instances/{_quote(instance_id)}")
        return int((answer.body or {}).get("instancesDeleted", 0))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def format_table(rows: list[list[str]], header: list[str]) -> str:
    """Rows under a header, each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def format_instances(statuses: list[dict[str, Any]]) -> str:
    """A table of instances: id, orchestrator, status, created and last updated times."""
    if not statuses:
        return "No instances."
    keys = ("instanceId", "name", "runtimeStatus", "createdTime", "lastUpdatedTime")
    rows = [[_cell(status.get(key)) for key in keys] for status in statuses]
    return format_table(rows, ["INSTANCE ID", "NAME", "STATUS", "CREATED", "LAST UPDATED"])


def format_status(status: dict[str, Any]) -> str:
    """One instance as ``label: value`` lines, then its history events if it has them."""
    fields = [
        ("Instance", status.get("instanceId")),
        ("Name", status.get("name")),
        ("Status", status.get("runtimeStatus")),
        ("Created", status.get("createdTime")),
        ("Last updated", status.get("lastUpdatedTime")),
    ]
    lines = [f"{label + ':':<15}{_cell(value)}" for label, value in fields]
    for label, key in (("Input", "input"), ("Output", "output"), ("Custom status", "customStatus")):
        value = status.get(key)
        shown = "-" if value is None else json.dumps(value, default=str)
        lines.append(f"{label + ':':<15}{shown}")
    events = status.get("historyEvents")
    if events is not None:
        lines.append(f"History ({len(events)} events):")
        rows = [
            [_cell(e.get("Timestamp")), _cell(e.get("EventType")), _cell(e.get("Name"))]
            for e in events
        ]
        table = format_table(rows, ["TIMESTAMP", "EVENT", "NAME"])
        lines.extend(f"  {line}" for line in table.splitlines())
    return "\n".join(lines)
