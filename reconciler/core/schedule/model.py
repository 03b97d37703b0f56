"""Parsed AWS schedule expressions: ``cron()`` with its day rule, and ``rate()``.

Values follow AWS: minutes 0-59, hours 0-23, day-of-month 1-31, months 1-12, day-of-week
1-7 with 1 = Sunday, years 1970-2199. A cron expression restricts days either by
day-of-month or by day-of-week (the other field is ``?``), so exactly one ``DayRule``
describes which days of a month it fires on.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta


class ScheduleError(ValueError):
    """An invalid expression; the message says which field is wrong and why."""


MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
FIRST_YEAR = 1970
LAST_YEAR = 2199


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def aws_weekday(day: date) -> int:
    """AWS day-of-week of ``day``: 1 = Sunday ... 7 = Saturday."""
    return (day.weekday() + 1) % 7 + 1


class DayRule:
    """Which days of a given month a cron expression fires on."""

    def days_in(self, year: int, month: int) -> list[int]:
        """Matching days of ``month`` in ``year``, ascending (possibly none)."""
        raise NotImplementedError


@dataclass(frozen=True)
class DaysOfMonth(DayRule):
    """Plain day-of-month values (``1``, ``1,15``, ``*``, ``1-7``, ``1/5``); 31 skips short months."""

    days: frozenset[int]

    def days_in(self, year: int, month: int) -> list[int]:
        last = days_in_month(year, month)
        return sorted(d for d in self.days if d <= last)


@dataclass(frozen=True)
class LastDayOfMonth(DayRule):
    """Day-of-month ``L``."""

    def days_in(self, year: int, month: int) -> list[int]:
        return [days_in_month(year, month)]


@dataclass(frozen=True)
class LastWeekdayOfMonth(DayRule):
    """Day-of-month ``LW``: the last Monday-to-Friday day of the month."""

    def days_in(self, year: int, month: int) -> list[int]:
        last = date(year, month, days_in_month(year, month))
        while last.weekday() >= 5:
            last -= timedelta(days=1)
        return [last.day]


@dataclass(frozen=True)
class NearestWeekday(DayRule):
    """Day-of-month ``nW``: the weekday nearest day ``n`` without leaving the month.

    Saturday moves to Friday, Sunday to Monday, except that ``1W`` on a Saturday moves to
    Monday the 3rd and a Sunday on the month's last day moves to the Friday before. When the
    month has no day ``n`` (``31W`` in April) nothing fires that month.
    """

    day: int

    def days_in(self, year: int, month: int) -> list[int]:
        last = days_in_month(year, month)
        if self.day > last:
            return []
        target = date(year, month, self.day)
        if target.weekday() == 5:  # Saturday
            return [self.day + 2] if self.day == 1 else [self.day - 1]
        if target.weekday() == 6:  # Sunday
            return [self.day - 2] if self.day == last else [self.day + 1]
        return [self.day]


@dataclass(frozen=True)
class DaysOfWeek(DayRule):
    """Plain day-of-week values, 1 = Sunday ... 7 = Saturday."""

    weekdays: frozenset[int]

    def days_in(self, year: int, month: int) -> list[int]:
        return [d for d in range(1, days_in_month(year, month) + 1)
                if aws_weekday(date(year, month, d)) in self.weekdays]


@dataclass(frozen=True)
class LastWeekdayInMonth(DayRule):
    """Day-of-week ``nL``: the last such weekday of the month (``6L`` = last Friday)."""

    weekday: int

    def days_in(self, year: int, month: int) -> list[int]:
        last = days_in_month(year, month)
        for d in range(last, last - 7, -1):
            if aws_weekday(date(year, month, d)) == self.weekday:
                return [d]
        raise AssertionError("every weekday occurs in the last seven days of a month")


@dataclass(frozen=True)
class NthWeekdayInMonth(DayRule):
    """Day-of-week ``n#k``: the k-th such weekday of the month; months without one skip."""

    weekday: int
    nth: int

    def days_in(self, year: int, month: int) -> list[int]:
        first = aws_weekday(date(year, month, 1))
        day = 1 + (self.weekday - first) % 7 + 7 * (self.nth - 1)
        return [day] if day <= days_in_month(year, month) else []


@dataclass(frozen=True)
class CronExpression:
    """A valid ``cron(m h dom mon dow year)``: the allowed values of each field.

    Invariants: every set is non-empty and within AWS's ranges; ``fields`` holds the six
    field texts exactly as written (used for descriptions).
    """

    text: str
    fields: tuple[str, str, str, str, str, str]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: DayRule
    months: frozenset[int]
    years: frozenset[int]


RATE_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class RateExpression:
    """A valid ``rate(value unit)``; ``unit`` is singular (minute, hour or day)."""

    text: str
    value: int
    unit: str

    @property
    def interval(self) -> timedelta:
        """Fixed duration between fires (a day is 24 hours, also across DST changes)."""
        return timedelta(seconds=self.value * RATE_UNIT_SECONDS[self.unit])


@dataclass(frozen=True)
class AtExpression:
    """A valid one-time ``at(yyyy-mm-ddThh:mm:ss)``; ``wall`` is the naive wall-clock time,
    read in the cron's time zone."""

    text: str
    wall: datetime


Expression = CronExpression | RateExpression | AtExpression
