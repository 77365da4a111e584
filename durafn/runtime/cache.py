"""An LRU of live executors, so a step costs one generator resume instead of a replay."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from durafn.replay.executor import OrchestrationExecutor
from durafn.store.base import InstanceRecord


@dataclass(frozen=True)
class CachedExecutor:
    """A live executor and its instance as stored after the executor's last step."""

    record: InstanceRecord
    executor: OrchestrationExecutor


class ExecutorCache:
    """Least-recently-used executors, at most ``capacity`` (0 disables caching).

    A step *takes* its executor out and puts it back once the step is committed, so that no two
    steps of one instance ever resume the same generator.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, CachedExecutor] = OrderedDict()

    def take(self, record: InstanceRecord) -> CachedExecutor | None:
        """Remove and return the instance's executor if it is exactly at ``record``'s history
        (same execution, same length), else forget it and return None.
        """
        entry = self._items.pop(record.instance_id, None)
        if entry is None:
            return None
        cached = entry.record
        if (cached.execution_id, cached.history_length) != (
            record.execution_id,
            record.history_length,
        ):
            return None
        return entry

    def take_any(self, instance_id: str) -> CachedExecutor | None:
        """Remove and return the instance's executor, whatever history it is at."""
        return self._items.pop(instance_id, None)

    def put(self, record: InstanceRecord, executor: OrchestrationExecutor) -> None:
        """Keep ``executor``, which is at ``record``'s stored history, for the next step."""
        if self.capacity == 0:
            return
        self._items[record.instance_id] = CachedExecutor(record, executor)
        self._items.move_to_end(record.instance_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def evict(self, instance_id: str) -> None:
        """Forget the instance's executor (it finished, or its commit was refused)."""
        self._items.pop(instance_id, None)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._items

    def __len__(self) -> int:
        return len(self._items)
