"""structlog set-up: one canonical line per unit of work.

- Not on a terminal (a file, a pipe, a log collector): JSON lines, every field as logged.
- On a terminal (stderr is a TTY): short readable lines from structlog's ConsoleRenderer, in
  colour (plain ANSI; none with ``NO_COLOR`` set). ``readable_lines`` rewrites the two lines
  an operator watches: a finished run (``execution.finished``: cron, status, exit code,
  duration, reason; FAILED / TIMEOUT / LOST / FAILED_TO_START in red, SUCCESS in green) and a
  reconcile pass (``reconcile.pass``: changes by action, errors spelled out; the per-operation
  AWS call counts stay in the JSON form only). Other lines lose their empty fields, ARNs are
  cut to their resource part, and the routine lines of each run (fired, delivered, started,
  stopped) are dimmed so that its outcome stands out.
"""

from __future__ import annotations

import logging
import os
import re
import sys

import structlog

RESET = "\x1b[0m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
DIM = "\x1b[2m"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

STATUS_COLOURS = {
    "SUCCESS": GREEN,
    "FAILED": RED, "TIMEOUT": RED, "LOST": RED, "FAILED_TO_START": RED,
    "SKIPPED": YELLOW, "MISSED": YELLOW,
}
_CLASS_PREFIX = re.compile(r"^(?:CronctlError|TransientError|PermanentError|NotFound|Conflict|"
                           r"QuotaExceeded|SourceError|ConfigError|LeaseLost|LeaseHeld): ")
_ARN = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:(.+)$")
# The plumbing of each run (fired, delivered, dispatched, started, stopped): dimmed on a
# terminal, so that the line of its outcome stands out.
ROUTINE = frozenset({"schedule fired (local clock)", "dispatch.started", "task started",
                     "task stopping", "task stopped", "http_request"})
# ECS's reason for any task whose essential container exited: it says nothing on its own.
GENERIC_REASONS = frozenset({"Essential container in task exited"})


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of the write, not at configuration:
    long-lived threads keep logging correctly when stderr is swapped (tests, daemons).

    A line that cannot be written (the reader of a pipe is gone, the stream is closed) is
    dropped: logging never raises into the code that logs, so a broken log stream cannot stop
    a dispatch, a consumer or the daemon's shutdown."""

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (OSError, ValueError):
            return 0

    def flush(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _seconds(value) -> str:
    if value is None:
        return "?"
    total = float(value)
    if total < 60:
        return f"{total:.1f}s" if total < 10 else f"{total:.0f}s"
    minutes, secs = divmod(int(round(total)), 60)
    return f"{minutes}m {secs}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60}m"


def _short(value):
    if isinstance(value, str):
        match = _ARN.match(value)
        if match:
            return match.group(1)
    return value


class ReadableLines:
    """A processor for the terminal: the run and pass lines as sentences, the rest trimmed."""

    def __init__(self, colors: bool) -> None:
        self.colors = colors

    def paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{RESET}" if self.colors and colour else text

    def __call__(self, _logger, _method, event_dict: dict) -> dict:
        event = event_dict.get("event")
        if event == "execution.finished":
            return self._finished(event_dict)
        if event == "reconcile.pass":
            return self._pass(event_dict)
        return {key: _short(value) for key, value in event_dict.items() if value is not None}

    def _finished(self, fields: dict) -> dict:
        status = str(fields.pop("status", "?"))
        cron = fields.pop("cron", "?")
        code = fields.pop("exit_code", None)
        duration = fields.pop("duration_s", None)
        reason = fields.pop("reason", None)
        eid = fields.pop("execution_id", None)
        source = fields.pop("source", None)
        colour = STATUS_COLOURS.get(status, "")
        text = f"{cron} {self.paint(status, colour)}" if colour != RED else f"{cron} {status}"
        if code is not None:
            text += f" exit {code}"
        if duration is not None:
            text += f" after {_seconds(duration)}"
        if reason and reason not in GENERIC_REASONS:
            text += f": {reason}"
        out = {key: value for key, value in fields.items() if value is not None}
        out["event"] = self.paint(text, RED) if colour == RED else text
        if eid:
            out["id"] = eid[:8]
        if source and source != "consumer":
            out["via"] = source
        return out

    def _pass(self, fields: dict) -> dict:
        for key in ("aws_calls_by_operation", "plan_errors", "apply_errors", "errors"):
            fields.setdefault(key, None)
        creates, updates, deletes = (fields.pop(k, 0) or 0 for k in ("create", "update",
                                                                     "delete"))
        dry_run = fields.pop("dry_run", False)
        applied = fields.pop("applied", 0) or 0
        plan_errors = fields.pop("plan_errors") or 0
        apply_errors = fields.pop("apply_errors") or 0
        errors = [_CLASS_PREFIX.sub("", str(e), count=1) for e in (fields.pop("errors") or ())]
        fields.pop("aws_calls_by_operation")
        commit = fields.pop("commit", None)
        duration = fields.pop("duration_s", None)
        calls = fields.pop("aws_calls", None)
        cheap = fields.pop("check", None) == "cheap"
        fields.pop("check_reason", None)
        summary = fields.pop("summary", None)
        if cheap and summary:
            text = f"reconcile{' (dry run)' if dry_run else ''}: {summary}"
        elif creates or updates or deletes:
            text = (f"reconcile{' (dry run)' if dry_run else ''}: {creates} to create, "
                    f"{updates} to update, {deletes} to delete")
            if not dry_run:
                text += f"; {applied} applied"
        else:
            text = f"reconcile{' (dry run)' if dry_run else ''}: no changes"
        problems = []
        if plan_errors:
            problems.append(f"{plan_errors} cron{'s' if plan_errors != 1 else ''} not "
                            "reconciled (`cronctl reconcile --dry-run` shows why)")
        if apply_errors:
            problems.append(f"{apply_errors} change{'s' if apply_errors != 1 else ''} failed")
        problems += errors
        if problems:
            text += "; " + self.paint("; ".join(problems), RED)
        out = {key: value for key, value in fields.items() if value is not None}
        out["event"] = text
        if commit:
            out["commit"] = str(commit)[:7]
        if duration is not None:
            out["took"] = _seconds(duration)
        if calls is not None:
            out["aws_calls"] = calls
        return out


class ConsoleLines:
    """structlog's ConsoleRenderer, with the routine lines of each run dimmed."""

    def __init__(self, colors: bool) -> None:
        self.colors = colors
        self.renderer = structlog.dev.ConsoleRenderer(
            colors=colors, sort_keys=False,
            exception_formatter=structlog.dev.plain_traceback)

    def __call__(self, logger, method, event_dict: dict) -> str:
        event, status = event_dict.get("event"), event_dict.get("status")
        routine = event in ROUTINE and not (isinstance(status, int) and status >= 400)
        text = self.renderer(logger, method, event_dict)
        if routine and self.colors and method in ("debug", "info"):
            return f"{DIM}{ANSI.sub('', text)}{RESET}"
        return text


def configure(level: str = "INFO", json: bool | None = None, stream=None) -> None:
    """JSON lines unless ``json`` is False or (when None) ``stream`` (default: the current
    stderr) is a terminal; colours on a terminal unless ``NO_COLOR`` is set."""
    stream = stream or _CurrentStderr()
    tty = bool(getattr(stream, "isatty", lambda: False)())
    if json is None:
        json = not tty
    if json:
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ]
    else:
        colors = tty and not os.environ.get("NO_COLOR")
        processors = [
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
            ReadableLines(colors),
            ConsoleLines(colors),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str):
    return structlog.get_logger(name)
