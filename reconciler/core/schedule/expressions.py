"""AWS schedule expressions: validation, next fire times, English descriptions.

The grammar is EventBridge's: ``cron(minute hour day-of-month month day-of-week year)`` and
``rate(value unit)``, and Scheduler's one-time ``at(yyyy-mm-ddThh:mm:ss)``, read in the cron's
time zone (the rules backend cannot run it: the plan says so). See
``schedule.parsing`` for the exact rules, ``schedule.evaluation`` for how fire times are computed
(including daylight-saving changes) and ``schedule.model`` for the parsed form.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconciler.core.schedule.description import describe_at, describe_cron, describe_rate
from reconciler.core.schedule.evaluation import (
    at_fire_times,
    at_moment,
    cron_fire_times,
    rate_fire_times,
)
from reconciler.core.schedule.model import (
    AtExpression,
    CronExpression,
    Expression,
    RateExpression,
    ScheduleError,
)
from reconciler.core.schedule.parsing import analyse

__all__ = [
    "AtExpression",
    "CronExpression",
    "Expression",
    "RateExpression",
    "ScheduleError",
    "describe",
    "is_one_time",
    "next_fire_times",
    "one_time_at",
    "parse",
    "validate",
    "validate_timezone",
]


def validate(expression: str) -> list[str]:
    """Every problem with ``expression`` as specific messages; ``[]`` when valid."""
    return list(analyse(expression)[1])


def parse(expression: str) -> Expression:
    """The parsed expression; raises ``ScheduleError`` with the first problem when invalid."""
    return _parse_cached(expression) if isinstance(expression, str) else _parse(expression)


@lru_cache(maxsize=1024)
def _parse_cached(expression: str) -> Expression:
    return _parse(expression)


def _parse(expression: object) -> Expression:
    parsed, problems = analyse(expression)
    if parsed is None:
        raise ScheduleError(problems[0])
    return parsed


def validate_timezone(timezone: str) -> list[str]:
    """``[]`` when ``timezone`` is a known IANA zone name, else one specific message."""
    try:
        _zone(timezone)
    except ScheduleError as error:
        return [str(error)]
    return []


def _zone(timezone: str) -> ZoneInfo:
    if not isinstance(timezone, str) or not timezone:
        raise ScheduleError("time zone must be an IANA name such as Europe/Berlin")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {timezone!r} (expected an IANA name such as "
                            "Europe/Berlin)") from None


def next_fire_times(expression: str, timezone: str, after: datetime, count: int,
                    anchor: datetime | None = None, *, on_gap: str = "skip") -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``, as aware UTC datetimes.

    ``cron()`` is evaluated on the wall clock of the IANA ``timezone``; fewer than ``count``
    times come back when the expression ends (its last year, 2199 at most). Daylight saving
    follows EventBridge Scheduler: a time repeated when clocks go back fires once (its first
    occurrence); a time skipped when clocks go forward does not fire (``on_gap="skip"``, as
    AWS documents), or with ``on_gap="shift"`` fires at the first moment after the gap.

    ``at()`` fires once, at its wall-clock time in ``timezone``: that one time comes back
    when it is after ``after``, else nothing.

    ``rate()`` fires every interval from ``anchor`` (the schedule's start; default ``after``
    rounded down to the minute), i.e. at ``anchor + k * interval`` for k >= 0; the time zone
    plays no part.

    Raises ``ScheduleError`` for an invalid expression or time zone and ``ValueError`` for a
    naive ``after``/``anchor`` or a negative ``count``.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("after must be a timezone-aware datetime")
    if anchor is not None and (anchor.tzinfo is None or anchor.utcoffset() is None):
        raise ValueError("anchor must be a timezone-aware datetime")
    if count < 0:
        raise ValueError(f"count must be zero or more, got {count}")
    parsed = parse(expression)
    zone = _zone(timezone)
    if isinstance(parsed, RateExpression):
        return rate_fire_times(parsed, after, count, anchor)
    if isinstance(parsed, AtExpression):
        return at_fire_times(parsed, zone, after, count)
    return cron_fire_times(parsed, zone, after, count, on_gap)


def describe(expression: str, timezone: str = "UTC") -> str:
    """A plain-English description, e.g. 'every 10 minutes'.

    ``cron()`` and ``at()`` descriptions end with `` (Europe/Berlin)`` when the zone is not UTC; rates
    do not depend on the zone and never mention it.
    """
    parsed = parse(expression)
    if isinstance(parsed, RateExpression):
        return describe_rate(parsed)
    text = describe_at(parsed) if isinstance(parsed, AtExpression) else describe_cron(parsed)
    zone = _zone(timezone)
    return text if zone.key in ("UTC", "Etc/UTC") else f"{text} ({zone.key})"


def is_one_time(expression: str) -> bool:
    """True for an ``at(...)`` expression (valid or not): it fires at most once."""
    return isinstance(expression, str) and expression.startswith("at(")


def one_time_at(expression: str, timezone: str) -> datetime | None:
    """When a valid ``at()`` fires (aware UTC); None for any other expression."""
    if not is_one_time(expression):
        return None
    parsed = parse(expression)
    assert isinstance(parsed, AtExpression)
    return at_moment(parsed, _zone(timezone))
