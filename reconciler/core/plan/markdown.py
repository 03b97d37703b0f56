"""A Plan as Markdown for a pull-request comment (pure; ``cronctl reconcile --dry-run
--output markdown``).

Per cron: its changes with their field diff and, when the schedule changes, its next 5 fire
times before and after; the mass-delete check's result; every error with its file and line
(an invalid file's errors are ``file:line:column: field: message``). Secret-looking env
values are masked as in the text form; every value is HTML-escaped inside ``<code>``, so no
value can break the table or inject markup.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler.core.desired import DesiredSchedule
from reconciler.core.plan.model import Action, Change, Plan, Resource
from reconciler.core.plan.render import _value, error_views, summary_line
from reconciler.core.schedule import expressions
from reconciler.core.schedule.model import RateExpression, ScheduleError

NEXT_RUNS = 5
MARKER = "<!-- cronctl-plan -->"   # lets a workflow find and update its own comment
ICONS = {Action.CREATE: "🟢 create", Action.UPDATE: "🟡 update", Action.DELETE: "🔴 delete"}
MASS_DELETE = "refusing to delete"


def _code(value: object) -> str:
    if value is None:
        return "<i>none</i>"
    text = value if isinstance(value, str) else repr(value)
    return "<code>" + html.escape(text).replace("|", "&#124;").replace("\n", "<br>") + "</code>"


def _text(value: str) -> str:
    return html.escape(value).replace("|", "&#124;").replace("\n", " ")


def fire_times(schedule: DesiredSchedule | None, now: datetime) -> list[str] | str | None:
    """The next ``NEXT_RUNS`` fire times (UTC, and the zone's clock), why there are none as
    a sentence, or None without a schedule."""
    if schedule is None:
        return None
    try:
        parsed = expressions.parse(schedule.expression)
        if isinstance(parsed, RateExpression):
            return (f"{expressions.describe(schedule.expression)}, counted from when the "
                    "schedule is created")
        times = expressions.next_fire_times(schedule.expression, schedule.timezone, now,
                                            NEXT_RUNS)
    except ScheduleError as error:
        return f"cannot be computed: {error}"
    zone = schedule.timezone
    shown = []
    for moment in times:
        utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if zone not in ("UTC", "Etc/UTC"):
            local = moment.astimezone(ZoneInfo(zone)).strftime("%H:%M")
            utc += f" ({local} {zone})"
        shown.append(utc)
    return shown or "none: the schedule has no fire times after now"


def _schedules(changes: list[Change]) -> tuple[DesiredSchedule | None, DesiredSchedule | None]:
    before = after = None
    for change in changes:
        if change.resource != Resource.SCHEDULE:
            continue
        if change.action in (Action.UPDATE, Action.DELETE, Action.NO_OP) and \
                change.observed is not None and before is None:
            before = change.observed.current
        if change.action in (Action.CREATE, Action.UPDATE, Action.NO_OP) and after is None:
            after = change.desired
    return before, after


def _runs_table(before, after, now: datetime) -> list[str]:
    old, new = fire_times(before, now), fire_times(after, now)
    if old == new:
        return []
    lines = ["", f"Next {NEXT_RUNS} runs:", "", "| # | before | after |", "|---|---|---|"]
    if isinstance(old, str) or isinstance(new, str):
        return lines + [f"| | {_text(_words(old))} | {_text(_words(new))} |"]
    old, new = old or [], new or []
    for index in range(max(len(old), len(new))):
        cells = [_text(times[index]) if index < len(times) else "—" for times in (old, new)]
        marker = "" if cells[0] == cells[1] else " **≠**"
        lines.append(f"| {index + 1} | {cells[0]} | {cells[1]}{marker} |")
    return lines


def _words(times: list[str] | str | None) -> str:
    if times is None:
        return "—"
    return times if isinstance(times, str) else ", ".join(times)


def _diff_table(change: Change) -> list[str]:
    if not change.diff:
        return []
    lines = ["", "| field | before | after |", "|---|---|---|"]
    for field, before, after in change.diff:
        lines.append(f"| {_text(field)} | {_code(_value(field, before))} | "
                     f"{_code(_value(field, after))} |")
    return lines


def _mass_delete(plan: Plan) -> str:
    refusal = next((e.message for e in plan.errors if e.message.startswith(MASS_DELETE)), None)
    if refusal:
        return f"❌ **Mass-delete check: refused.** {_text(refusal)}"
    deleted = sorted({c.cron for c in plan.pending
                      if c.resource == Resource.REGISTRY and c.action == Action.DELETE})
    names = f": {', '.join(f'`{name}`' for name in deleted)}" if deleted else ""
    return f"✅ **Mass-delete check: passed** ({len(deleted)} cron" \
           f"{'' if len(deleted) == 1 else 's'} to delete{names})."


def render_markdown(plan: Plan | None, apply_errors=(), pass_errors=(), *,
                    now: datetime, dry_run: bool = True) -> str:
    views = error_views(plan, apply_errors, pass_errors)
    title = "cronctl plan" if dry_run else "cronctl reconcile"
    lines = [MARKER, f"### {title}" + (f" for `{plan.commit[:12]}`" if plan and plan.commit
                                       else ""), "", f"**{summary_line(plan, len(views))}**"]
    if plan is not None:
        lines += ["", _mass_delete(plan)]
        per_cron: dict[str, list[Change]] = defaultdict(list)
        task_definitions: list[Change] = []
        for change in plan.changes:
            if change.resource == Resource.TASK_DEFINITION:
                if change.action != Action.NO_OP:
                    task_definitions.append(change)
            else:
                per_cron[change.cron].append(change)
        for cron in sorted(per_cron):
            changes = per_cron[cron]
            pending = [c for c in changes if c.action != Action.NO_OP]
            if not pending:
                continue
            file = next((getattr(item, "file", "") for c in changes
                         for item in (c.desired, c.observed) if getattr(item, "file", "")), "")
            lines += ["", f"#### `{cron}`" + (f" — `{file}`" if file else "")]
            for change in pending:
                lines += ["", f"{ICONS[change.action]} **{change.resource}**: "
                              f"{_text(change.reason)}"]
                lines += _diff_table(change)
            before, after = _schedules(changes)
            lines += _runs_table(before, after, now)
        if task_definitions:
            lines += ["", "#### Task definitions", ""]
            lines += [f"- {ICONS[c.action]} `{c.cron}`: {_text(c.reason)}"
                      for c in task_definitions]
        for warning in plan.warnings:
            lines += ["", f"> ⚠️ {_text(warning)}"]
    if views:
        lines += ["", "#### Errors", ""]
        for view in views:
            lines.append(f"- ❌ {_text(view.headline)}")
            lines += [f"  - {_code(detail)}" for detail in view.details]
            if view.way_out:
                lines.append(f"  - To fix: {_text(view.way_out)}.")
    return "\n".join(lines) + "\n"
