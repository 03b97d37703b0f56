"""Proof that an imported cron is its source: the file loads, and fire times are equal.

A 5-field source schedule is evaluated independently with cronsim (Healthchecks' evaluator
of standard cron) in the source's time zone; the written ``cron()`` with the project's own
evaluator (``schedule.expressions.next_fire_times``). Their next ``FIRE_TIMES`` fire times
must be equal, else the job is refused with the first difference. A schedule in AWS's own
grammar is carried over unchanged and needs no comparison.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from reconciler.core.cronfile.loader import load_file
from reconciler.core.importers.cron5 import expand_macro
from reconciler.core.importers.model import ImportedCron, ImportResult, Refusal, Refused
from reconciler.core.importers.render import render
from reconciler.core.schedule import expressions

FIRE_TIMES = 100


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fire_time_difference(five_field: str, timezone: str, aws_expression: str,
                         after: datetime, count: int = FIRE_TIMES) -> str | None:
    """``None`` when both schedules fire at the same ``count`` next times after ``after``;
    else the first difference, in words."""
    zone = ZoneInfo(timezone)
    try:
        fields = " ".join("*" if field == "?" else field   # '?' is '*' in standard cron
                          for field in expand_macro(five_field).split(" "))
        source = CronSim(fields, after.astimezone(zone))
        expected = [next(source).astimezone(UTC) for _ in range(count)]
    except (CronSimError, StopIteration) as error:
        return f"{five_field!r} is not a valid standard cron expression: {error}"
    actual = expressions.next_fire_times(aws_expression, timezone, after, count)
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if want != got:
            return (f"{aws_expression} does not fire as {five_field!r} ({timezone}) does: "
                    f"run {index + 1} is at {_iso(want)} in the source, {_iso(got)} on AWS"
                    + (" (AWS skips a time that a daylight-saving change skips)"
                       if got > want else ""))
    if len(actual) < len(expected):
        return f"{aws_expression} has only {len(actual)} of the source's next {count} runs"
    return None


def verify(result: ImportResult, now: datetime) -> ImportResult:
    """Each cron checked: equal fire times, and a file that loads without errors."""
    crons: list[ImportedCron] = []
    refused = list(result.refused)
    for cron in result.crons:
        problem = _problem(cron, now)
        if problem is None:
            crons.append(cron)
        else:
            refused.append(Refused(cron.source_file, cron.origin, problem.field,
                                   problem.reason, cron.name))
    return replace(result, crons=tuple(crons), refused=tuple(refused))


def _problem(cron: ImportedCron, now: datetime) -> Refusal | None:
    _, diagnostics = load_file(cron.path, render(cron, cron.body).encode())
    if diagnostics:
        details = "; ".join(f"{d.field or 'file'}: {d.message}" for d in diagnostics)
        return Refusal("", f"the converted cron file would not be valid: {details}")
    source = cron.schedule
    if source.five_field:
        difference = fire_time_difference(source.expression, source.timezone,
                                          cron.document["schedule"], now)
        if difference:
            return Refusal("schedule", difference)
    return None
