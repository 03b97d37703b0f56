"""The grammar shared by cron fields: lists, ranges, steps, numbers and names.

``plain_field`` turns one field's text into its set of allowed values, reporting every
problem with a message that names the field. Ranges that run past the field's end wrap
around (``20-2`` in hours, ``FRI-MON``), as in AWS/Quartz, except in the year field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.core.schedule.model import DAY_NAMES, FIRST_YEAR, LAST_YEAR, MONTH_NAMES


@dataclass(frozen=True)
class FieldSpec:
    """One cron field: its name, value range, names and largest step AWS accepts."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    max_step: int = 0
    wraps: bool = True

    @property
    def expected(self) -> str:
        spelled = f" or {self.names[0]}-{self.names[-1]}" if self.names else ""
        return f"{self.low}-{self.high}{spelled}"


MINUTE = FieldSpec("minute", 0, 59, max_step=59)
HOUR = FieldSpec("hour", 0, 23, max_step=23)
DAY_OF_MONTH = FieldSpec("day-of-month", 1, 31, max_step=31)
MONTH = FieldSpec("month", 1, 12, MONTH_NAMES, max_step=12)
DAY_OF_WEEK = FieldSpec("day-of-week", 1, 7, DAY_NAMES, max_step=7)
YEAR = FieldSpec("year", FIRST_YEAR, LAST_YEAR, max_step=LAST_YEAR - FIRST_YEAR, wraps=False)


class Problems(list):
    """Collects messages; ``add`` returns None so parsers can ``return problems.add(...)``."""

    def add(self, message: str) -> None:
        self.append(message)


def misplaced(text: str, spec: FieldSpec, problems: Problems) -> bool:
    """Report wildcards that this field does not allow; True when one was found."""
    if "?" in text:
        if spec in (DAY_OF_MONTH, DAY_OF_WEEK):
            problems.add(f"{spec.name}: ? must stand alone, got {text!r}")
        else:
            problems.add(f"{spec.name}: ? is only allowed in day-of-month or day-of-week")
        return True
    if "#" in text and spec is not DAY_OF_WEEK:
        problems.add(f"{spec.name}: # is only allowed in day-of-week")
        return True
    for term in text.split(","):
        if re.fullmatch(r"[0-9]*L|LW|[0-9]*W|L-[0-9]+", term):
            letter = "W" if term.endswith("W") and term != "LW" else "L"
            where = "day-of-month" if letter == "W" else "day-of-month and day-of-week"
            problems.add(f"{spec.name}: {letter} is only allowed in {where}, got {text!r}")
            return True
    return False


def plain_field(text: str, spec: FieldSpec, problems: Problems) -> frozenset[int] | None:
    """Values of a field made of lists, ranges, steps, numbers and names."""
    if misplaced(text, spec, problems):
        return None
    values: set[int] = set()
    before = len(problems)
    for term in text.split(","):
        if term == "":
            problems.add(f"{spec.name}: empty value in list {text!r}")
            continue
        values.update(_term(term, spec, problems))
    return frozenset(values) if len(problems) == before else None


def _term(term: str, spec: FieldSpec, problems: Problems) -> list[int]:
    base, slash, step_text = term.partition("/")
    step = 1
    if slash:
        if not re.fullmatch(r"[0-9]+", step_text):
            problems.add(f"{spec.name}: step after / must be a whole number, got {term!r}")
            return []
        step = int(step_text)
        if not 1 <= step <= spec.max_step:
            problems.add(f"{spec.name}: step {step} in {term!r} must be 1-{spec.max_step}")
            return []
    if base == "*":
        start, end = spec.low, spec.high
    elif "-" in base:
        first, _, last = base.partition("-")
        start, end = value_of(first, spec, problems), value_of(last, spec, problems)
        if start is None or end is None:
            return []
        if start > end and not spec.wraps:
            problems.add(f"{spec.name}: range {base!r} runs backwards")
            return []
    else:
        value = value_of(base, spec, problems)
        if value is None:
            return []
        start, end = value, (spec.high if slash else value)
    if start <= end:
        sequence = list(range(start, end + 1))
    else:  # wrapping range, e.g. hours 20-2
        sequence = list(range(start, spec.high + 1)) + list(range(spec.low, end + 1))
    return sequence[::step]


def value_of(token: str, spec: FieldSpec, problems: Problems) -> int | None:
    if re.fullmatch(r"[0-9]+", token):
        value = int(token)
        if spec.low <= value <= spec.high:
            return value
        problems.add(f"{spec.name}: {value} is out of range {spec.low}-{spec.high}")
        return None
    if token in spec.names:
        return spec.names.index(token) + 1
    if token.upper() in spec.names:
        problems.add(f"{spec.name}: names must be upper case ({token.upper()}), got {token!r}")
        return None
    shown = token if token else "(nothing)"
    problems.add(f"{spec.name}: {shown!r} is not a valid value (expected {spec.expected})")
    return None
