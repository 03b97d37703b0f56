"""Rendering of ``cronctl status`` and ``cronctl list`` as text and JSON (pure).

Text follows the design's shape: ``key = value`` lines with the ``=`` aligned, then a table
whose columns are as wide as their widest cell and separated by two spaces (no trailing
spaces). Times are shown as ``2018-Feb-26 13:50:03 UTC``; durations as ``4s``, ``2m 5s``,
``1h 2m``, ``3d 4h``. For a cron in a time zone other than UTC, ``status`` adds the time on
that zone's clock (``2026-Dec-02 06:30:00 UTC (07:30 CET)``) and its JSON a ``_local`` twin
of each time; a UTC cron's output keeps exactly the design's shape.

Also the two facts that ``status``, ``list`` and the daemon's status page share:
``next_run_of`` (a cron's next scheduled start) and ``current_execution`` / ``cron_status``
(which execution gives a cron's state).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler.core.alerts.model import AlertState
from reconciler.core.cronfile.calendars import without_excluded
from reconciler.core.executions.records import PENDING, RUNNING, Execution, parse_time
from reconciler.core.schedule import expressions as schedule_module
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import CronSpec

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
ID_WIDTH = 18  # the ID column shows 15 characters and "..."
NONE = "-"


def format_moment(moment: datetime | str | None) -> str:
    """``2018-Feb-26 13:50:03 UTC`` (locale-independent); ``-`` for None."""
    if moment is None:
        return NONE
    value = parse_time(moment) if isinstance(moment, str) else moment
    return (f"{value.year:04d}-{MONTHS[value.month - 1]}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} UTC")


UTC_ZONES = ("", "UTC", "Etc/UTC")


def _zone(timezone: str | None) -> ZoneInfo | None:
    """The cron's zone when it is not UTC and is known; None otherwise."""
    if not timezone or timezone in UTC_ZONES:
        return None
    try:
        return ZoneInfo(timezone)
    except (ValueError, KeyError, OSError):
        return None


def _as_datetime(moment: datetime | str) -> datetime:
    return parse_time(moment) if isinstance(moment, str) else moment


def format_moment_in_zone(moment: datetime | str | None, timezone: str | None) -> str:
    """``format_moment``, followed for a cron in another zone than UTC by the time on that
    zone's clock: ``2026-Dec-02 06:30:00 UTC (07:30 CET)``; the local date is named when it is
    not the UTC date (``2026-Dec-02 23:30:00 UTC (Dec-03 00:30 CET)``)."""
    text = format_moment(moment)
    zone = _zone(timezone)
    if moment is None or zone is None:
        return text
    utc = _as_datetime(moment).astimezone(UTC)
    local = utc.astimezone(zone)
    day = "" if local.date() == utc.date() else f"{MONTHS[local.month - 1]}-{local.day:02d} "
    return f"{text} ({day}{local.hour:02d}:{local.minute:02d} {local.tzname()})"


def local_iso(moment: datetime | str | None, timezone: str | None,
              timespec: str = "seconds") -> str | None:
    """``moment`` on the zone's clock as ISO-8601 with its offset
    (``2026-12-02T07:30:00+01:00``); None for no moment or an unknown zone."""
    zone = _zone(timezone) or (ZoneInfo("UTC") if timezone in UTC_ZONES else None)
    if moment is None or zone is None:
        return None
    return _as_datetime(moment).astimezone(zone).isoformat(timespec=timespec)


