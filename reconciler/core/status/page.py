"""The daemon's status page as HTML (pure: typed inputs to an HTML string).

Two pages and two error pages, served by ``reconciler.service.http.status_page``:

- the overview (``GET /``): every cron with its schedule in English (and its time zone), its
  next run in UTC and, for a cron in another zone, on that zone's clock, the status and
  duration of its latest execution, and its alert when it has one (``CronRow.alert``: the
  column appears only when some cron has an alert); below the table, the fleet's timeline
  of the next hour (``Overview.timeline``, from ``core.schedule.timeline.fleet_timeline``):
  every fire time (at most ``TIMELINE_ROWS`` listed, then how many more) and the busiest
  minutes with the RunTask calls they need;
- a cron's page (``GET /crons/<name>``): the same facts, its runbook (``meta.docs``) and
  where its file comes from, then its recent executions, each with the ``cronctl logs``
  command that prints its output and, on AWS, a link to its stream in the CloudWatch Logs
  console;
- ``not_found_page`` and ``unavailable_page``.

Every text from outside (names, schedules, reasons, alerts, links) is HTML-escaped, and a
link is made only of an ``http(s)://`` URL. There is no JavaScript: the style sheet is
inline and the pages read the same with scripts disabled. Times are shown as
``status.render`` shows them (``2018-Feb-26 13:50:03 UTC``).
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from reconciler.core.executions.records import (
    FAILED,
    FAILED_TO_START,
    LOST,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
    Execution,
    parse_time,
)
from reconciler.core.log_streams import stream_name
from reconciler.core.schedule import expressions as schedule_module
from reconciler.core.schedule.timeline import Timeline
from reconciler.core.status.render import MONTHS, format_duration, format_moment

NONE = "-"
TIMELINE_ROWS = 100  # fires listed in the overview's timeline; the rest are counted
BUSIEST_MINUTES = 5
# Status -> CSS class of its badge: ok (green), bad (red), active (blue), idle (grey). A status
# not listed here, and a cron that never ran, is idle.
STATUS_CLASSES = {
    SUCCESS: "ok",
    FAILED: "bad", TIMEOUT: "bad", FAILED_TO_START: "bad", LOST: "bad", "MISSED": "bad",
    RUNNING: "active", PENDING: "active",
    SKIPPED: "idle",
}
NEVER_RUN = "NEVER RUN"
_HTTP_URL = re.compile(r"https?://[^\s]+")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header h1 a { color: #fff; text-decoration: none; }
header p { margin: 2px 0 0; color: #c9d1d9; font-size: 13px; }
main { padding: 20px 24px 40px; max-width: 1400px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
a { color: #0969da; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
       monospace; }
.scroll { overflow-x: auto; background: #fff; border: 1px solid #d0d7de;
          border-radius: 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 8px 12px;
         border-bottom: 1px solid #d8dee4; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #57606a;
     background: #f6f8fa; white-space: nowrap; }
tbody tr:last-child td { border-bottom: 0; }
td.name a { font-weight: 600; text-decoration: none; }
td.name a:hover { text-decoration: underline; }
.sub { display: block; color: #57606a; font-size: 12.5px; }
.nowrap { white-space: nowrap; }
.num { font-variant-numeric: tabular-nums; }
td.id code { white-space: nowrap; }
.back { margin: 0 0 14px; }
.status { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
          font-weight: 600; white-space: nowrap; border: 1px solid transparent; }
.status.ok { color: #1a7f37; background: #dafbe1; border-color: #aceebb; }
.status.bad { color: #cf222e; background: #ffebe9; border-color: #ffcecb; }
.status.active { color: #0969da; background: #ddf4ff; border-color: #b6e3ff; }
.status.idle { color: #57606a; background: #eaeef2; border-color: #d0d7de; }
.tag { display: inline-block; margin-left: 2px; padding: 0 6px; border-radius: 4px;
       font-size: 11px; color: #9a6700; background: #fff8c5; border: 1px solid #eac54f; }
.alert { color: #cf222e; font-weight: 600; }
.alert-box { margin: 0 0 16px; padding: 10px 14px; color: #82071e; background: #ffebe9;
             border: 1px solid #ffcecb; border-radius: 6px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px;
           margin: 0; padding: 14px 18px; background: #fff; border: 1px solid #d0d7de;
           border-radius: 6px; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; }
tr.run td { border-bottom: 0; padding-bottom: 2px; }
tr.logs td { padding-top: 0; color: #57606a; font-size: 12.5px; }
tr.logs code { user-select: all; color: #1f2328; }
.reason { max-width: 420px; overflow-wrap: anywhere; }
.empty { padding: 18px; color: #57606a; background: #fff; border: 1px solid #d0d7de;
         border-radius: 6px; }
"""


