"""Six-field NCRONTAB schedules (second minute hour day month day-of-week), parsed without any
scheduler so that an app's bindings can be validated at load time.

Each field takes ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, and
comma-separated lists of those. Months take ``JAN``-``DEC``, weekdays ``SUN``-``SAT``; weekday
numbers count from Sunday = 0 as in NCRONTAB (7 is Sunday too). When both the day of the month and
the day of the week are restricted, a time must match both, as in NCRONTAB and apscheduler.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

MONTH_NAMES = {
    name.upper(): number for number, name in enumerate(calendar.month_abbr) if number > 0
}
WEEKDAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

# apscheduler 3 counts numeric weekdays from Monday = 0, so weekdays are handed over by name
_APSCHEDULER_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("second", 0, 59, {}),
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day", 1, 31, {}),
    _Field("month", 1, 12, MONTH_NAMES),
    _Field("day_of_week", 0, 7, WEEKDAY_NAMES),
)

_ITEM = re.compile(r"^(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?$")

EXAMPLE = "'0 */5 * * * *' (every five minutes)"


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the allowed values of each field (weekdays with Sunday = 0)."""

    expression: str
    second: frozenset[int]
    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]

    def apscheduler_fields(self) -> dict[str, str]:
        """Keyword arguments for apscheduler 3's ``CronTrigger``: explicit value lists, ``*`` for
        a whole range, and weekdays by name.
        """
        fields: dict[str, str] = {}
        for spec in _FIELDS[:5]:
            values: frozenset[int] = getattr(self, spec.name)
            full = len(values) == spec.high - spec.low + 1
            fields[spec.name] = "*" if full else ",".join(str(v) for v in sorted(values))
        weekdays = self.day_of_week
        fields["day_of_week"] = (
            "*"
            if len(weekdays) == 7
            else ",".join(_APSCHEDULER_WEEKDAYS[d] for d in sorted(weekdays))
        )
        return fields


def _value(field: _Field, raw: str, item: str) -> int:
    if raw.isdigit():
        number = int(raw)
    elif raw.upper() in field.names:
        number = field.names[raw.upper()]
    else:
        hint = f" or one of {', '.join(field.names)}" if field.names else ""
        raise ValueError(f"'{item}' in the {field.name} field is not a number{hint}")
    if not field.low <= number <= field.high:
        raise ValueError(
            f"{number} in the {field.name} field is out of range {field.low}-{field.high}"
        )
    return number


def _parse_field(field: _Field, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(
                f"'{item}' in the {field.name} field is not '*', a value, a range a-b or a step "
                "'*/n' or 'a-b/n'"
            )
        star, first, last, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"the step in '{item}' in the {field.name} field must be at least 1")
        if star:
            low, high = field.low, field.high
        else:
            low = _value(field, first, item)
            # 'a/n' runs from a to the end of the range, as in NCRONTAB
            high = _value(field, last, item) if last else (field.high if step_text else low)
            if low > high:
                raise ValueError(f"the range '{item}' in the {field.name} field runs backwards")
        values.update(range(low, high + 1, step))
    if field.name == "day_of_week" and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def parse_schedule(expression: str) -> CronSchedule:
    """Parse a six-field NCRONTAB expression; a ValueError says what is wrong."""
    if not isinstance(expression, str):
        raise ValueError(f"the schedule must be a string such as {EXAMPLE}")
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise ValueError(
            f"the schedule '{expression}' has {len(parts)} field(s); write six, seconds first "
            f"(second minute hour day month day-of-week), e.g. {EXAMPLE}"
        )
    parsed = {
        field.name: _parse_field(field, part) for field, part in zip(_FIELDS, parts, strict=True)
    }
    if not any(
        day <= calendar.monthrange(2024, month)[1]
        for month in parsed["month"]
        for day in parsed["day"]
    ):
        raise ValueError(
            f"the schedule '{expression}' never fires: none of its months has any of its days"
        )
    return CronSchedule(expression=expression, **parsed)


def validate_schedule(expression: str) -> str | None:
    """What is wrong with ``expression`` as a six-field NCRONTAB schedule, or None if nothing."""
    try:
        parse_schedule(expression)
    except ValueError as exc:
        return str(exc)
    return None
