"""RuntimeConfig: the tunables of the workers, shared by ``df.Runtime`` and ``durafn start``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


def _default_activity_threads() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass(frozen=True)
class RuntimeConfig:
    """How the orchestration and activity workers behave."""

    activity_threads: int = _default_activity_threads()
    """Sync activities run in a thread pool of this size; ``--workers-activity`` sets it."""
    max_concurrent_activities: int = 100
    """Activities (sync and async) in flight at once in this host."""
    orchestration_batch: int = 50
    """Instances claimed per dispatcher round."""
    lease_seconds: float = 30.0
    """A claim's lease; renewed every third of it while held, so only a dead host's leases
    expire, and other hosts take its work over this long after it died."""
    poll_interval: float = 0.5
    """How often to look for work added by other processes (in-process work wakes at once)."""
    cache_size: int = 5000
    """Live orchestrator generators kept in memory; an evicted one is replayed on its next step."""
    shutdown_grace_seconds: float = 10.0
    """On stop, how long in-flight activities may finish before they are left to run again."""

    def __post_init__(self) -> None:
        for name in ("activity_threads", "max_concurrent_activities", "orchestration_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"RuntimeConfig.{name} must be at least 1")
        if self.cache_size < 0:
            raise ValueError("RuntimeConfig.cache_size must be 0 or more (0 disables the cache)")
        # Chained comparisons are False for NaN too, which would make every lease expired.
        if not (0 < self.lease_seconds < math.inf and 0 < self.poll_interval < math.inf):
            raise ValueError(
                "RuntimeConfig.lease_seconds and poll_interval must be positive numbers"
            )
