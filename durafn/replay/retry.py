"""Backoff arithmetic for ``call_*_with_retry``: pure functions of RetryOptions and history time."""

from __future__ import annotations

from datetime import datetime, timedelta

from durafn.models import RetryOptions

MAX_RETRY_DELAY = timedelta(days=3650)
"""Upper bound on any single wait, so an extreme backoff coefficient cannot overflow a datetime."""


def retry_delay(options: RetryOptions, retry_number: int) -> timedelta:
    """Return the wait before retry ``retry_number`` (1 = the first retry, the second attempt).

    ``first_retry_interval * backoff_coefficient ** (retry_number - 1)`` ms, capped at the
    options' ``max_retry_interval_in_milliseconds`` (and at :data:`MAX_RETRY_DELAY`).
    """
    if retry_number < 1:
        raise ValueError(f"retry_number counts from 1, got {retry_number}")
    cap_ms = MAX_RETRY_DELAY / timedelta(milliseconds=1)
    if options.max_retry_interval_in_milliseconds is not None:
        cap_ms = min(cap_ms, float(options.max_retry_interval_in_milliseconds))
    try:
        delay_ms = options.first_retry_interval_in_milliseconds * (
            options.backoff_coefficient ** (retry_number - 1)
        )
    except OverflowError:
        # A huge exponent means "as long as allowed"; float pow raises rather than returning inf.
        delay_ms = cap_ms
    return timedelta(milliseconds=min(delay_ms, cap_ms))


def next_attempt_at(
    options: RetryOptions,
    attempts_made: int,
    first_scheduled_at: datetime,
    now: datetime,
) -> datetime | None:
    """Return when the next attempt starts after ``attempts_made`` failures, or None if none may.

    None when the attempts are used up, or when the next start would fall later than
    ``retry_timeout_in_milliseconds`` after ``first_scheduled_at``.
    """
    if attempts_made >= options.max_number_of_attempts:
        return None
    start = now + retry_delay(options, attempts_made)
    timeout_ms = options.retry_timeout_in_milliseconds
    if timeout_ms is not None and start - first_scheduled_at > timedelta(milliseconds=timeout_ms):
        return None
    return start
