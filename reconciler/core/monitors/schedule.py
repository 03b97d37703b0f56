"""AWS schedule expressions as a monitoring service's schedule, exactly, or refused (pure).

``cron(m h dom mon dow year)`` becomes the 5-field ``m h dom mon dow`` in the cron's zone:
``?`` becomes ``*``, AWS's day-of-week 1-7 (SUN-SAT) becomes 0-6; each field is written from
the values the AWS expression means (``schedule.parsing``), so wrapping ranges (``FRI-MON``,
hours ``20-2``) become lists. A year other than ``*`` cannot be expressed: refused.

``L`` (last day of the month), ``LW`` (last weekday), ``nL`` (last such weekday) and ``n#k``
(k-th such weekday) are kept for Healthchecks, whose parser (cronsim) gives them AWS's meaning;
``nW`` (nearest weekday) is refused (cronsim has no such rule). Cronitor documents none of
them: refused there.

Daylight saving: AWS skips a wall-clock time that a spring-forward change skips and fires a
repeated one once (``schedule.evaluation``). cronsim does the same except (a) for a schedule
with fixed minute and hour (neither starts with ``*``) it fires a skipped time at the end of
the gap, and (b) otherwise it fires a repeated time twice (and is not relied on in a gap);
Cronitor documents neither. A cron that fires in such a changeover (in its next 30 years) where the service would disagree is
refused, naming the first such time: a monitor that expects a run AWS does not make would
alert for nothing.

``rate(N unit)`` fires N units after the schedule's creation, not at round times: a
Healthchecks simple check with ``timeout`` = the period, or Cronitor's ``every N units``.

A one-time ``at()`` is refused: both services watch a recurring heartbeat, and a check that
expects one run would report the cron down for ever after it (a plan error of the cron that
says to drop ``notifications`` or use ``monitor: none``). An ``active`` window is not told to
the service (documented in the README as left for later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from reconciler.core.monitors.model import CRONITOR, HEALTHCHECKS, SERVICE_NAMES
from reconciler.core.schedule.expressions import parse
from reconciler.core.schedule.model import (
    FIRST_YEAR,
    LAST_YEAR,
    AtExpression,
    CronExpression,
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastWeekdayInMonth,
    LastWeekdayOfMonth,
    NearestWeekday,
    NthWeekdayInMonth,
    RateExpression,
)

HEALTHCHECKS_SCHEDULE_MAX = 100   # Healthchecks stores a schedule in 100 characters
PERIOD_MIN_S, PERIOD_MAX_S = 60, 31_536_000
DST_YEARS = 30                    # changeovers looked at: this year and the next 29


class MonitorRefused(ValueError):
    """The cron's schedule cannot be expressed exactly at the service; says why."""


@dataclass(frozen=True)
class MonitorTiming:
    """``schedule`` + ``tz`` (cron) or ``period_s`` (a Healthchecks rate) or Cronitor's
    ``every N units`` in ``schedule`` with no zone."""

    schedule: str | None = None
    tz: str | None = None
    period_s: int | None = None


@lru_cache(maxsize=4096)
def monitor_timing(expression: str, timezone: str, provider: str,
                   year: int | None = None) -> MonitorTiming:
    """The monitor's timing for an AWS expression; raises ``MonitorRefused``. ``year``: the
    first year whose daylight-saving changes are checked (None: 2000)."""
    parsed = parse(expression)
    if isinstance(parsed, RateExpression):
        return _rate(parsed, provider)
    if isinstance(parsed, AtExpression):
        raise MonitorRefused(f"{expression} runs once, and {SERVICE_NAMES[provider]} watches "
                             "recurring runs (a check expecting one run would report it down "
                             "for ever after); remove 'notifications' from this one-time cron")
    text = five_field(parsed, provider)
    if provider == HEALTHCHECKS and len(text) > HEALTHCHECKS_SCHEDULE_MAX:
        raise MonitorRefused(f"the schedule as a 5-field expression ({text!r}) is {len(text)} "
                             f"characters; Healthchecks.io accepts at most "
                             f"{HEALTHCHECKS_SCHEDULE_MAX}")
    _check_changeovers(parsed, text, timezone, provider, year or 2000)
    return MonitorTiming(schedule=text, tz=timezone)


def _rate(rate: RateExpression, provider: str) -> MonitorTiming:
    seconds = int(rate.interval.total_seconds())
    if provider == HEALTHCHECKS:
        if not PERIOD_MIN_S <= seconds <= PERIOD_MAX_S:
            raise MonitorRefused(f"{rate.text} is a period of {seconds} s; a Healthchecks.io "
                                 f"simple check's period is {PERIOD_MIN_S}-{PERIOD_MAX_S} s")
        return MonitorTiming(period_s=seconds)
    unit = rate.unit if rate.value == 1 else f"{rate.unit}s"
    return MonitorTiming(schedule=f"every {rate.value} {unit}")


