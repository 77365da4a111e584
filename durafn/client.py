"""DurableOrchestrationClient: start, query and manage orchestration instances (SPEC §4)."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from durafn.errors import (
    BadRequestError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    InvalidInstanceStateError,
    OrchestrationTimeoutError,
)
from durafn.http import HttpRequest, HttpResponse
from durafn.management import (
    base_url_of,
    check_status_response,
    history_to_json,
    management_payload,
)
from durafn.models import (
    ACTIVE_STATUSES,
    DurableOrchestrationStatus,
    InstanceQuery,
    OrchestrationRuntimeStatus,
    validate_event_name,
    validate_instance_id,
)
from durafn.replay.context import function_name
from durafn.replay.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
)
from durafn.replay.rewind import plan_rewind
from durafn.serialization import decode, encode
from durafn.store.aio import AsyncStore
from durafn.store.base import InstanceRecord, NewActivity, Work
from durafn.store.clock import Clock, StoreClock, utc_now

if TYPE_CHECKING:
    from durafn.app import App

DEFAULT_STORAGE = "sqlite:///.durafn/durafn.db"
DEFAULT_BASE_URL = "http://127.0.0.1:7071"

_TERMINAL = frozenset(OrchestrationRuntimeStatus) - ACTIVE_STATUSES


class RuntimeSignals(Protocol):
    """What a client in the same process as the workers uses to avoid polling."""

    def announce(self, work: Work) -> None:
        """``work`` was added to the store: wake the workers it is for now."""

    async def wait_for_finish(self, instance_id: str, timeout: float) -> InstanceRecord | None:
        """The instance as it finished in this process within ``timeout`` seconds, else None."""

    def runs_here(self, instance_id: str) -> bool:
        """Whether the instance runs live in the workers' process, unfinished."""

    async def start(
        self, instance_id: str, name: str, input: str | None, execution_id: str, now: datetime
    ) -> bool:
        """Create the instance with its first step in the workers' process; False if not."""


@dataclass(frozen=True)
class PurgeHistoryResult:
    """How many instances a purge deleted."""

    instances_deleted: int


@dataclass(frozen=True)
class StatusPage:
    """One page of a status query and the token for the next page (None on the last)."""

    statuses: list[DurableOrchestrationStatus]
    continuation_token: str | None


def to_status(
    record: InstanceRecord,
    *,
    show_input: bool = True,
    history: list[HistoryEvent] | None = None,
    show_history_output: bool = False,
) -> DurableOrchestrationStatus:
    """A stored instance as the status object the client and HTTP API return."""
    return DurableOrchestrationStatus(
        name=record.name,
        instance_id=record.instance_id,
        runtime_status=record.status,
        input_=decode(record.input) if show_input else None,
        output=decode(record.output),
        custom_status=decode(record.custom_status),
        created_time=record.created_time,
        last_updated_time=record.last_updated_time,
        history=history_to_json(history, show_history_output) if history is not None else None,
    )