def format_duration(seconds: float | None) -> str:
    """``4s``, ``2m 5s``, ``1h 2m``, ``3d 4h``; ``-`` for None."""
    if seconds is None:
        return NONE
    total = int(round(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def short_id(execution_id: str) -> str:
    """The id cut to the ID column: 15 characters and ``...``."""
    if len(execution_id) <= ID_WIDTH:
        return execution_id
    return execution_id[: ID_WIDTH - 3] + "..."


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned columns, two spaces apart, no trailing spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def key_values(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(key) for key, _ in pairs)
    return [f"{key.ljust(width)} = {value}" for key, value in pairs]


def _iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


# -- the next run ------------------------------------------------------------------------

def next_run_of(spec: CronSpec, now: datetime, since: datetime | str | None) -> datetime | None:
    """The cron's next scheduled start after ``now`` (aware), in UTC; None when it has none:
    suspended (it starts nothing), an expression or zone that cannot be evaluated, or a
    ``rate()`` whose start is not known.

    ``since`` is when the schedule got its current expression (the registry's
    ``schedule_since``). A ``cron()`` does not depend on it. A ``rate()`` does: AWS counts its
    fires from when the schedule was put in place, not from any round time.
    - EventBridge rules: a rate expression starts when the scheduled rule is created, then
      runs at its interval (EventBridge User Guide, "Rate expressions reference",
      https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html).
    - EventBridge Scheduler: a rate-based schedule begins at its ``StartDate``; without one
      (cronctl sets none) it begins invoking its target at once, i.e. at creation (Scheduler
      User Guide, "Schedule types", rate-based schedules,
      https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
    So the fires are ``since + k * interval`` (the second ``since`` records kept: the same
    times the embedded clock fires at). Both services fire somewhere within the minute, so
    the time is shown to the minute's precision at best.
    """
    if spec.suspend:
        return None
    try:
        parsed = schedule_module.parse(spec.schedule)
        anchor = None
        if isinstance(parsed, schedule_module.RateExpression):
            if since is None:
                return None  # counted from a start nobody recorded: unknown, not guessed
            anchor = _as_datetime(since).astimezone(UTC).replace(microsecond=0)
        # Dates its calendars exclude start nothing: the next run is the first after them.
        times = without_excluded(spec, active_window.spec_fire_times(
            spec, now, 400 if spec.exclude else 1, anchor=anchor))
    except (schedule_module.ScheduleError, ValueError, TypeError):
        return None
    return times[0] if times else None


def next_run_note(spec: CronSpec, now: datetime) -> str | None:
    """Why the next run is what it is, when the schedule alone does not say: a one-time
    ``at()`` whose time has passed ("one-time run done": its schedule deleted itself), or an
    ``active`` window that has ended or not begun."""
    try:
        once = schedule_module.one_time_at(spec.schedule, spec.timezone)
        bounds = active_window.bounds(spec.active, spec.timezone)
    except (schedule_module.ScheduleError, ValueError):
        return None
    if once is not None and once <= now:
        return "one-time run done"
    if spec.active is None:
        return None
    window = f"{active_window.describe_window(spec.active)}, {spec.timezone}"
    if bounds.end is not None and now >= bounds.end:
        return f"active window ended ({window})"
    if bounds.start is not None and now < bounds.start:
        return f"active window not begun ({window})"
    return f"active window {window}"


# -- the cron's state ----------------------------------------------------------------------

_NEVER = datetime.min.replace(tzinfo=UTC)


def _scheduled(execution: Execution) -> datetime:
    try:
        return parse_time(execution.scheduled_at)
    except ValueError:
        return _NEVER  # an unreadable time sorts oldest


def _newest_first(executions: Iterable[Execution]) -> list[Execution]:
    """By scheduled time, newest first; ties keep their order; an id seen again is dropped."""
    unique: dict[str, Execution] = {}
    for execution in executions:
        unique.setdefault(execution.execution_id, execution)
    return sorted(unique.values(), key=_scheduled, reverse=True)


def current_execution(executions: Iterable[Execution]) -> Execution | None:
    """The execution that gives a cron's state, among ``executions`` (any order, duplicates
    allowed: e.g. the newest ones plus every open one): the newest RUNNING one, else the
    newest PENDING one, else the newest of all (by scheduled time); None when there are none.

    So a run in progress is what the cron is doing, even when later fires were SKIPPED
    because of it (``concurrency: forbid``) or later runs already ended (``allow``)."""
    ordered = _newest_first(executions)
    for status in (RUNNING, PENDING):
        for execution in ordered:
            if execution.status == status:
                return execution
    return ordered[0] if ordered else None


def cron_status(suspended: bool, executions: Iterable[Execution]) -> str:
    """What ``Status`` shows: SUSPENDED, else the status of ``current_execution`` (RUNNING or
    PENDING while a run is open, else the newest execution's), else NEVER_RUN."""
    if suspended:
        return "SUSPENDED"
    current = current_execution(executions)
    return current.shown_status if current else "NEVER_RUN"


def execution_json(execution: Execution, timezone: str | None = None) -> dict:
    """One execution; for a cron in another zone than UTC, each time also on its clock."""
    data = {
        "id": execution.execution_id,
        "scheduled_at": execution.scheduled_at,
        "started_at": execution.started_at,
        "stopped_at": execution.stopped_at,
        "duration_s": execution.duration_s(),
        "status": execution.shown_status,
        "exit_code": execution.exit_code,
        "trigger": execution.trigger,
    }
    if execution.note:
        data["note"] = execution.note
    if execution.queued_behind and execution.queued:
        data["queued_behind"] = execution.queued_behind
    if execution.attempt:       # ``retries``: the attempts so far, the last one first
        data["attempt"] = execution.attempt
        data["retry_at"] = execution.retry_at
        data["tries"] = [{"attempt": t.attempt, "status": t.status, "exit_code": t.exit_code,
                          "started_at": t.started_at, "stopped_at": t.stopped_at,
                          "reason": t.reason} for t in reversed(execution.tries or ())]
    if _zone(timezone) is not None:
        for key in ("scheduled_at", "started_at", "stopped_at"):
            data[f"{key}_local"] = local_iso(data[key], timezone, "milliseconds")
    return data


@dataclass(frozen=True)
class CronStatus:
    """Everything ``status`` shows for one cron; ``executions`` newest first.

    ``open_runs`` are the cron's open (non-terminal) executions, also those older than the
    ones shown: they count for ``Status`` but are not listed. ``timezone`` is the cron's.
    ``alert`` is the cron's alert state and ``alert_text`` its one-line description
    (``core.alerts.decide.describe_state``), None while the cron is not failing."""

    name: str
    schedule: str
    suspended: bool
    next_run: datetime | None
    executions: list[Execution]
    timezone: str = "UTC"
    open_runs: tuple[Execution, ...] = ()
    alert: AlertState | None = None
    alert_text: str | None = None
    next_run_note: str | None = None  # ``next_run_note``: one-time done, active window
    # ``core.alerts.decide.describe_pause``: set while suspend-after-failures pauses the cron
    paused_text: str | None = None

    @property
    def status(self) -> str:
        return cron_status(self.suspended, [*self.executions, *self.open_runs])


def status_json(view: CronStatus) -> dict:
    data = {
        "name": view.name,
        "status": view.status,
        "schedule": view.schedule,
        "next_run": _iso(view.next_run),
        "executions": [execution_json(e, view.timezone) for e in view.executions],
    }
    if view.next_run_note:
        data["next_run_note"] = view.next_run_note
    if _zone(view.timezone) is not None:
        data["timezone"] = view.timezone
        data["next_run_local"] = local_iso(view.next_run, view.timezone)
    if view.alert_text and view.alert is not None:
        data["alert"] = alert_json(view.alert, view.alert_text)
    if view.paused_text:
        data["state"] = "PAUSED"
        data["paused"] = view.paused_text
    return data


def alert_json(state: AlertState, text: str) -> dict:
    """A failing cron's alert state as JSON."""
    return {"state": "FAILING", "since": state.failing_since,
            "consecutive_failures": state.consecutive_failures,
            "last_status": state.last_status,
            "open": [{"kind": a.kind, "notifier": a.notifier, "since": a.since,
                      "dedup_key": a.dedup_key, "channel": a.channel} for a in state.open],
            "text": text}


def status_text(view: CronStatus) -> str:
    lines = key_values([
        ("Name", view.name),
        ("Status", view.status),
        ("Schedule", view.schedule),
        ("Next Run", format_moment_in_zone(view.next_run, view.timezone)
         + (f" ({view.next_run_note})" if view.next_run_note else "")),
        *([("State", view.paused_text)] if view.paused_text else []),
        *([("Alert", view.alert_text)] if view.alert_text else []),
    ])
    lines += ["", "Last Executions:"]
    rows = [[
        short_id(e.execution_id),
        format_moment_in_zone(e.started_at or e.created_at, view.timezone),
        format_duration(e.duration_s()),
        e.shown_status + (f" (attempt {e.attempt})" if e.attempt else ""),
        NONE if e.exit_code is None else str(e.exit_code),
    ] for e in view.executions]
    if rows:
        lines += table(["ID", "Started At", "Duration", "Status", "Exit Code"], rows)
    else:
        lines.append("(none)")
    lines += [f"Note: {short_id(e.execution_id)} {e.note}" for e in view.executions if e.note]
    lines += [f"Attempts: {short_id(e.execution_id)} " + ", ".join(
        [f"{t.attempt}: {t.status}" + ("" if t.exit_code is None else f" (exit {t.exit_code})")
         for t in e.tries or ()]
        + [f"{e.attempt}: {e.shown_status}" + (f" at {e.retry_at}" if e.retry_at and
                                                 e.unstarted else "")])
        for e in view.executions if e.attempt]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CronSummary:
    """One row of ``list``: a cron and the execution that gives its state
    (``current_execution``: a run in progress, else the latest; None: never ran)."""

    name: str
    schedule: str
    suspended: bool
    next_run: datetime | None
    last: Execution | None
    alert: AlertState | None = None     # set only while the cron is failing
    paused: bool = False                # suspend-after-failures paused it


def _alert_cell(alert: AlertState | None) -> str:
    if alert is None or not alert.failing:
        return ""
    opened = " (alerted)" if alert.open else ""
    return f"FAILING x{alert.consecutive_failures}{opened}"


def list_json(rows: list[CronSummary]) -> list[dict]:
    result = []
    for row in rows:
        data = {
            "name": row.name,
            "schedule": row.schedule,
            "suspended": row.suspended,
            "last_status": row.last.status if row.last else None,
            "last_run": (row.last.started_at or row.last.created_at) if row.last else None,
            "next_run": _iso(row.next_run),
        }
        if row.paused:
            data["state"] = "PAUSED"
        if row.alert is not None and row.alert.failing:
            data["alert"] = {"state": "FAILING", "since": row.alert.failing_since,
                             "consecutive_failures": row.alert.consecutive_failures,
                             "alerted": bool(row.alert.open)}
        result.append(data)
    return result


def list_text(rows: list[CronSummary]) -> str:
    """The crons as a table; an ``Alert`` column (``FAILING x3 (alerted)``) appears only when
    some cron is failing."""
    if not rows:
        return "No crons.\n"
    alerts = any(_alert_cell(row.alert) for row in rows)
    body = [[
        row.name,
        row.schedule,
        cron_status(row.suspended, [row.last] if row.last else [])
        + (" (PAUSED)" if row.paused else ""),
        format_moment((row.last.started_at or row.last.created_at) if row.last else None),
        format_moment(row.next_run),
        *([_alert_cell(row.alert)] if alerts else []),
    ] for row in rows]
    headers = ["Name", "Schedule", "Last Status", "Last Run", "Next Run"]
    return "\n".join(table(headers + (["Alert"] if alerts else []), body)) + "\n"