def five_field(expression: CronExpression, provider: str) -> str:
    """``m h dom mon dow`` meaning exactly what ``expression`` means; raises
    ``MonitorRefused`` for what the service cannot express."""
    if expression.years != frozenset(range(FIRST_YEAR, LAST_YEAR + 1)):
        raise MonitorRefused(f"year {expression.fields[5]!r}: a 5-field schedule has no year "
                             "(only * can be expressed)")
    service = SERVICE_NAMES[provider]
    rule = expression.days
    dom, dow = "*", "*"
    if isinstance(rule, DaysOfMonth):
        dom = render(rule.days, 1, 31)
    elif isinstance(rule, DaysOfWeek):
        dow = render(frozenset(d - 1 for d in rule.weekdays), 0, 6, steps=False)
    elif isinstance(rule, NearestWeekday):
        raise MonitorRefused(f"day-of-month {rule.day}W (the weekday nearest day {rule.day}) "
                             f"has no equivalent in {service}'s cron syntax")
    elif provider != HEALTHCHECKS:
        raise MonitorRefused(f"day {_feature(rule)}: {service} documents no such cron syntax, "
                             "so its meaning there cannot be checked")
    elif isinstance(rule, LastDayOfMonth):
        dom = "L"
    elif isinstance(rule, LastWeekdayOfMonth):
        dom = "LW"
    elif isinstance(rule, LastWeekdayInMonth):
        dow = f"{rule.weekday - 1}L"
    elif isinstance(rule, NthWeekdayInMonth):
        dow = f"{rule.weekday - 1}#{rule.nth}"
    else:  # pragma: no cover - every DayRule is handled above
        raise MonitorRefused(f"day rule {rule!r} cannot be expressed")
    return " ".join((render(expression.minutes, 0, 59), render(expression.hours, 0, 23),
                     dom, render(expression.months, 1, 12), dow))


def _feature(rule) -> str:
    if isinstance(rule, LastDayOfMonth):
        return "L (last day of the month)"
    if isinstance(rule, LastWeekdayOfMonth):
        return "LW (last weekday of the month)"
    if isinstance(rule, LastWeekdayInMonth):
        return f"{rule.weekday}L (last such weekday of the month)"
    if isinstance(rule, NthWeekdayInMonth):
        return f"{rule.weekday}#{rule.nth} (k-th such weekday of the month)"
    return repr(rule)


def render(values: frozenset[int], low: int, high: int, steps: bool = True) -> str:
    """A field's values as ``*``, ``*/s``, ``a/s``, ``a-b/s`` or a list of values and ranges
    (steps only where every cron parser reads them alike: never in day-of-week, where 7 is
    also Sunday)."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if steps and len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and ordered == list(range(ordered[0], ordered[-1] + 1, step)):
            first, last = ordered[0], ordered[-1]
            if last + step > high:
                return f"*/{step}" if first == low else f"{first}/{step}"
            return f"{first}-{last}/{step}"
    parts, start = [], 0
    for index in range(1, len(ordered) + 1):
        if index == len(ordered) or ordered[index] != ordered[index - 1] + 1:
            run = ordered[start:index]
            parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else [str(v) for v in run]
            start = index
    return ",".join(parts)


# --- daylight saving ------------------------------------------------------------------------

@dataclass(frozen=True)
class Changeover:
    """Wall-clock minutes from ``start`` (inclusive) to ``end`` (exclusive) that a change of
    offset skips (``skipped``) or repeats."""

    start: datetime
    end: datetime
    skipped: bool


@lru_cache(maxsize=256)
def changeovers(timezone: str, first_year: int, years: int = DST_YEARS) -> tuple[Changeover, ...]:
    """Every offset change of ``timezone`` from ``first_year`` on, as local wall-clock spans."""
    zone = ZoneInfo(timezone)
    found = []
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(first_year + years, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    offset = moment.astimezone(zone).utcoffset()
    while moment < end:
        nxt = moment + step
        after = nxt.astimezone(zone).utcoffset()
        if after != offset:
            low, high = moment, nxt
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            change = high.replace(second=0, microsecond=0)
            before_wall = (change + offset).replace(tzinfo=None)
            after_wall = (change + after).replace(tzinfo=None)
            if after > offset:
                found.append(Changeover(before_wall, after_wall, skipped=True))
            else:
                found.append(Changeover(after_wall, before_wall, skipped=False))
            offset = after
        moment = nxt
    return tuple(found)


def _day_matches(expression: CronExpression, wall: datetime) -> bool:
    return (wall.month in expression.months and wall.year in expression.years
            and wall.day in expression.days.days_in(wall.year, wall.month))


def _first_fire_in(expression: CronExpression, span: Changeover) -> datetime | None:
    """The first wall-clock minute of ``span`` the expression fires at (None: none)."""
    wall = span.start
    while wall < span.end:
        if wall.hour not in expression.hours:
            wall = wall.replace(minute=0) + timedelta(hours=1)
        elif not _day_matches(expression, wall):
            wall = wall.replace(hour=0, minute=0) + timedelta(days=1)
        elif wall.minute in expression.minutes:
            return wall
        else:
            wall += timedelta(minutes=1)
    return None


def _check_changeovers(expression: CronExpression, text: str, timezone: str, provider: str,
                       year: int) -> None:
    minute, hour = text.split()[:2]
    fixed_time = not minute.startswith("*") and not hour.startswith("*")
    for span in changeovers(timezone, year):
        if provider == HEALTHCHECKS and fixed_time and not span.skipped:
            continue  # cronsim fires a repeated fixed time once, at its first occurrence
        wall = _first_fire_in(expression, span)
        if wall is None:
            continue
        when = f"{wall:%Y-%m-%d %H:%M} {timezone}"
        if provider == CRONITOR:
            service = "does not document what it expects then"
        elif span.skipped:
            service = ("would expect it at the end of the gap" if fixed_time
                       else "does not match AWS there")
        else:
            service = "would expect it twice"
        aws = "AWS skips that run" if span.skipped else "AWS runs it once"
        raise MonitorRefused(
            f"the schedule fires at {when}, a time the daylight-saving change "
            f"{'skips' if span.skipped else 'repeats'}: {aws}, and {SERVICE_NAMES[provider]} "
            f"{service}; move the run out of the changeover hour or use a zone without "
            "daylight saving (UTC)")
