"""Cron triggers: NCRONTAB parsing and its mapping to apscheduler, validation at load, the
scheduler embedded next to a Runtime, and a per-second schedule in a real ``durafn start``."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostproc import HostProcess

import durafn as df
from durafn.cron import cron_trigger, timer_request
from durafn.ncrontab import parse_schedule, validate_schedule

UTC = timezone.utc


def fire_times(expression: str, start: datetime, count: int) -> list[datetime]:
    trigger = cron_trigger(expression)
    times: list[datetime] = []
    previous = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        times.append(fire)
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


@pytest.mark.parametrize(
    ("expression", "fields"),
    [
        ("* * * * * *", {"second": "*", "minute": "*", "day_of_week": "*"}),
        ("0 */5 * * * *", {"second": "0", "minute": "0,5,10,15,20,25,30,35,40,45,50,55"}),
        ("5/20 * * * * *", {"second": "5,25,45"}),
        ("0 30 9 1,15 * *", {"minute": "30", "hour": "9", "day": "1,15"}),
        ("0 0 0 * JAN-MAR/2 *", {"month": "1,3"}),
        ("0 0 12 * * MON-FRI", {"day_of_week": "mon,tue,wed,thu,fri"}),
        ("0 0 12 * * sat,Sun", {"day_of_week": "sun,sat"}),
    ],
)
def test_expressions_map_to_apscheduler_fields(expression: str, fields: dict[str, str]) -> None:
    mapped = parse_schedule(expression).apscheduler_fields()
    for name, value in fields.items():
        assert mapped[name] == value, name


@pytest.mark.parametrize(
    ("weekday", "expected"),
    [("0", "sun"), ("7", "sun"), ("1", "mon"), ("6", "sat"), ("1-5", "mon,tue,wed,thu,fri")],
)
def test_weekday_numbers_count_from_sunday(weekday: str, expected: str) -> None:
    assert parse_schedule(f"0 0 9 * * {weekday}").apscheduler_fields()["day_of_week"] == expected


def test_weekday_zero_fires_on_sundays() -> None:
    # 2024-01-01 is a Monday; apscheduler's own numbering would make 0 mean Monday
    sundays = fire_times("0 0 9 * * 0", datetime(2024, 1, 1, tzinfo=UTC), 2)
    assert sundays == [
        datetime(2024, 1, 7, 9, tzinfo=UTC),
        datetime(2024, 1, 14, 9, tzinfo=UTC),
    ]
    weekdays = fire_times("0 30 8 * * 1-5", datetime(2024, 1, 5, 9, tzinfo=UTC), 2)
    assert [t.strftime("%a %H:%M") for t in weekdays] == ["Mon 08:30", "Tue 08:30"]


def test_six_fields_start_with_seconds_and_run_in_utc() -> None:
    start = datetime(2024, 3, 1, 10, 0, 1, tzinfo=UTC)
    assert fire_times("*/15 * * * * *", start, 3) == [
        datetime(2024, 3, 1, 10, 0, 15, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 30, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, 45, tzinfo=UTC),
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 */5 * * *", "has 5 field(s); write six, seconds first"),
        ("0 0 0 0 * * *", "has 7 field(s)"),
        ("60 * * * * *", "60 in the second field is out of range 0-59"),
        ("0 0 24 * * *", "out of range 0-23"),
        ("0 0 0 * * 8", "out of range 0-7"),
        ("0 5-1 * * * *", "'5-1' in the minute field runs backwards"),
        ("0 0 0 * FOO *", "'FOO' in the month field is not a number or one of JAN"),
        ("*/0 * * * * *", "must be at least 1"),
        ("0 0 0 ? * *", "'?' in the day field"),
        ("0 0 0 31 2 *", "never fires"),
        ("", "has 0 field(s)"),
    ],
)
def test_invalid_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    problem = validate_schedule(expression)
    assert problem is not None and message in problem
    with pytest.raises(ValueError, match=r"field|fires"):
        cron_trigger(expression)


def test_an_invalid_schedule_fails_validation_naming_function_and_line() -> None:
    app = df.App()

    @app.schedule(schedule="0 0 25 * * *")
    def nightly(timer: df.TimerRequest) -> None:
        pass

    with pytest.raises(df.AppValidationError) as caught:
        app.validate()
    message = str(caught.value)
    assert "schedule function 'nightly'" in message
    assert f"{Path(__file__).name}:" in message and "out of range 0-23" in message


def run_durafn(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_start_refuses_an_app_with_an_invalid_schedule(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import durafn as df\napp = df.App()\n\n"
        "@app.schedule(schedule='*/5 * * * *')\ndef poll(timer):\n    pass\n"
    )
    result = run_durafn(tmp_path, "start", "--port", "1")
    assert result.returncode == 1
    assert "'poll'" in result.stderr and "function_app.py:4" in result.stderr
    assert "write six, seconds first" in result.stderr and "Traceback" not in result.stderr


def test_timer_request_is_past_due_when_late_or_coalesced() -> None:
    now = datetime.now(UTC)
    on_time = timer_request("* * * * * *", [now - timedelta(seconds=0.2)], now)
    assert on_time.past_due is False and on_time.schedule == "* * * * * *"
    assert on_time.scheduled_time == now - timedelta(seconds=0.2)
    assert timer_request("* * * * * *", [now - timedelta(seconds=5)], now).past_due is True
    missed = [now - timedelta(seconds=2), now - timedelta(seconds=1), now]
    coalesced = timer_request("* * * * * *", missed, now)
    assert coalesced.past_due is True and coalesced.scheduled_time == missed[0]
    assert timer_request("* * * * * *", [], now).past_due is False


def test_embedded_scheduler_runs_sync_and_async_functions_and_survives_errors(
    tmp_path: Path,
) -> None:
    app = df.App()
    seen: list[df.TimerRequest] = []
    failures: list[int] = []

    @app.schedule(schedule="* * * * * *", run_on_startup=True)
    @app.durable_client_input(client_name="client")
    async def kick(timer: df.TimerRequest, client: df.DurableOrchestrationClient) -> None:
        seen.append(timer)
        await client.start_new(echo_back, f"kick-{len(seen)}", len(seen))

    @app.timer_trigger(schedule="* * * * * *", arg_name="t")
    def flaky(t: df.TimerRequest) -> None:
        failures.append(1)
        raise RuntimeError("a failing run must not stop the schedule")

    @app.orchestrator
    def echo_back(context: df.DurableOrchestrationContext) -> Any:
        value = yield context.call_activity(double, context.get_input())
        return value

    @app.activity
    def double(value: int) -> int:
        return value * 2

    async def scenario() -> list[df.DurableOrchestrationStatus]:
        async with df.Runtime(app, storage=f"sqlite:///{tmp_path / 'cron.db'}") as rt:
            async with df.CronScheduler(rt):
                deadline = time.monotonic() + 10
                while (len(seen) < 3 or len(failures) < 2) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            done = [await rt.client.wait_for_completion(f"kick-{n}", 10) for n in (1, 2, 3)]
            return done

    statuses = asyncio.run(scenario())
    assert [s.output for s in statuses] == [2, 4, 6]
    assert len(failures) >= 2
    assert all(isinstance(t, df.TimerRequest) for t in seen)
    # run_on_startup: the first run happens at once, not at the next full second
    assert seen[0].scheduled_time is not None
    assert not any(t.past_due for t in seen[1:])


def test_per_second_cron_in_durafn_start_starts_orchestrations(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        textwrap.dedent(
            """
            import durafn as df

            app = df.App(http_auth_level=df.AuthLevel.ANONYMOUS)

            @app.schedule(schedule="* * * * * *", arg_name="timer")
            @app.durable_client_input(client_name="client")
            async def every_second(timer: df.TimerRequest, client):
                await client.start_new("record_tick", None, {"past_due": timer.past_due})

            @app.orchestrator
            def record_tick(context):
                result = yield context.call_activity("stamp", context.get_input())
                return result

            @app.activity
            def stamp(value):
                return {"stamped": True, **value}
            """
        )
    )
    host = HostProcess(tmp_path, f"sqlite:///{tmp_path / 'host.db'}")
    try:
        host.wait_ready()
        assert "every_second: timerTrigger (* * * * * *)" in host.output()
        deadline = time.monotonic() + 15
        completed: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(completed) < 3:
            time.sleep(0.2)
            listing = httpx.get(
                f"{host.url}/runtime/webhooks/durabletask/instances",
                params={"runtimeStatus": "Completed", "showInput": "true"},
            )
            completed = listing.json()
        assert len(completed) >= 3, host.output()
        assert all(s["name"] == "record_tick" for s in completed)
        assert all(s["output"]["stamped"] is True for s in completed)
    finally:
        assert host.stop() == 0, host.output()
    assert "Traceback" not in host.output()


def test_runs_missed_while_the_loop_was_blocked_are_coalesced_and_past_due(
    tmp_path: Path,
) -> None:
    app = df.App()
    timers: list[tuple[float, df.TimerRequest]] = []
    blocked: list[bool] = []

    @app.schedule(schedule="* * * * * *", run_on_startup=True)
    async def hog(timer: df.TimerRequest) -> None:
        if not blocked:
            blocked.append(True)
            time.sleep(2.5)  # blocks the event loop, as careless async code does

    @app.schedule(schedule="* * * * * *")
    async def steady(timer: df.TimerRequest) -> None:
        timers.append((time.monotonic(), timer))

    async def scenario() -> None:
        storage = f"sqlite:///{tmp_path / 'cron.db'}"
        async with df.Runtime(app, storage=storage) as rt, df.CronScheduler(rt):
            deadline = time.monotonic() + 8
            while len(timers) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert blocked and len(timers) >= 3
    late = [timer for _, timer in timers if timer.past_due]
    assert late, [t for _, t in timers]
    assert late[0].scheduled_time is not None
    assert datetime.now(UTC) - late[0].scheduled_time > timedelta(seconds=1)
