"""Standard 5-field cron (and its macros, ``@every``) to AWS's ``cron()`` / ``rate()``.

Exact, or refused with the reason:
- minute, hour and month are carried over as written (month names upper-cased);
- day-of-week numbers move from 0-7 (0 and 7 are Sunday) to AWS's 1-7 (1 is Sunday), as an
  explicit list of days; names (``MON-FRI``) are kept; ``n#k`` and ``nL`` are renumbered;
- exactly one of day-of-month / day-of-week becomes ``?``. Standard cron runs on the days
  that match *either* field when both are restricted (neither starts with ``*``), and on the
  days matching *both* otherwise; AWS has one day field: when both really restrict the day,
  there is no AWS equivalent and the schedule is refused;
- ``@every`` becomes ``rate()`` when it is a whole number of minutes.
``verify.py`` then checks the result's next 100 fire times against the source's.
"""

from __future__ import annotations

import re

from reconciler.core.importers.model import Refusal

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_TERM = re.compile(r"(\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?")
_DURATION = re.compile(r"(?:([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|us|µs|ns))")
_UNIT_S = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def expand_macro(expression: str) -> str:
    """The 5 fields of ``expression`` (a macro becomes its fields)."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.lower() in MACROS:
            return MACROS[text.lower()]
        if text.lower() == "@reboot":
            raise Refusal("schedule", "@reboot (run at start-up) has no AWS schedule")
        raise Refusal("schedule", f"unknown macro {text!r} (known: {', '.join(MACROS)}, "
                                  "@every DURATION)")
    return text


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration (``1h30m``, ``90s``); ``ValueError`` when it is not one."""
    if not text or _DURATION.sub("", text) != "":
        raise ValueError(f"{text!r} is not a duration like 5m, 1h30m or 90s")
    return sum(float(value) * _UNIT_S[unit] for value, unit in _DURATION.findall(text))


def every_to_rate(duration: str) -> str:
    """``@every 1h30m`` -> ``rate(90 minutes)``: whole minutes only, in the largest unit that
    divides the interval."""
    try:
        seconds = go_duration_seconds(duration.strip())
    except ValueError as error:
        raise Refusal("schedule", f"@every {error}") from None
    if seconds <= 0 or seconds % 60:
        raise Refusal("schedule", f"@every {duration.strip()}: AWS rate() counts whole "
                                  "minutes; an interval with seconds has no AWS equivalent")
    minutes = int(seconds // 60)
    for size, unit in ((1440, "day"), (60, "hour"), (1, "minute")):
        if minutes % size == 0:
            value = minutes // size
            return f"rate({value} {unit}{'' if value == 1 else 's'})"
    raise AssertionError("unreachable")


def _value(token: str, names: tuple[str, ...], low: int, high: int, field: str) -> int:
    if token.upper() in names:
        return names.index(token.upper()) + (0 if names is DAYS else 1)
    if not token.isdigit():
        raise Refusal(f"schedule ({field})", f"{token!r} is not a number or name")
    value = int(token)
    if not low <= value <= high:
        raise Refusal(f"schedule ({field})", f"{value} is outside {low}-{high}")
    return value


def values(text: str, low: int, high: int, field: str,
           names: tuple[str, ...] = ()) -> frozenset[int]:
    """The values a standard list/range/step field selects."""
    selected: set[int] = set()
    for term in text.split(","):
        match = _TERM.fullmatch(term)
        if not match:
            raise Refusal(f"schedule ({field})", f"{term!r} is not standard cron syntax")
        base, step = match.group(1), int(match.group(2) or 1)
        if step < 1:
            raise Refusal(f"schedule ({field})", f"step 0 in {term!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-")
            start, end = (_value(first, names, low, high, field),
                          _value(last, names, low, high, field))
            if start > end:
                raise Refusal(f"schedule ({field})", f"range {base!r} runs backwards")
        else:
            start = _value(base, names, low, high, field)
            end = high if match.group(2) else start
        selected.update(range(start, end + 1, step))
    return frozenset(selected)


def _runs(days: list[int]) -> str:
    parts: list[str] = []
    start = previous = days[0]
    for day in days[1:] + [None]:
        if day is not None and day == previous + 1:
            previous = day
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if day is not None:
            start = previous = day
    return ",".join(parts)


def _aws_day_of_week(text: str) -> tuple[str, bool]:
    """The AWS day-of-week field and whether it selects every day."""
    special = re.fullmatch(r"([0-7]|[A-Za-z]{3})(#[1-5]|L)", text)
    if special:
        day = _value(special.group(1), DAYS, 0, 7, "day-of-week") % 7
        return f"{day + 1}{special.group(2)}", False
    if not re.fullmatch(r"[0-9A-Za-z*,/\-]+", text):
        raise Refusal("schedule (day-of-week)", f"{text!r} is not standard cron syntax")
    days = frozenset(day % 7 for day in values(text, 0, 7, "day-of-week", DAYS))
    if len(days) == 7:
        return "*", True
    if re.fullmatch(r"[A-Za-z,\-]+", text):   # names are kept: MON-FRI
        return text.upper(), False
    return _runs(sorted(day + 1 for day in days)), False


def to_aws(expression: str) -> str:
    """A standard cron expression (5 fields or a macro) as an AWS ``cron()``/``rate()``."""
    text = expression.strip()
    if text.lower().startswith("@every"):
        return every_to_rate(text[len("@every"):])
    fields = expand_macro(text).split(" ")
    if len(fields) != 5:
        raise Refusal("schedule", f"{text!r} has {len(fields)} fields; standard cron has 5 "
                                  "(minute hour day-of-month month day-of-week)")
    minute, hour, dom, month, dow = fields
    for name, value, low, high, names in (("minute", minute, 0, 59, ()),
                                          ("hour", hour, 0, 23, ()),
                                          ("month", month, 1, 12, MONTHS)):
        values(value, low, high, name, names)  # refuses what is not standard
    dom = "*" if dom == "?" else dom
    dow = "*" if dow == "?" else dow
    dom_every = dom == "*" or (dom != "L" and len(values(dom, 1, 31, "day-of-month")) == 31)
    dow_text, dow_every = _aws_day_of_week(dow)
    if dom.startswith("*") or dow.startswith("*"):   # both must match
        if dow_every:
            dom_out, dow_out = dom, "?"
        elif dom_every:
            dom_out, dow_out = "?", dow_text
        else:
            raise Refusal("schedule", f"{text!r} restricts both day-of-month ({dom}) and "
                                      f"day-of-week ({dow}); AWS cron() allows only one of "
                                      "them (the other must be '?')")
    elif dom_every or dow_every:                     # either may match: every day
        dom_out, dow_out = "*", "?"
    else:
        raise Refusal("schedule", f"{text!r} sets both day-of-month ({dom}) and day-of-week "
                                  f"({dow}): standard cron runs on days matching either, "
                                  "which AWS cron() cannot express (one of them must be '?')")
    return f"cron({minute} {hour} {dom_out} {month.upper()} {dow_out} *)"
