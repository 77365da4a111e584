"""The activity worker: claim activity work items, run them, record each result or failure."""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from durafn.app import App
from durafn.errors import FunctionNotFoundError
from durafn.functions import FunctionKind, FunctionSpec
from durafn.models import FailureDetails
from durafn.replay.history import HistoryEvent, TaskCompleted, TaskFailed
from durafn.runtime.config import RuntimeConfig
from durafn.runtime.signals import Signals, wait
from durafn.serialization import decode, decode_as, encode
from durafn.store.aio import AsyncStore
from durafn.store.base import ActivityWorkItem, Work

log = logging.getLogger("durafn.activities")

StepOnResult = Callable[[ActivityWorkItem, HistoryEvent], Awaitable[bool]]
"""Takes an activity's result straight into its orchestration's next step; False if it cannot."""


def _input_binding(spec: FunctionSpec) -> tuple[str | None, Any]:
    """The parameter that receives the input (None: the function takes none) and its annotation."""
    try:
        signature = inspect.signature(spec.fn, eval_str=True)
    except (NameError, TypeError, ValueError):
        signature = inspect.signature(spec.fn)
    params = list(signature.parameters.values())
    if spec.input_name is not None:
        chosen = signature.parameters.get(spec.input_name)
    else:
        chosen = params[0] if params else None
    if chosen is None:
        return None, None
    return chosen.name, chosen.annotation