@dataclass(frozen=True)
class CronRow:
    """One cron as the pages show it.

    ``next_run`` is UTC (None: suspended, or not computable); ``last`` is the execution that
    gives the cron's state (``status_render.current_execution``: a run in progress, even
    behind newer SKIPPED fires, else the newest), shown as its last status, run and duration;
    ``alert`` is the cron's alert state, None when it has none."""

    name: str
    schedule: str
    timezone: str = "UTC"
    suspended: bool = False
    next_run: datetime | None = None
    last: Execution | None = None
    alert: str | None = None
    next_run_note: str | None = None  # ``status_render.next_run_note``: one-time done, window


@dataclass(frozen=True)
class Overview:
    """``GET /``: the namespace's crons (in the order given) at ``now`` (aware), and the
    fleet's timeline of the coming hour (None: not shown)."""

    namespace: str
    now: datetime
    crons: Sequence[CronRow]
    timeline: Timeline | None = None


@dataclass(frozen=True)
class CronPage:
    """``GET /crons/<name>``: a cron and its recent executions (newest first).

    ``logs_flags`` are added to each ``cronctl logs`` command (e.g. ``--namespace``);
    ``console_region`` set (and ``log_group``) links each run to its stream in the
    CloudWatch Logs console (None: no links, e.g. against a local endpoint)."""

    namespace: str
    now: datetime
    cron: CronRow
    executions: Sequence[Execution]
    docs: str | None = None
    file: str | None = None
    commit: str | None = None
    log_group: str | None = None
    console_region: str | None = None
    logs_flags: tuple[str, ...] = ()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def status_class(status: str | None) -> str:
    """The badge's CSS class: ok (green), bad (red), active (blue) or idle (grey)."""
    return STATUS_CLASSES.get(status or "", "idle")


def badge(status: str | None) -> str:
    text = status or NEVER_RUN
    return (f'<span class="status {status_class(status)}" data-status="{_e(text)}">'
            f"{_e(text)}</span>")


def describe_schedule(expression: str, timezone: str) -> str | None:
    """The schedule in English (with its zone when not UTC); None when it cannot be read."""
    try:
        return schedule_module.describe(expression, timezone or "UTC")
    except (schedule_module.ScheduleError, ValueError, TypeError):
        return None


def format_in_zone(moment: datetime, timezone: str) -> str | None:
    """``2026-Nov-27 11:10:00 CET`` on the wall clock of ``timezone``; None if unknown."""
    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ValueError, KeyError, OSError):
        return None
    return (f"{local.year:04d}-{MONTHS[local.month - 1]}-{local.day:02d} "
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d} {local.tzname()}")


def _is_utc(timezone: str) -> bool:
    return timezone in ("", "UTC", "Etc/UTC")


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return parse_time(value)
    except ValueError:
        return None


def _time(value: datetime | str | None) -> str:
    """A ``<time>`` element in the CLI's format; ``-`` for None."""
    moment = _moment(value)
    if moment is None:
        return NONE
    utc = moment.astimezone(UTC)
    return (f'<time datetime="{utc.strftime("%Y-%m-%dT%H:%M:%SZ")}">'
            f"{format_moment(utc)}</time>")