class DurableOrchestrationClient:
    """Starts, queries and manages orchestrations; injected by ``durable_client_input``."""

    def __init__(
        self,
        store: AsyncStore,
        *,
        app: App | None = None,
        signals: RuntimeSignals | None = None,
        base_url: str = DEFAULT_BASE_URL,
        management_key: str | None = None,
        owns_store: bool = False,
    ) -> None:
        self._store = store
        self._app = app
        self._signals = signals
        self._owns_store = owns_store
        self.base_url = base_url
        self.management_key = management_key

    @classmethod
    def from_storage(
        cls, url: str | None = None, *, app: App | None = None, clock: Clock = utc_now
    ) -> DurableOrchestrationClient:
        """A client on the store at ``url`` (default: ``.durafn/durafn.db``), without a host.

        Work it starts is run by a host (``durafn start`` or ``df.Runtime``) on the same store.
        ``clock`` is this machine's; on PostgreSQL the client stamps its work by the server's
        clock, measuring how far this one is off it every minute or when this one steps.
        """
        from durafn.store import open_store

        store = AsyncStore(open_store(url or DEFAULT_STORAGE), StoreClock(clock))
        return cls(store, app=app, owns_store=True)

    async def _now(self) -> datetime:
        """The time by the store's clock, its offset measured again first when it is stale (a
        client outside a host has no lease renewals to keep it fresh).
        """
        await self._store.sync_clock()
        return self._store.clock()

    def for_request(self, req: HttpRequest) -> DurableOrchestrationClient:
        """A view of this client with management URLs built from ``req``'s scheme, host and port."""
        return self.with_base_url(base_url_of(req))

    def with_base_url(self, base_url: str) -> DurableOrchestrationClient:
        """A view of this client (same store) whose management URLs start with ``base_url``."""
        clone = copy.copy(self)
        clone._owns_store = False
        clone.base_url = base_url.rstrip("/")
        return clone

    async def close(self) -> None:
        """Close the store if this client opened it (``from_storage``)."""
        if self._owns_store:
            await asyncio.get_running_loop().run_in_executor(None, self._store.close)

    async def __aenter__(self) -> DurableOrchestrationClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- starting -------------------------------------------------------------------------------

    async def start_new(
        self,
        orchestration_function_name: str | Callable[..., Any],
        instance_id: str | None = None,
        client_input: Any = None,
    ) -> str:
        """Start an orchestration and return its instance id (a random one if none is given).

        Raises InstanceExistsError if the id is Pending, Running or Suspended (decided atomically
        in the store) and FunctionNotFoundError for an unknown orchestrator name.
        """
        name = function_name(orchestration_function_name)
        if self._app is not None:
            from durafn.functions import FunctionKind

            name = self._app.get_function(FunctionKind.ORCHESTRATOR, name).name
        instance_id = uuid.uuid4().hex if instance_id is None else validate_instance_id(instance_id)
        payload = encode(client_input, f"input of orchestrator '{name}'")
        execution_id, now = uuid.uuid4().hex, await self._now()
        # In the workers' process, the instance is created together with its first step.
        if self._signals is not None and await self._signals.start(
            instance_id, name, payload, execution_id, now
        ):
            return instance_id
        store = self._store.store
        await self._store.run(store.create_instance, instance_id, name, payload, execution_id, now)
        self._work_added()
        return instance_id

    def _work_added(self, work: Work = Work.ORCHESTRATIONS) -> None:
        if self._signals is not None:
            self._signals.announce(work)

    # -- reading --------------------------------------------------------------------------------

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> DurableOrchestrationStatus | None:
        """The instance's status, or None when there is no such instance."""
        validate_instance_id(instance_id)
        record = await self._store.run(self._store.store.get_instance, instance_id)
        if record is None:
            return None
        history = None
        if show_history:
            history = await self._store.run(self._store.store.get_history, instance_id)
        return to_status(
            record, show_input=show_input, history=history, show_history_output=show_history_output
        )

    async def query(self, query: InstanceQuery, show_input: bool = False) -> StatusPage:
        """One page of instances matching ``query``, with the continuation token for the next."""
        if query.instance_id_prefix:
            try:
                validate_instance_id(query.instance_id_prefix)
            except InvalidInstanceIdError as exc:
                raise BadRequestError(f"instance id prefix: {exc}") from None
        records, token = await self._store.run(self._store.store.query_instances, query)
        return StatusPage([to_status(r, show_input=show_input) for r in records], token)

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[DurableOrchestrationStatus]:
        """Every instance matching the filters (all pages), oldest first."""
        query = InstanceQuery(
            runtime_status=frozenset(runtime_status) if runtime_status else None,
            created_time_from=created_time_from,
            created_time_to=created_time_to,
            instance_id_prefix=instance_id_prefix,
            top=500,
        )
        statuses: list[DurableOrchestrationStatus] = []
        while True:
            page = await self.query(query, show_input=True)
            statuses.extend(page.statuses)
            if page.continuation_token is None:
                return statuses
            query = replace(query, continuation_token=page.continuation_token)

    async def get_status_all(self) -> list[DurableOrchestrationStatus]:
        """Every instance in the store, oldest first."""
        return await self.get_status_by()

    async def wait_for_completion(
        self, instance_id: str, timeout: float = 60.0
    ) -> DurableOrchestrationStatus:
        """Wait until the instance is Completed, Failed or Terminated and return its status.

        Raises OrchestrationTimeoutError after ``timeout`` seconds, InstanceNotFoundError if the
        instance does not exist.
        """
        deadline = time.monotonic() + timeout
        interval = 0.01
        if self._signals is not None and self._signals.runs_here(instance_id):
            # no read first: the finish, committed here, is handed over as it happens; the wait
            # registers before anything else runs, so it cannot miss it
            finished = await self._signals.wait_for_finish(instance_id, min(timeout, 1.0))
            if finished is not None:
                return to_status(finished)
        status = await self.get_status(instance_id)
        while True:
            if status is None:
                raise InstanceNotFoundError(instance_id)
            if status.runtime_status in _TERMINAL:
                return status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OrchestrationTimeoutError(instance_id, timeout)
            if self._signals is not None:
                # in the workers' process the last step hands its result over; another host's
                # finish is seen by reading again at least once a second
                finished = await self._signals.wait_for_finish(instance_id, min(remaining, 1.0))
                if finished is not None:
                    return to_status(finished)
            else:
                await asyncio.sleep(min(interval, remaining))
                interval = min(interval * 2, 0.5)
            status = await self.get_status(instance_id)

    # -- acting on instances --------------------------------------------------------------------

    async def _send(
        self,
        instance_id: str,
        event: HistoryEvent,
        allowed: frozenset[OrchestrationRuntimeStatus],
        action: str,
    ) -> None:
        validate_instance_id(instance_id)
        store = self._store.store
        await self._store.run(
            store.enqueue_message,
            instance_id,
            event,
            await self._now(),
            allowed=allowed,
            action=action,
        )
        self._work_added()

    async def raise_event(self, instance_id: str, event_name: str, event_data: Any = None) -> None:
        """Send ``event_name`` to the instance; it is kept until the orchestrator waits for it."""
        validate_event_name(event_name)
        data = encode(event_data, f"data of event '{event_name}'")
        event = EventRaised(timestamp=await self._now(), name=event_name, input=data)
        await self._send(instance_id, event, ACTIVE_STATUSES, "raise an event to")

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminate a Pending, Running or Suspended instance; its output becomes ``reason``."""
        event = ExecutionTerminated(timestamp=await self._now(), reason=reason)
        await self._send(instance_id, event, ACTIVE_STATUSES, "terminate")

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Suspend an active instance: it keeps its messages but processes none until resumed."""
        event = ExecutionSuspended(timestamp=await self._now(), reason=reason)
        await self._send(instance_id, event, ACTIVE_STATUSES, "suspend")

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance."""
        event = ExecutionResumed(timestamp=await self._now(), reason=reason)
        await self._send(instance_id, event, ACTIVE_STATUSES, "resume")

    async def rewind(self, instance_id: str, reason: str | None = None) -> None:
        """Retry the failed work of a Failed instance: the activities and sub-orchestrations whose
        failure failed it run again, and the orchestration goes on from there.

        Raises InstanceNotFoundError, or InvalidInstanceStateError if it is not Failed or failed
        in its own code (a rewind would fail the same way: fix the code and restart it instead).
        """
        del reason  # accepted for Azure compatibility; history has no event to record it in
        validate_instance_id(instance_id)
        store = self._store.store
        record = await self._store.run(store.get_instance, instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        if record.status is not OrchestrationRuntimeStatus.Failed:
            raise InvalidInstanceStateError(instance_id, record.status.value, "rewind")
        plan = plan_rewind(await self._store.run(store.get_history, instance_id))
        if not plan.has_work:
            raise InvalidInstanceStateError(
                instance_id,
                "Failed in its own code, not in an activity or sub-orchestration",
                "rewind",
            )
        for child in plan.children:
            child_record = await self._store.run(store.get_instance, child)
            if child_record is None or child_record.status is not OrchestrationRuntimeStatus.Failed:
                state = "gone" if child_record is None else child_record.status.value
                raise InvalidInstanceStateError(
                    instance_id,
                    f"waiting on sub-orchestration '{child}', which is {state}",
                    "rewind",
                )
        work = [NewActivity(t.task_id, t.name, t.input) for t in plan.activities]
        await self._store.run(
            store.rewind_instance,
            instance_id,
            record.history_length,
            plan.history,
            work,
            await self._now(),
        )
        # the parent is Running again first, so a rewound child can report back to it
        for child in plan.children:
            await self.rewind(child)
        self._work_added(Work.ORCHESTRATIONS | Work.ACTIVITIES)

    async def restart(self, instance_id: str, restart_with_new_instance_id: bool = True) -> str:
        """Start the instance's orchestrator again with its original input; the new instance id."""
        validate_instance_id(instance_id)
        record = await self._store.run(self._store.store.get_instance, instance_id)
        if record is None:
            raise InstanceNotFoundError(instance_id)
        new_id = None if restart_with_new_instance_id else instance_id
        if new_id is not None and record.status in ACTIVE_STATUSES:
            raise InvalidInstanceStateError(instance_id, record.status.value, "restart")
        return await self.start_new(record.name, new_id, decode(record.input))

    async def purge_instance_history(self, instance_id: str) -> PurgeHistoryResult:
        """Delete a finished instance and its history."""
        validate_instance_id(instance_id)
        count = await self._store.run(self._store.store.purge_instance, instance_id)
        return PurgeHistoryResult(count)

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
    ) -> PurgeHistoryResult:
        """Delete every finished instance matching the filters."""
        query = InstanceQuery(
            runtime_status=frozenset(runtime_status) if runtime_status else None,
            created_time_from=created_time_from,
            created_time_to=created_time_to,
        )
        count = await self._store.run(self._store.store.purge_instances, query)
        return PurgeHistoryResult(count)

    # -- HTTP helpers ---------------------------------------------------------------------------

    def create_http_management_payload(self, instance_id: str) -> dict[str, str]:
        """The check-status payload for ``instance_id``: its id and management URLs."""
        return management_payload(self.base_url, instance_id, self.management_key)

    def create_check_status_response(self, req: HttpRequest, instance_id: str) -> HttpResponse:
        """202 with ``Location`` at the status URL and the management payload as the body."""
        payload = management_payload(base_url_of(req), instance_id, self.management_key)
        return check_status_response(payload)

    async def wait_for_completion_or_create_check_status_response(
        self,
        req: HttpRequest,
        instance_id: str,
        timeout_in_milliseconds: int = 10000,
        retry_interval_in_milliseconds: int = 1000,
    ) -> HttpResponse:
        """200 with the output if the instance finishes in time, else the 202 check-status response.

        A Failed or Terminated instance answers 500 with its status, as Azure does.
        """
        del retry_interval_in_milliseconds  # in-process signals make polling intervals moot
        try:
            status = await self.wait_for_completion(instance_id, timeout_in_milliseconds / 1000)
        except OrchestrationTimeoutError:
            return self.create_check_status_response(req, instance_id)
        if status.runtime_status is OrchestrationRuntimeStatus.Completed:
            return HttpResponse.json(status.output)
        return HttpResponse.json(status.to_json(), status_code=500)
