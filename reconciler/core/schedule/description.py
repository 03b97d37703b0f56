"""Plain-English descriptions of parsed schedule expressions.

Readable rather than exhaustive: common shapes get natural phrases ("at 12:00 every day",
"every 5 minutes between 08:00 and 17:55 Monday through Friday"); unusual combinations fall
back to listing the values.
"""

from __future__ import annotations

from reconciler.core.schedule.model import (
    FIRST_YEAR,
    LAST_YEAR,
    AtExpression,
    CronExpression,
    DayRule,
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastWeekdayInMonth,
    LastWeekdayOfMonth,
    NearestWeekday,
    NthWeekdayInMonth,
    RateExpression,
)

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
ORDINALS = ("first", "second", "third", "fourth", "fifth")
MAX_LISTED_TIMES = 6


def describe_rate(expression: RateExpression) -> str:
    if expression.value == 1:
        return f"every {expression.unit}"
    return f"every {expression.value} {expression.unit}s"


def describe_at(expression: AtExpression) -> str:
    """``once, at 18:00 on 2026-12-24`` (seconds shown only when not zero)."""
    wall = expression.wall
    time = f"{wall:%H:%M:%S}" if wall.second else f"{wall:%H:%M}"
    return f"once, at {time} on {wall:%Y-%m-%d}"


def describe_cron(expression: CronExpression) -> str:
    time = _time_phrase(expression)
    day = _day_phrase(expression.days, expression.months)
    sub_daily = not (time.startswith("at ") and time[3].isdigit())
    parts = [time] if (sub_daily and day == "every day") else [time, day]
    return " ".join(parts) + _month_phrase(expression.months) + _year_phrase(expression.years)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _step(text: str) -> tuple[int, int] | None:
    """(start, step) for ``*/n`` or ``s/n``; None otherwise."""
    base, slash, step = text.partition("/")
    if not slash or "," in text or "-" in base:
        return None
    return (0 if base == "*" else int(base)), int(step)


def _is_explicit(text: str) -> bool:
    """Only numbers and commas: a fixed, listable set of values."""
    return text != "" and all(part.isdigit() for part in text.split(","))


def _time_phrase(expression: CronExpression) -> str:
    minute_text, hour_text = expression.fields[0], expression.fields[1]
    minutes, hours = sorted(expression.minutes), sorted(expression.hours)
    if (_is_explicit(minute_text) and _is_explicit(hour_text)
            and len(minutes) * len(hours) <= MAX_LISTED_TIMES):
        return "at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    hour_step = _step(hour_text)
    if hour_step and len(minutes) == 1 and _is_explicit(minute_text):
        start, every = hour_step
        return (f"every {every} hours at minute {minutes[0]}"
                + (f" from {start:02d}:{minutes[0]:02d}" if start else ""))
    minute_phrase = _minute_phrase(minute_text, minutes)
    return minute_phrase + _hour_phrase(hour_text, hours, minutes, minute_phrase)


def _minute_phrase(text: str, minutes: list[int]) -> str:
    if text == "*":
        return "every minute"
    step = _step(text)
    if step:
        start, every = step
        return f"every {every} minutes" + (f" from minute {start}" if start else "")
    if len(minutes) == 1:
        return f"at minute {minutes[0]}"
    if "-" in text and "," not in text and "/" not in text:
        first, last = text.split("-")
        return f"every minute from minute {first} to {last}"
    return "at minutes " + _join([str(m) for m in minutes])


def _hour_phrase(text: str, hours: list[int], minutes: list[int], minute_phrase: str) -> str:
    if text == "*":
        return " of every hour" if minute_phrase.startswith("at") else ""
    step = _step(text)
    if step:
        start, every = step
        return f" every {every} hours" + (f" from {start:02d}:00" if start else "")
    if "-" in text and "," not in text and "/" not in text:
        first, last = (int(part) for part in text.split("-"))
        return f" between {first:02d}:{minutes[0]:02d} and {last:02d}:{minutes[-1]:02d}"
    if len(hours) == 1:
        return f" during hour {hours[0]:02d}"
    return " during hours " + _join([f"{h:02d}" for h in hours])


def _day_phrase(rule: DayRule, months: frozenset[int]) -> str:
    scope = "every month" if len(months) == 12 else "the month"
    if isinstance(rule, DaysOfMonth):
        days = sorted(rule.days)
        if len(days) == 31:
            return "every day"
        word = "day" if len(days) == 1 else "days"
        return f"on {word} {_join([str(d) for d in days])} of {scope}"
    if isinstance(rule, LastDayOfMonth):
        return f"on the last day of {scope}"
    if isinstance(rule, LastWeekdayOfMonth):
        return f"on the last weekday of {scope}"
    if isinstance(rule, NearestWeekday):
        return f"on the weekday nearest day {rule.day} of {scope}"
    if isinstance(rule, LastWeekdayInMonth):
        return f"on the last {WEEKDAYS[rule.weekday - 1]} of {scope}"
    if isinstance(rule, NthWeekdayInMonth):
        return f"on the {ORDINALS[rule.nth - 1]} {WEEKDAYS[rule.weekday - 1]} of {scope}"
    assert isinstance(rule, DaysOfWeek)
    weekdays = sorted(rule.weekdays)
    if len(weekdays) == 7:
        return "every day"
    if len(weekdays) >= 3 and weekdays == list(range(weekdays[0], weekdays[-1] + 1)):
        return f"{WEEKDAYS[weekdays[0] - 1]} through {WEEKDAYS[weekdays[-1] - 1]}"
    return "on " + _join([WEEKDAYS[d - 1] + "s" for d in weekdays])


def _runs(values: list[int]) -> bool:
    return values == list(range(values[0], values[-1] + 1))


def _month_phrase(months: frozenset[int]) -> str:
    chosen = sorted(months)
    if len(chosen) == 12:
        return ""
    if len(chosen) >= 3 and _runs(chosen):
        return f" from {MONTHS[chosen[0] - 1]} to {MONTHS[chosen[-1] - 1]}"
    return " in " + _join([MONTHS[m - 1] for m in chosen])


def _year_phrase(years: frozenset[int]) -> str:
    chosen = sorted(years)
    if chosen == list(range(FIRST_YEAR, LAST_YEAR + 1)):
        return ""
    if len(chosen) >= 2 and _runs(chosen):
        return f", {chosen[0]} to {chosen[-1]}"
    every = chosen[1] - chosen[0] if len(chosen) >= 3 else 0
    if every and chosen == list(range(chosen[0], chosen[-1] + 1, every)):
        if chosen[-1] + every > LAST_YEAR:
            return f", every {every} years from {chosen[0]}"
        return f", every {every} years from {chosen[0]} to {chosen[-1]}"
    return ", in " + _join([str(y) for y in chosen])
