"""An LRU of live executors, so a step costs one generator resume instead of a replay."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from durafn.replay.executor import OrchestrationExecutor


@dataclass
class CachedExecutor:
    """A live executor, the execution it belongs to and the stored history length it matches."""

    execution_id: str
    history_length: int
    executor: OrchestrationExecutor


class ExecutorCache:
    """Least-recently-used executors, at most ``capacity`` (0 disables caching)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, CachedExecutor] = OrderedDict()

    def get(
        self, instance_id: str, execution_id: str, history_length: int
    ) -> OrchestrationExecutor | None:
        """The cached executor if it is exactly at the stored history's end, else None."""
        entry = self._items.get(instance_id)
        if entry is None:
            return None
        if entry.execution_id != execution_id or entry.history_length != history_length:
            del self._items[instance_id]
            return None
        self._items.move_to_end(instance_id)
        return entry.executor

    def put(
        self,
        instance_id: str,
        execution_id: str,
        history_length: int,
        executor: OrchestrationExecutor,
    ) -> None:
        """Keep ``executor``, which has seen ``history_length`` stored events, for the next step."""
        if self.capacity == 0:
            return
        self._items[instance_id] = CachedExecutor(execution_id, history_length, executor)
        self._items.move_to_end(instance_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def evict(self, instance_id: str) -> None:
        """Forget the instance's executor (it finished, or its commit was refused)."""
        self._items.pop(instance_id, None)

    def __len__(self) -> int:
        return len(self._items)
