"""Backoff arithmetic of durafn.replay.retry (pure functions)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from durafn.models import RetryOptions
from durafn.replay.retry import MAX_RETRY_DELAY, next_attempt_at, retry_delay

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


def test_delay_grows_by_the_coefficient_and_is_capped() -> None:
    options = RetryOptions(
        1000, 10, backoff_coefficient=2.0, max_retry_interval_in_milliseconds=5000
    )
    assert [retry_delay(options, n) for n in range(1, 6)] == [
        ms(1000),
        ms(2000),
        ms(4000),
        ms(5000),
        ms(5000),
    ]


def test_delay_is_constant_with_the_default_coefficient() -> None:
    options = RetryOptions(250, 3)
    assert retry_delay(options, 1) == retry_delay(options, 7) == ms(250)


def test_a_huge_exponent_does_not_overflow() -> None:
    options = RetryOptions(1000, 100_000, backoff_coefficient=10.0)
    assert retry_delay(options, 5000) == MAX_RETRY_DELAY
    capped = RetryOptions(1000, 100_000, 10.0, max_retry_interval_in_milliseconds=60_000)
    assert retry_delay(capped, 5000) == ms(60_000)


def test_retry_number_counts_from_one() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        retry_delay(RetryOptions(1000, 3), 0)


def test_next_attempt_respects_the_attempt_count() -> None:
    options = RetryOptions(1000, 3)
    now = T0 + timedelta(seconds=10)
    assert next_attempt_at(options, 1, T0, now) == now + ms(1000)
    assert next_attempt_at(options, 2, T0, now) == now + ms(1000)
    assert next_attempt_at(options, 3, T0, now) is None


def test_next_attempt_respects_the_retry_timeout() -> None:
    options = RetryOptions(1000, 10, retry_timeout_in_milliseconds=5000)
    assert next_attempt_at(options, 1, T0, T0 + ms(4000)) == T0 + ms(5000)  # exactly on the limit
    assert next_attempt_at(options, 1, T0, T0 + ms(4001)) is None
