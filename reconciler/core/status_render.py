"""Rendering of ``cronctl status`` and ``cronctl list`` as text and JSON (pure).

Text follows the design's shape: ``key = value`` lines with the ``=`` aligned, then a table
whose columns are as wide as their widest cell and separated by two spaces (no trailing
spaces). Times are shown as ``2018-Feb-26 13:50:03 UTC``; durations as ``4s``, ``2m 5s``,
``1h 2m``, ``3d 4h``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconciler.core.executions import Execution, parse_time

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


def cron_status(suspended: bool, executions: list[Execution]) -> str:
    """What ``Status`` shows: SUSPENDED, else the latest execution's status, else NEVER_RUN."""
    if suspended:
        return "SUSPENDED"
    return executions[0].status if executions else "NEVER_RUN"


def execution_json(execution: Execution) -> dict:
    return {
        "id": execution.execution_id,
        "scheduled_at": execution.scheduled_at,
        "started_at": execution.started_at,
        "stopped_at": execution.stopped_at,
        "duration_s": execution.duration_s(),
        "status": execution.status,
        "exit_code": execution.exit_code,
        "trigger": execution.trigger,
    }


@dataclass(frozen=True)
class CronStatus:
    """Everything ``status`` shows for one cron; ``executions`` newest first."""

    name: str
    schedule: str
    suspended: bool
    next_run: datetime | None
    executions: list[Execution]


def status_json(view: CronStatus) -> dict:
    return {
        "name": view.name,
        "status": cron_status(view.suspended, view.executions),
        "schedule": view.schedule,
        "next_run": _iso(view.next_run),
        "executions": [execution_json(e) for e in view.executions],
    }


def status_text(view: CronStatus) -> str:
    lines = key_values([
        ("Name", view.name),
        ("Status", cron_status(view.suspended, view.executions)),
        ("Schedule", view.schedule),
        ("Next Run", format_moment(view.next_run)),
    ])
    lines += ["", "Last Executions:"]
    rows = [[
        short_id(e.execution_id),
        format_moment(e.started_at or e.created_at),
        format_duration(e.duration_s()),
        e.status,
        NONE if e.exit_code is None else str(e.exit_code),
    ] for e in view.executions]
    if rows:
        lines += table(["ID", "Started At", "Duration", "Status", "Exit Code"], rows)
    else:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CronSummary:
    """One row of ``list``: a cron and its latest execution (if any)."""

    name: str
    schedule: str
    suspended: bool
    next_run: datetime | None
    last: Execution | None


def list_json(rows: list[CronSummary]) -> list[dict]:
    return [{
        "name": row.name,
        "schedule": row.schedule,
        "suspended": row.suspended,
        "last_status": row.last.status if row.last else None,
        "last_run": (row.last.started_at or row.last.created_at) if row.last else None,
        "next_run": _iso(row.next_run),
    } for row in rows]


def list_text(rows: list[CronSummary]) -> str:
    if not rows:
        return "No crons.\n"
    body = [[
        row.name,
        row.schedule,
        cron_status(row.suspended, [row.last] if row.last else []),
        format_moment((row.last.started_at or row.last.created_at) if row.last else None),
        format_moment(row.next_run),
    ] for row in rows]
    return "\n".join(table(["Name", "Schedule", "Last Status", "Last Run", "Next Run"], body)) + "\n"
