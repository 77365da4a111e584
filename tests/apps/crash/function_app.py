"""The app the crash tests kill: activities log each run, so re-runs can be counted."""

import os
import random
import time
from datetime import timedelta

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


def log(line: str) -> None:
    # one O_APPEND write per line: lines from concurrent threads never interleave
    fd = os.open(os.environ["DURAFN_CRASH_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@app.orchestrator
def work(context: df.DurableOrchestrationContext):
    marker = context.new_uuid()
    began = context.current_utc_datetime.isoformat()
    first = yield context.call_activity(step, [context.instance_id, "a", marker])
    go = yield context.wait_for_external_event("go")
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=300))
    parts = yield context.task_all(
        [context.call_activity(step, [context.instance_id, f"f{i}", None]) for i in range(3)]
    )
    last = yield context.call_activity(step, [context.instance_id, "z", None])
    return {
        "input": context.get_input(),
        "go": go,
        "marker": marker,
        "began": began,
        "results": [first, *parts, last],
    }


@app.activity
def step(args: list) -> str:
    instance_id, name, marker = args
    log(f"start {instance_id} {name} {time.time()} {marker}")
    time.sleep(random.uniform(0, 0.05))
    log(f"end {instance_id} {name} {time.time()}")
    return f"{instance_id}:{name}"
