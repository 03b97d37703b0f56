"""Calendar files: the dates that crons naming them in ``exclude:`` do not run on.

A calendar is ``<cron path>/calendars/<name>.yaml`` (its name is the file's stem)::

    timezone: Europe/Berlin          # the zone in which the dates are days (default UTC)
    dates:
      - 2026-12-25                   # one date
      - 2026-12-24..2026-12-26       # an inclusive range

``load_calendar`` checks one file against ``schemas/calendar.schema.json`` and the meaning
(real dates, ranges that do not end before they start, a known zone), every error at its file
and line. ``excluded_by`` (pure) says whether a moment falls on a date a spec excludes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator

from reconciler.core.cronfile.cron_fields import timezone_problem
from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.durations import type_name
from reconciler.core.cronfile.yaml_lines import parse
from reconciler.core.spec import CronSpec, Exclusion

CALENDARS_FOLDER = "calendars"
MAX_CALENDAR_BYTES = 256 * 1024
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?\Z")


@dataclass(frozen=True)
class Calendar:
    """A valid calendar file: its name (the file's stem), file, zone and inclusive ranges."""

    name: str
    file: str
    timezone: str
    ranges: tuple[tuple[str, str], ...]

    def exclusion(self) -> Exclusion:
        return Exclusion(calendar=self.name, timezone=self.timezone, ranges=self.ranges)


@lru_cache(maxsize=1)
def calendar_schema() -> dict:
    """The calendar file schema, read from the package (beside the cron file's)."""
    text = (resources.files("reconciler") / "schemas" / "calendar.schema.json").read_text(
        "utf-8")
    return json.loads(text)


def calendar_folder(cron_path: str) -> str:
    """``crons.d`` -> ``crons.d/calendars``; ``""``/``"."`` -> ``calendars``."""
    folder = cron_path.strip().removeprefix("./").rstrip("/")
    return CALENDARS_FOLDER if folder in ("", ".") else f"{folder}/{CALENDARS_FOLDER}"


def is_calendar_file(path: str, folder: str = "crons.d/calendars") -> bool:
    """True for a ``.yaml``/``.yml`` file directly in the calendar ``folder``."""
    return (path.startswith(folder + "/") and "/" not in path[len(folder) + 1:]
            and path.lower().endswith((".yaml", ".yml")))


def calendar_name(path: str) -> str:
    return PurePosixPath(path).stem


def load_calendar(path: str, data: bytes) -> tuple[Calendar | None, list[Diagnostic]]:
    """The calendar in one file, or None and every error found in it (sorted)."""
    problems: list[Diagnostic] = []

    def fail(line: int, column: int, message: str, where: str = "") -> None:
        problems.append(Diagnostic(path, line, column, where, message))

    if len(data) > MAX_CALENDAR_BYTES:
        fail(1, 1, f"file is {len(data)} bytes; calendar files are limited to 256 KiB")
        return None, problems
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(data.count(b"\n", 0, error.start) + 1, 1, f"not valid UTF-8 at byte {error.start}")
        return None, problems
    parsed = parse(text)
    for problem in parsed.problems:
        message = problem.message
        if problem.path[:1] == ("dates",) and message.startswith("invalid YAML value"):
            message = "not a date: " + message.removeprefix("invalid YAML value ")
        fail(problem.position.line, problem.position.column, message, _dotted(problem.path))
    document = parsed.value
    if parsed.empty or not isinstance(document, dict):
        if not parsed.problems:
            fail(1, 1, "a calendar file must be a mapping with 'dates:' (and 'timezone:')")
        return None, sorted(problems)
    if isinstance(document.get("dates"), list):   # YAML reads a bare 2026-12-25 as a date
        document = {**document, "dates": [
            item.isoformat() if isinstance(item, date) and not isinstance(item, datetime)
            else item for item in document["dates"]]}
    bad = {problem.path for problem in parsed.problems}
    for field_path, message in _schema_problems(document):
        if field_path in bad:
            continue
        at = parsed.position(field_path, key=message.startswith("unknown field"))
        fail(at.line, at.column, message, _dotted(field_path))
    timezone = document.get("timezone", "UTC")
    if "timezone" in document and isinstance(timezone, str) and \
            (message := timezone_problem(timezone)):
        at = parsed.position(("timezone",))
        fail(at.line, at.column, message, "timezone")
    ranges: list[tuple[str, str]] = []
    for index, item in enumerate(document.get("dates") or []):
        if not isinstance(item, str) or ("dates", index) in bad:
            continue
        match = _RANGE.match(item)
        if not match:
            continue                  # the schema's pattern reported it
        at = parsed.position(("dates", index))
        try:
            first = date.fromisoformat(match.group(1))
            last = date.fromisoformat(match.group(2)) if match.group(2) else first
        except ValueError as error:
            fail(at.line, at.column, f"not a date: {item!r} ({error})", f"dates[{index}]")
            continue
        if last < first:
            fail(at.line, at.column, f"the range {item!r} ends before it starts",
                 f"dates[{index}]")
            continue
        ranges.append((first.isoformat(), last.isoformat()))
    if problems:
        return None, sorted(problems)
    return Calendar(name=calendar_name(path), file=path, timezone=timezone,
                    ranges=tuple(sorted(set(ranges)))), []


def _schema_problems(document: dict) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for error in Draft202012Validator(calendar_schema()).iter_errors(document):
        where = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            known = list(error.schema.get("properties", {}))
            out += [((*where, key), f"unknown field '{key}'; a calendar has "
                     + " and ".join(known)) for key in error.instance if key not in known]
        elif error.validator == "required":
            out.append((where, "missing required field 'dates' (a list of YYYY-MM-DD dates "
                               "or YYYY-MM-DD..YYYY-MM-DD ranges)"))
        elif error.validator == "pattern" or (error.validator == "type" and where[:1] ==
                                              ("dates",) and len(where) == 2):
            out.append((where, "must be a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD; "
                               f"got {_shown(error.instance)}"))
        elif error.validator == "type":
            out.append((where, f"must be {error.validator_value}, got "
                               f"{type_name(error.instance)}"))
        else:
            out.append((where, error.message))
    return out


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return f"a date and time {value.isoformat()}"
    return repr(value) if isinstance(value, str) else f"{type_name(value)} {value!r}"[:80]


def _dotted(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# -- what a spec excludes (pure) -------------------------------------------------------------

def excluded_by(exclusions: Iterable[Exclusion], moment: datetime) -> tuple[str, str] | None:
    """``(calendar, YYYY-MM-DD)`` of the first calendar whose dates include ``moment``'s day
    in that calendar's zone; None when no calendar excludes it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    for exclusion in exclusions:
        day = moment.astimezone(ZoneInfo(exclusion.timezone)).date().isoformat()
        if any(first <= day <= last for first, last in exclusion.ranges):
            return exclusion.calendar, day
    return None


def exclusion_reason(calendar: str, day: str) -> str:
    """What a SKIPPED run says: ``excluded by calendar holidays-de (2026-12-25)``."""
    return f"excluded by calendar {calendar} ({day})"


def without_excluded(spec: CronSpec, times: Iterable[datetime]) -> list[datetime]:
    """``times`` without those on a date the spec's calendars exclude."""
    return [t for t in times if not spec.exclude or excluded_by(spec.exclude, t) is None]
