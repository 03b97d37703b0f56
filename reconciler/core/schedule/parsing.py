"""Parsing and validation of AWS schedule expressions, exactly as EventBridge documents them.

``analyse(expression)`` returns the parsed model (or ``None``) and every problem found, each
message naming the field and saying why. The grammar is deliberately no looser than AWS's:
no whitespace around the expression or inside the parentheses, single spaces between
fields, upper-case names (``JAN``, ``MON``), lower-case ``cron``/``rate`` and units.
``L``, ``LW``, ``nW``, ``nL`` and ``n#k`` stand alone in their field (as in AWS/Quartz).
The grammar of lists, ranges and steps shared by all fields is in ``schedule.fields``.
"""

from __future__ import annotations

import re
from datetime import datetime

from reconciler.core.schedule.fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH,
    YEAR,
    Problems,
    plain_field,
    value_of,
)
from reconciler.core.schedule.model import (
    FIRST_YEAR,
    LAST_YEAR,
    AtExpression,
    CronExpression,
    DayRule,
    DaysOfMonth,
    DaysOfWeek,
    Expression,
    LastDayOfMonth,
    LastWeekdayInMonth,
    LastWeekdayOfMonth,
    NearestWeekday,
    NthWeekdayInMonth,
    RateExpression,
)

CRON_FIELDS = "minute hour day-of-month month day-of-week year"
RATE_UNITS = ("minute", "minutes", "hour", "hours", "day", "days")
UNSUPPORTED_RATE_UNITS = ("second", "seconds", "week", "weeks", "month", "months",
                          "year", "years")
UNIT_HINT = "use minute(s), hour(s) or day(s)"
SEPARATE_BY_ONE_SPACE = ("rate(): write a value and a unit separated by one space, "
                         "e.g. rate(5 minutes)")


def analyse(expression: object) -> tuple[Expression | None, list[str]]:
    """The parsed expression (``None`` when invalid) and every problem with it."""
    problems = Problems()
    if not isinstance(expression, str):
        problems.add(f"schedule expression must be a string, got {type(expression).__name__}")
        return None, problems
    if expression.strip() == "":
        problems.add("schedule expression is empty")
        return None, problems
    if expression != expression.strip():
        problems.add("schedule expression has leading or trailing whitespace")
        return None, problems
    match = re.fullmatch(r"([A-Za-z]+)\((.*)\)", expression, re.DOTALL)
    head = re.match(r"[A-Za-z]+", expression)
    word = head.group() if head else ""
    if match is None:
        problems.add(_unbracketed(expression, word))
        return None, problems
    kind, body = match.groups()
    if kind == "at":
        return _at(expression, body, problems), problems
    if kind == "cron":
        return _cron(expression, body, problems), problems
    if kind == "rate":
        return _rate(expression, body, problems), problems
    if kind.lower() in ("cron", "rate", "at"):
        problems.add(f"write {kind.lower()}(...) in lower case, not {kind}(...)")
    else:
        problems.add(f"unknown schedule type {kind!r}: use cron(...), rate(...) or at(...)")
    return None, problems


def _unbracketed(expression: str, word: str) -> str:
    """The message for an expression that is not ``word(...)``."""
    if word.lower() not in ("cron", "rate", "at"):
        return (f"schedule expression must be cron(...), rate(...) or at(...), "
                f"got {_short(expression)!r}")
    rest = expression[len(word):]
    if not rest.startswith("("):
        example = {"cron": "cron(0 12 * * ? *)", "rate": "rate(5 minutes)",
                   "at": AT_EXAMPLE}[word.lower()]
        return f"{word} needs parentheses, e.g. {example}"
    if ")" in rest:
        return f"{word}(...): unexpected text after the closing parenthesis"
    return f"{word}( is missing its closing parenthesis"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- at() ---------------------------------------------------------------------------------

AT_EXAMPLE = "at(2026-12-24T18:00:00)"
AT_FORMAT = f"at(yyyy-mm-ddThh:mm:ss), e.g. {AT_EXAMPLE}"


