"""AWS schedule expressions: validation, next fire times, English descriptions.

(Contract; implementation pending.)
"""

from __future__ import annotations

from datetime import datetime


class ScheduleError(ValueError):
    """An invalid expression; the message says which field is wrong and why."""


def validate(expression: str) -> list[str]:
    """Every problem with ``expression`` as specific messages; ``[]`` when valid."""
    raise NotImplementedError


def next_fire_times(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``, as aware UTC datetimes."""
    raise NotImplementedError


def describe(expression: str, timezone: str = "UTC") -> str:
    """A plain-English description, e.g. 'every 10 minutes'."""
    raise NotImplementedError
