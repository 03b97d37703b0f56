"""Fire times of parsed schedule expressions.

Cron expressions are evaluated on the wall clock of an IANA time zone, the way EventBridge
Scheduler does (EventBridge rules are the same with the zone fixed to UTC):

* a wall-clock time that a spring-forward change skips does not fire (``on_gap="skip"``,
  AWS's documented behaviour: "your schedule invocation gets skipped if the cron expression
  falls on a non-existent date and time"); ``on_gap="shift"`` instead fires it once at the
  first moment after the gap (02:30 on New York's spring-forward day fires at 03:00 EDT);
* a wall-clock time that an autumn change repeats fires once, at its first occurrence.

The search walks matching years, months and days, then the hours and minutes of each day,
so its cost does not depend on how far away the next fire is; it ends with the last year
the expression allows (2199 at most).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo

from reconciler.core.schedule.model import AtExpression, CronExpression, RateExpression

GAP_POLICIES = ("skip", "shift")


def cron_fire_times(expression: CronExpression, zone: tzinfo, after: datetime, count: int,
                    on_gap: str = "skip") -> list[datetime]:
    """The first ``count`` fire times strictly after ``after``, as aware UTC datetimes."""
    if on_gap not in GAP_POLICIES:
        raise ValueError(f"on_gap must be one of {GAP_POLICIES}, got {on_gap!r}")
    found: list[datetime] = []
    if count <= 0:
        return found
    local_after = after.astimezone(zone)
    first_day = local_after.date()
    earliest = (local_after.hour, local_after.minute)
    for day in _matching_days(expression, first_day):
        for hour in sorted(expression.hours):
            for minute in sorted(expression.minutes):
                if day == first_day and (hour, minute) < earliest:
                    continue
                wall = datetime(day.year, day.month, day.day, hour, minute)
                moment = _resolve(wall, zone, on_gap)
                if moment is None or moment <= after or (found and moment <= found[-1]):
                    continue
                found.append(moment)
                if len(found) == count:
                    return found
    return found


def _matching_days(expression: CronExpression, first_day: date) -> Iterator[date]:
    for year in sorted(y for y in expression.years if y >= first_day.year):
        for month in sorted(expression.months):
            if (year, month) < (first_day.year, first_day.month):
                continue
            for day in expression.days.days_in(year, month):
                candidate = date(year, month, day)
                if candidate >= first_day:
                    yield candidate


def _resolve(wall: datetime, zone: tzinfo, on_gap: str) -> datetime | None:
    """The UTC moment a local wall-clock time fires at; None when it is skipped."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is the first of two occurrences in autumn
    if on_gap == "skip":
        return None
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: tzinfo) -> datetime:
    """The first moment after the spring-forward gap that contains ``wall``.

    Inside a gap, fold=1 reads ``wall`` with the offset after the change (an instant before
    the change) and fold=0 with the offset before it (an instant after the change); the
    change itself lies between, found by bisection on whole seconds.
    """
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def rate_fire_times(expression: RateExpression, after: datetime, count: int,
                    anchor: datetime | None = None) -> list[datetime]:
    """Fire times ``anchor + k * interval`` (k >= 0) strictly after ``after``, in UTC.

    ``anchor`` (when the schedule started) defaults to ``after`` rounded down to the minute.
    Intervals are fixed durations: a day is 24 hours whatever the time zone does.
    """
    if count <= 0:
        return []
    start = anchor if anchor is not None else after.replace(second=0, microsecond=0)
    start = start.astimezone(UTC)
    try:
        interval = expression.interval
    except OverflowError:  # longer than any representable date range: never fires
        return []
    steps = 0 if start > after else (after - start) // interval + 1
    found = []
    for index in range(steps, steps + count):
        try:
            found.append(start + index * interval)
        except OverflowError:
            break
    return found


def at_moment(expression: AtExpression, zone: tzinfo, on_gap: str = "shift") -> datetime:
    """The UTC moment a one-time ``at()`` fires: its wall-clock time in ``zone``. A time that
    a spring-forward change skips fires at the first moment after the gap (a one-time run is
    never silently dropped); a repeated time fires at its first occurrence."""
    moment = _resolve(expression.wall, zone, on_gap)
    return moment if moment is not None else _gap_end(expression.wall, zone)


def at_fire_times(expression: AtExpression, zone: tzinfo, after: datetime,
                  count: int) -> list[datetime]:
    """The one fire time when it is strictly after ``after`` (and ``count`` > 0), else []."""
    moment = at_moment(expression, zone)
    return [moment] if count > 0 and moment > after else []