class ActivityWorker:
    """Runs activities: ``async def`` ones in the event loop, sync ones in a bounded thread pool.

    ``shared``: other hosts claim from the same store, so claim only what can start now.
    """

    def __init__(
        self,
        app: App,
        db: AsyncStore,
        signals: Signals,
        config: RuntimeConfig,
        worker_id: str,
        *,
        shared: bool = False,
        step_on_result: StepOnResult | None = None,
    ) -> None:
        self._app = app
        self._db = db
        self._signals = signals
        self._config = config
        self._worker_id = worker_id
        self._clock = db.clock
        self._step_on_result = step_on_result
        self._stopped = False
        self._threads = ThreadPoolExecutor(
            config.activity_threads, thread_name_prefix="durafn-activity"
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._follow_ons: dict[asyncio.Task[Any] | None, list[ActivityWorkItem]] = {}
        """Per activity task stepping on its result, where the first work item the step leases
        goes: that task runs it next, so a sequence of activities costs no new task and no loop
        turn each."""
        self._reserved = 0
        self._slot_freed = asyncio.Event()
        self._bindings: dict[str, tuple[FunctionSpec, str | None, Any]] = {}
        for spec in app.functions:
            if spec.kind is FunctionKind.ACTIVITY:
                name, annotation = _input_binding(spec)
                self._bindings[spec.name.lower()] = (spec, name, annotation)
        # Sync activities claimed beyond the thread pool wait in its queue under our lease, kept
        # from idle hosts; alone on a store, claiming them in one batch is faster.
        sync_only = not any(
            inspect.iscoroutinefunction(s.fn) for s, _, _ in self._bindings.values()
        )
        self._capacity = config.max_concurrent_activities
        if shared and sync_only:
            self._capacity = min(self._capacity, config.activity_threads)

    async def run(self, stopping: asyncio.Event) -> None:
        """Claim and run activities until ``stopping`` is set."""
        while not stopping.is_set():
            free = self._free()
            if free <= 0:
                await wait(self._slot_freed, self._config.poll_interval)
                continue
            try:
                claimed = await self.claim(free)
            except Exception:
                log.exception("claiming activities failed; retrying")
                claimed = 0
                await asyncio.sleep(self._config.poll_interval)
            if not claimed:
                await wait(self._signals.activities, self._config.poll_interval)

    async def claim(self, limit: int) -> int:
        """Claim up to ``limit`` work items and start running them; how many were claimed."""
        now = self._clock()
        lease_until = now + timedelta(seconds=self._config.lease_seconds)
        items = await self._db.run(
            self._db.store.claim_activities, self._worker_id, now, lease_until, limit
        )
        self.start(items)
        return len(items)

    def _free(self) -> int:
        return self._capacity - len(self._inflight) - self._reserved

    def reserve(self, wanted: int) -> int:
        """Hold up to ``wanted`` slots for work items a commit is about to lease to this host;
        how many were granted. Each is given back by :meth:`start`.
        """
        granted = max(0, min(wanted, self._free()))
        self._reserved += granted
        return granted

    def start(self, items: list[ActivityWorkItem], reserved: int = 0) -> None:
        """Run work items leased to this host, in slots ``reserve`` held (``reserved`` of them,
        all given back now). Once stopping, leave them: their leases are released on stop and
        they run again elsewhere or later. Called by the step on an activity's result, in that
        activity's task, the first item is left for the task to run next.
        """
        self._reserved -= reserved
        if self._stopped:
            return
        follow_on = self._follow_ons.get(asyncio.current_task())
        if follow_on is not None and not follow_on and items:
            follow_on.append(items[0])
            items = items[1:]
        for item in items:
            task = asyncio.create_task(self._execute(item), name=f"activity {item.name}")
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _execute(self, item: ActivityWorkItem) -> None:
        next_item: ActivityWorkItem | None = item
        while next_item is not None:
            next_item = await self._run(next_item)

    async def _run(self, item: ActivityWorkItem) -> ActivityWorkItem | None:
        """Run ``item`` and record its result; the work item the step on that result leased
        for this task to run next, if any (see start).
        """
        event = await self._invoke(item)
        follow_on: list[ActivityWorkItem] = []
        stepped = False
        if self._step_on_result is not None:
            # only the step on this result hands its work on: what the activity's own code
            # started (a client's start_new, say) runs in tasks of its own, beside it
            task = asyncio.current_task()
            self._follow_ons[task] = follow_on
            try:
                stepped = await self._step_on_result(item, event)
            except Exception:
                # nothing was committed: the result goes to the inbox as if this were not tried
                log.exception("the step on the result of activity %s failed", item.name)
            finally:
                del self._follow_ons[task]
        if not stepped:
            try:
                recorded = await self._db.run(
                    self._db.store.complete_activity, item, event, self._clock()
                )
            except Exception:
                # the item stays leased and runs again once the lease expires: at least once
                log.exception("recording the result of activity %s failed", item.name)
                recorded = False
            if recorded:
                self._signals.announce(Work.ORCHESTRATIONS)
        return follow_on[0] if follow_on else None

    async def _invoke(self, item: ActivityWorkItem) -> HistoryEvent:
        binding = self._bindings.get(item.name.lower())
        if binding is None:
            known = [spec.name for spec, _, _ in self._bindings.values()]
            error = FunctionNotFoundError("activity", item.name, known)
            return self._failed(item, type(error).__name__, str(error), "")
        spec, param, annotation = binding
        try:
            args: dict[str, Any] = {}
            if param is not None:
                args[param] = decode_as(decode(item.input), annotation)
            result = await self._call(spec.fn, args)
            payload = encode(result, f"result of activity '{spec.name}'")
        except Exception as exc:
            return self._failed(item, type(exc).__name__, str(exc), traceback.format_exc())
        return TaskCompleted(timestamp=self._clock(), task_id=item.task_id, result=payload)

    async def _call(self, fn: Callable[..., Any], args: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(**args)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._threads, lambda: fn(**args))
        if inspect.isawaitable(result):
            return await result
        return result

    def _failed(self, item: ActivityWorkItem, error_type: str, message: str, tb: str) -> TaskFailed:
        failure = FailureDetails(error_type, message, tb, item.name)
        return TaskFailed(timestamp=self._clock(), task_id=item.task_id, failure=failure)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for activities in flight, then cancel the rest (their work
        items stay in the store and run again: activities are at-least-once).
        """
        self._stopped = True
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self._threads.shutdown(wait=False, cancel_futures=True)