def _at(text: str, body: str, problems: Problems) -> AtExpression | None:
    """``at(yyyy-mm-ddThh:mm:ss)`` exactly as EventBridge Scheduler documents it: no time zone
    suffix (the cron's ``timezone`` applies), no fractions, seconds required."""
    if body != body.strip():
        return problems.add("at(): no spaces allowed directly inside the parentheses")
    if body == "":
        return problems.add(f"at() needs a date and time: {AT_FORMAT}")
    if re.fullmatch(r".*(Z|[+-][0-9]{2}:?[0-9]{2})", body) and "T" in body:
        return problems.add("at(): no time zone offset or Z; the time is read in the cron's "
                            f"'timezone' (default UTC): {AT_FORMAT}")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]+", body):
        return problems.add(f"at(): separate the date and the time with T, not a space: "
                            f"{AT_FORMAT}")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", body):
        return problems.add(f"at(): a time is required after the date: {AT_FORMAT}")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}", body):
        return problems.add(f"at(): seconds are required (hh:mm:ss): {AT_FORMAT}")
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+", body):
        return problems.add(f"at(): fractions of a second are not allowed: {AT_FORMAT}")
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})",
                         body)
    if match is None:
        return problems.add(f"at(): {_short(body)!r} is not a date and time; write {AT_FORMAT}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if not FIRST_YEAR <= year <= LAST_YEAR:
        return problems.add(f"at(): year must be {FIRST_YEAR}-{LAST_YEAR}, got {year}")
    if not 1 <= month <= 12:
        return problems.add(f"at(): month must be 01-12, got {match.group(2)}")
    if hour > 23 or minute > 59 or second > 59:
        return problems.add(f"at(): {body[11:]} is not a time of day (00:00:00-23:59:59)")
    try:
        wall = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return problems.add(f"at(): {body[:10]} is not a date (the month has no day {day})")
    return AtExpression(text=text, wall=wall)


# --- rate() -------------------------------------------------------------------------------

def _rate(text: str, body: str, problems: Problems) -> RateExpression | None:
    if body != body.strip():
        return problems.add("rate(): no spaces allowed directly inside the parentheses")
    if body == "":
        return problems.add("rate() needs a value and a unit, e.g. rate(5 minutes)")
    if re.search(r"[^\S ]", body):
        return problems.add(SEPARATE_BY_ONE_SPACE)
    parts = body.split(" ")
    if len(parts) == 1:
        return problems.add(f"rate(): missing unit after {parts[0]!r} ({UNIT_HINT})")
    if len(parts) > 2 or "" in parts:
        return problems.add(SEPARATE_BY_ONE_SPACE)
    value_text, unit = parts
    value = None
    if not re.fullmatch(r"[0-9]+", value_text) or int(value_text) == 0:
        problems.add(f"rate(): value must be a positive whole number, got {value_text!r}")
    elif value_text.startswith("0"):
        problems.add(f"rate(): value must be written without leading zeros, got {value_text!r}")
    else:
        value = int(value_text)
    if unit not in RATE_UNITS:
        if unit.lower() in RATE_UNITS:
            problems.add(f"rate(): unit must be lower case, got {unit!r}")
        elif unit.lower() in UNSUPPORTED_RATE_UNITS:
            problems.add(f"rate(): unit {unit!r} is not supported; {UNIT_HINT}")
        else:
            problems.add(f"rate(): unknown unit {unit!r}; {UNIT_HINT}")
        return None
    if value is None:
        return None
    singular = unit.rstrip("s")
    if value == 1 and unit != singular:
        return problems.add(f"rate(): value 1 needs the singular unit {singular!r}, not {unit!r}")
    if value > 1 and unit == singular:
        return problems.add(f"rate(): value {value} needs the plural unit {unit + 's'!r}, "
                            f"not {unit!r}")
    return RateExpression(text=text, value=value, unit=singular)


# --- cron() -------------------------------------------------------------------------------

def _cron(text: str, body: str, problems: Problems) -> CronExpression | None:
    if body != body.strip():
        return problems.add("cron(): no spaces allowed directly inside the parentheses")
    fields = body.split(" ") if body else []
    if "" in fields or re.search(r"[^\S ]", body):
        return problems.add("cron(): fields must be separated by single spaces")
    if len(fields) != 6:
        return problems.add(f"cron() needs 6 fields ({CRON_FIELDS}), got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    minutes = plain_field(minute, MINUTE, problems)
    hours = plain_field(hour, HOUR, problems)
    months = plain_field(month, MONTH, problems)
    years = plain_field(year, YEAR, problems)
    dom_rule = _day_of_month(dom, problems)
    dow_rule = _day_of_week(dow, problems)
    if dom == "?" and dow == "?":
        problems.add("day-of-month and day-of-week are both ?; exactly one of them must be ?")
    elif dom != "?" and dow != "?":
        problems.add(f"day-of-month ({dom}) and day-of-week ({dow}) are both set; "
                     "AWS requires ? in one of them")
    if problems:
        return None
    days = dom_rule if dom != "?" else dow_rule
    assert minutes and hours and months and years and days is not None
    return CronExpression(text=text, fields=(minute, hour, dom, month, dow, year),
                          minutes=minutes, hours=hours, days=days, months=months, years=years)


def _day_of_month(text: str, problems: Problems) -> DayRule | None:
    if text == "?":
        return None
    if text == "L":
        return LastDayOfMonth()
    if text == "LW":
        return LastWeekdayOfMonth()
    if re.fullmatch(r"L-[0-9]+", text):
        return problems.add(f"day-of-month: offsets from the last day ({text}) are not supported")
    nearest = re.fullmatch(r"([0-9]+)W", text)
    if nearest:
        day = value_of(nearest.group(1), DAY_OF_MONTH, problems)
        return NearestWeekday(day) if day is not None else None
    if "?" not in text and ("L" in text or "W" in text):
        if "," in text:
            return problems.add(f"day-of-month: L and W can't be used in a list ({text}); "
                                "they must stand alone")
        return problems.add(f"day-of-month: {text!r} is not a valid use of L or W "
                            "(use L, LW or a day followed by W, e.g. 15W)")
    days = plain_field(text, DAY_OF_MONTH, problems)
    return DaysOfMonth(days) if days is not None else None


def _day_of_week(text: str, problems: Problems) -> DayRule | None:
    if text == "?":
        return None
    if "#" in text and "?" not in text:
        if "," in text:
            return problems.add(f"day-of-week: # can't be used in a list ({text}); AWS allows "
                                "only one n#k expression in the field")
        nth = re.fullmatch(r"([^#]+)#([0-9]+)", text)
        if nth is None:
            return problems.add(f"day-of-week: {text!r} is not a valid # expression "
                                "(e.g. 3#2 is the second Tuesday)")
        weekday = value_of(nth.group(1), DAY_OF_WEEK, problems)
        count = int(nth.group(2))
        if not 1 <= count <= 5:
            return problems.add(f"day-of-week: the number after # must be 1-5, got {count}")
        return NthWeekdayInMonth(weekday, count) if weekday is not None else None
    if text == "L":  # alone, L is the last day of the week: every Saturday (as in Quartz)
        return DaysOfWeek(frozenset({7}))
    if "L" in text and "?" not in text:
        if re.search(r"[,\-/]", text):
            return problems.add(f"day-of-week: L can't be combined with lists, ranges or steps "
                                f"({text}); use one day such as 6L")
        weekday = value_of(text[:-1], DAY_OF_WEEK, problems) if text.endswith("L") else None
        if weekday is None and not text.endswith("L"):
            problems.add(f"day-of-week: {text!r} is not a valid use of L (e.g. 6L is the "
                         "last Friday of the month)")
        return LastWeekdayInMonth(weekday) if weekday is not None else None
    if "W" in text.replace("WED", ""):
        return problems.add("day-of-week: W is only allowed in day-of-month")
    weekdays = plain_field(text, DAY_OF_WEEK, problems)
    return DaysOfWeek(weekdays) if weekdays is not None else None