def _relative(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    if seconds >= 0:
        return f"in {format_duration(seconds)}"
    return f"{format_duration(-seconds)} ago"


def _schedule_cell(row: CronRow) -> str:
    english = describe_schedule(row.schedule, row.timezone)
    expression = f'<code class="sub">{_e(row.schedule)}</code>'
    return f"{_e(english)} {expression}" if english else expression


def _next_run_cell(row: CronRow, now: datetime) -> str:
    note = f' <span class="sub note">{_e(row.next_run_note)}</span>' if row.next_run_note \
        else ""
    if row.next_run is None:
        return ("- (suspended)" if row.suspended else NONE) + note
    parts = [_time(row.next_run)]
    if not _is_utc(row.timezone):
        local = format_in_zone(row.next_run, row.timezone)
        if local:
            parts.append(f'<span class="sub local">{_e(local)}</span>')
    parts.append(f'<span class="sub">{_e(_relative(row.next_run, now))}</span>')
    return " ".join(parts) + note


def _timeline_section(timeline: Timeline, now: datetime) -> str:
    """The coming hour: each fire (time, cron), then the busiest minutes."""
    lines = ['<section class="timeline">',
             f"<h2>Next hour: {len(timeline.fires)} "
             f"run{'' if len(timeline.fires) == 1 else 's'} scheduled</h2>"]
    if not timeline.fires:
        lines.append('<p class="empty">Nothing is scheduled to start in the next hour.</p>')
    else:
        lines += ['<div class="scroll"><table class="fires">',
                  "<thead><tr><th>Time</th><th>Cron</th></tr></thead>", "<tbody>"]
        for fire in timeline.fires[:TIMELINE_ROWS]:
            link = f'<a href="/crons/{quote(fire.cron, safe="")}">{_e(fire.cron)}</a>'
            lines.append(f'<tr data-fire="{_e(fire.cron)}"><td class="nowrap">'
                         f'{_time(fire.at)} <span class="sub">{_e(_relative(fire.at, now))}'
                         f"</span></td><td>{link}</td></tr>")
        lines.append("</tbody></table></div>")
        more = len(timeline.fires) - TIMELINE_ROWS
        if more > 0:
            lines.append(f'<p class="sub more">and {more} more</p>')
        busiest = [m for m in timeline.busiest(BUSIEST_MINUTES) if m.starts > 1]
        if busiest:
            lines.append('<h3>Busiest minutes</h3><ul class="busiest">')
            for minute in busiest:
                late = minute.late_s()
                delay = f", the last about {late:.0f} s late" if late > 0 else ""
                lines.append(f"<li>{_time(minute.minute)}: {minute.starts} task starts "
                             f"(RunTask calls){_e(delay)}</li>")
            lines.append("</ul>")
    if timeline.assumed_anchor:
        lines.append('<p class="sub">rate() crons whose start is not recorded are shown from '
                     f"the hour's start: {_e(', '.join(timeline.assumed_anchor))}</p>")
    lines.append("</section>")
    return "\n".join(lines) + "\n"


def _duration(execution: Execution | None, now: datetime) -> str:
    if execution is None:
        return NONE
    seconds = execution.duration_s()
    if seconds is not None:
        return _e(format_duration(seconds))
    started = _moment(execution.started_at)
    if execution.status == RUNNING and started is not None:
        return f"{_e(format_duration(max(0.0, (now - started).total_seconds())))} so far"
    return NONE


def _last_run_cell(execution: Execution | None, now: datetime) -> str:
    if execution is None:
        return NONE
    moment = _moment(execution.started_at or execution.created_at or execution.scheduled_at)
    if moment is None:
        return NONE
    return f'{_time(moment)} <span class="sub">{_e(_relative(moment, now))}</span>'


def _page(title: str, heading: str, subtitle: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<header><h1><a href="/">cronctl</a>{heading}</h1><p>{subtitle}</p></header>\n'
        f"<main>\n{body}</main>\n</body>\n</html>\n")


def _subtitle(namespace: str, now: datetime, *extra: str) -> str:
    parts = [f"namespace <b>{_e(namespace)}</b>", *extra, f"as of {_time(now)}"]
    return " · ".join(parts)


def overview_page(view: Overview) -> str:
    """The overview: one row per cron, or a line saying there are none."""
    rows = list(view.crons)
    failing = sum(1 for r in rows if r.last is not None and status_class(r.last.status) == "bad")
    running = sum(1 for r in rows if r.last is not None and r.last.status == RUNNING)
    counts = [f"{len(rows)} cron{'' if len(rows) == 1 else 's'}"]
    if failing:
        counts.append(f"{failing} failing")
    if running:
        counts.append(f"{running} running")
    subtitle = _subtitle(view.namespace, view.now, *counts)
    if not rows:
        body = '<p class="empty">No crons in this namespace yet.</p>\n'
        return _page(f"cronctl · {view.namespace}", "", subtitle, body)
    alerts = any(r.alert for r in rows)
    headers = ["Cron", "Schedule", "Next run", "Last status", "Last run", "Last duration"]
    if alerts:
        headers.append("Alert")
    lines = ['<div class="scroll"><table class="crons">',
             "<thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead>",
             "<tbody>"]
    for row in rows:
        tag = ' <span class="tag">suspended</span>' if row.suspended else ""
        last_status = row.last.status if row.last else None
        cells = [
            f'<td class="name"><a href="/crons/{quote(row.name, safe="")}">{_e(row.name)}</a>'
            f"{tag}</td>",
            f'<td class="schedule">{_schedule_cell(row)}</td>',
            f'<td class="next nowrap">{_next_run_cell(row, view.now)}</td>',
            f'<td class="last-status">{badge(last_status)}</td>',
            f'<td class="last-run nowrap">{_last_run_cell(row.last, view.now)}</td>',
            f'<td class="duration nowrap">{_duration(row.last, view.now)}</td>',
        ]
        if alerts:
            alert = f'<span class="alert">{_e(row.alert)}</span>' if row.alert else ""
            cells.append(f'<td class="alert-cell">{alert}</td>')
        lines.append(f'<tr data-cron="{_e(row.name)}">' + "".join(cells) + "</tr>")
    lines.append("</tbody></table></div>")
    body = "\n".join(lines) + "\n"
    if view.timeline is not None:
        body += _timeline_section(view.timeline, view.now)
    return _page(f"cronctl · {view.namespace}", "", subtitle, body)


def logs_command(cron: str, execution_id: str, flags: Sequence[str] = ()) -> str:
    """The command that prints a run's output."""
    return shlex.join(["cronctl", "logs", cron, execution_id, *flags])


def console_url(region: str, log_group: str, stream: str) -> str | None:
    """The CloudWatch Logs console's page of one stream; None for a region it cannot name."""
    if not _REGION.fullmatch(region or ""):
        return None
    if region.startswith("cn-"):
        host = "console.amazonaws.cn"
    elif region.startswith("us-gov-"):
        host = "console.amazonaws-us-gov.com"
    else:
        host = f"{region}.console.aws.amazon.com"

    def part(value: str) -> str:  # the console's own encoding: URL-encoded twice, % as $
        return quote(quote(value, safe=""), safe="").replace("%", "$")

    return (f"https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
            f"{part(log_group)}/log-events/{part(stream)}")


def _logs_cell(page: CronPage, execution: Execution) -> str:
    if not execution.task_arn:
        return "No logs: this run never started a task."
    command = logs_command(page.cron.name, execution.execution_id, page.logs_flags)
    text = f"Logs: <code>{_e(command)}</code>"
    if page.console_region and page.log_group:
        try:
            stream = stream_name(page.namespace, execution.task_arn)
        except ValueError:
            return text
        url = console_url(page.console_region, page.log_group, stream)
        if url:
            text += (f' · <a href="{_e(url)}" rel="noopener noreferrer">'
                     "CloudWatch Logs</a>")
    return text


def _link(url: str | None) -> str:
    if not url:
        return NONE
    if _HTTP_URL.fullmatch(url):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{_e(url)}</a>'
    return _e(url)


def _executions_table(page: CronPage) -> str:
    if not page.executions:
        return '<p class="empty">No executions yet.</p>\n'
    headers = ["Execution", "Scheduled", "Started", "Duration", "Status", "Exit code",
               "Reason"]
    lines = ['<div class="scroll"><table class="runs">',
             "<thead><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr></thead>",
             "<tbody>"]
    for run in page.executions:
        manual = ' <span class="tag">manual</span>' if run.trigger == "manual" else ""
        exit_code = NONE if run.exit_code is None else _e(run.exit_code)
        cells = [
            f'<td class="id"><code>{_e(run.execution_id)}</code>{manual}</td>',
            f'<td class="nowrap">{_time(run.scheduled_at)}</td>',
            f'<td class="nowrap">{_time(run.started_at)}</td>',
            f'<td class="nowrap">{_duration(run, page.now)}</td>',
            f"<td>{badge(run.status)}</td>",
            f'<td class="num">{exit_code}</td>',
            f'<td class="reason">{_e(run.reason) if run.reason else NONE}</td>',
        ]
        lines.append(f'<tr class="run" data-execution="{_e(run.execution_id)}">'
                     + "".join(cells) + "</tr>")
        lines.append(f'<tr class="logs"><td colspan="{len(headers)}">'
                     f"{_logs_cell(page, run)}</td></tr>")
    lines.append("</tbody></table></div>")
    return "\n".join(lines) + "\n"


def cron_page(page: CronPage) -> str:
    """One cron: its facts, its alert (when it has one) and its recent executions."""
    cron = page.cron
    last_status = cron.last.status if cron.last else None
    facts = [("Last status", badge(last_status)),
             ("Schedule", _schedule_cell(cron)),
             ("Time zone", _e(cron.timezone or "UTC")),
             ("Next run", _next_run_cell(cron, page.now)),
             ("Last duration", _duration(cron.last, page.now))]
    if cron.suspended:
        facts.append(("Suspended",
                      "yes: no run starts while its file says <code>suspend: true</code>"))
    if page.docs:
        facts.append(("Runbook", _link(page.docs)))
    if page.file:
        source = f"<code>{_e(page.file)}</code>"
        if page.commit:
            source += f" at commit <code>{_e(page.commit[:12])}</code>"
        facts.append(("Defined in", source))
    body = ['<p class="back"><a href="/">&larr; All crons</a></p>']
    if cron.alert:
        body.append(f'<p class="alert-box" role="alert">{_e(cron.alert)}</p>')
    body.append('<dl class="facts">' + "".join(
        f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts) + "</dl>")
    count = len(page.executions)
    body.append(f"<h2>Recent executions ({count})</h2>" if count else "<h2>Recent executions</h2>")
    body.append(_executions_table(page))
    tag = ' <span class="tag">suspended</span>' if cron.suspended else ""
    heading = f" / {_e(cron.name)}{tag}"
    return _page(f"{cron.name} · cronctl · {page.namespace}", heading,
                 _subtitle(page.namespace, page.now), "\n".join(body))


def not_found_page(namespace: str, name: str | None, now: datetime) -> str:
    """404: no cron by that name (``name`` None: the path names no valid cron)."""
    what = (f"There is no cron named <code>{_e(name)}</code> in this namespace."
            if name is not None else "That is not the name of a cron.")
    body = f'<p class="empty">{what} <a href="/">All crons</a></p>\n'
    return _page("Not found · cronctl", " / not found", _subtitle(namespace, now), body)


def unavailable_page(namespace: str, detail: str, now: datetime) -> str:
    """503: the state of the crons could not be read (the detail says why)."""
    body = (f'<p class="alert-box" role="alert">The crons cannot be read right now: '
            f"{_e(detail)}</p>\n")
    return _page("Unavailable · cronctl", " / unavailable", _subtitle(namespace, now), body)
