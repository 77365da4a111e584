"""The app the multi-host tests serve from several hosts: activities log the host that ran them."""

import os
import time
from datetime import timedelta

import durafn as df

app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)


def log(*fields: object) -> None:
    # one O_APPEND write per line: lines from concurrent hosts and threads never interleave
    line = " ".join(str(f) for f in (os.getpid(), time.time(), *fields)) + "\n"
    fd = os.open(os.environ["DURAFN_MULTIHOST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.orchestrator
def work(context: df.DurableOrchestrationContext):
    n = context.get_input()
    results = []
    for step in range(4):
        results.append((yield context.call_activity(record, [context.instance_id, step, n])))
    return results


@app.activity
def record(args: list) -> str:
    instance_id, step, n = args
    log("record", instance_id, step)
    time.sleep(0.15)
    return f"{n}-{step}"


@app.orchestrator
def alarm(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=2))
    return (yield context.call_activity(ring, context.instance_id))


@app.activity
def ring(instance_id: str) -> str:
    log("ring", instance_id)
    return "rang"


@app.orchestrator
def hold(context: df.DurableOrchestrationContext):
    return (yield context.wait_for_external_event("go"))


@app.schedule(schedule="* * * * * *", arg_name="timer")
def tick(timer: df.TimerRequest) -> None:
    """Every second, on whichever host claims the run."""
    log("tick", timer.scheduled_time.isoformat() if timer.scheduled_time else "unknown")
