"""The idle shape in a host process of its own: ``python -m bench.idle STORE_URL COUNT``.

COUNT orchestrations started and left waiting for an event, on the embedded runtime; the
process's peak RSS is then the host's own, not also that of the shapes a run went through
before it in the benchmark's process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys

import durafn as df
from bench.child import print_results, run_child
from bench.measure import Result
from bench.shapes import run_embedded


async def idle_instances(rt: df.Runtime, count: int) -> list[Result]:
    """``count`` orchestrations waiting for an event: the host's peak RSS."""
    ids = [await rt.client.start_new("idle") for _ in range(count)]
    while True:
        pending = frozenset({df.OrchestrationRuntimeStatus.Pending})
        waiting = await rt.client.query(df.InstanceQuery(runtime_status=pending, top=1))
        if not waiting.statuses:
            break
        await asyncio.sleep(0.1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del ids
    detail = "peak of a host process of its own"
    return [Result(f"{count} idle orchestrations", rss_mb, "MB RSS", detail)]


def idle_host(storage: str, count: int) -> list[Result]:
    """The idle shape on the store at ``storage``, in a subprocess of this module."""
    return run_child("the idle shape", "bench.idle", storage, str(count))


def main(argv: list[str] | None = None) -> int:
    """Run the idle shape and print its result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__)
    parser.add_argument("storage", help="a durafn store URL")
    parser.add_argument("count", type=int, help="orchestrations to leave waiting")
    args = parser.parse_args(argv)
    results = asyncio.run(run_embedded(args.storage, lambda rt: idle_instances(rt, args.count)))
    print_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
