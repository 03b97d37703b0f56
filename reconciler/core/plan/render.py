"""A Plan as Terraform-style text or as JSON (pure). Secret-looking env values are masked.

Both forms say the same: every change by action (``Plan: 4 to create, 4 to update, 4 to
delete.`` / ``summary``), and every error with the file it concerns and the way out, worded
for a reader (never an exception's class name).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC

from reconciler.core.plan.model import (
    COUNTED,
    Action,
    Change,
    DeepCheck,
    Plan,
    PlanError,
    Resource,
)
from reconciler.core.plan.monitors import MONITOR_REFUSED, MONITORS_UNREAD
from reconciler.core.plan.planner import HELD_BACK

SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
MASK = "(sensitive)"
SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}


def is_sensitive(field: str) -> bool:
    """An env variable (spec or overrides) whose name looks like a secret."""
    parts = field.split(".")
    in_env = any(part in ("env", "environment") for part in parts[:-1])
    return in_env and bool(SENSITIVE.search(parts[-1]))


def _value(field: str, value) -> object:
    if value is None:
        return None
    return MASK if is_sensitive(field) else value


def _show(value) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, sort_keys=True)


# Our exception class names, which must never reach a reader: a pass error recorded as
# ``"ConfigError: ..."`` is shown from the message on.
_CLASS_PREFIX = re.compile(r"^(?:CronctlError|TransientError|PermanentError|NotFound|Conflict|"
                           r"QuotaExceeded|SourceError|ConfigError|LeaseLost|LeaseHeld): ")
VALIDATE_HINT = "correct the file and commit it (`cronctl validate {file}` lists every error)"


def plain_message(text: str) -> str:
    """``text`` without a leading exception class name."""
    return _CLASS_PREFIX.sub("", str(text), count=1)


@dataclass(frozen=True)
class ErrorView:
    """One error as shown: a headline naming the file (or the cron), detail lines, and the way
    out (None when the headline already says it)."""

    cron: str
    file: str
    headline: str
    details: tuple[str, ...] = ()
    way_out: str | None = None


def plan_error_view(error: PlanError) -> ErrorView:
    """A plan error: an invalid file (held back), a name taken by a resource cronctl does not
    manage, a time zone the backend cannot honour, the mass-delete guard, or other."""
    where = error.file or (f"cron {error.cron}" if error.cron else "")
    if error.message.startswith(HELD_BACK):
        reasons = tuple(r for r in error.message[len(HELD_BACK):].split("; ") if r)
        headline = (f"{error.file} is invalid: cron {error.cron} is held back" if error.file
                    else f"cron {error.cron} is held back: its file is invalid")
        return ErrorView(error.cron, error.file, headline, reasons, (
            (VALIDATE_HINT.format(file=error.file) if error.file
             else "correct its file and commit it (`cronctl validate` lists every error)")
            + "; until then its resources on AWS stay as they are"))
    headline = f"{where}: {error.message}" if where else error.message
    if error.message.startswith(MONITOR_REFUSED):
        way_out = ("its schedule and task definition are reconciled; its monitor is left as it "
                   "is until the schedule can be expressed at the monitoring service")
    elif error.message.startswith(MONITORS_UNREAD):
        way_out = ("schedules and task definitions are reconciled; monitors are left as they "
                   "are and the next pass tries again")
    elif "is not managed by cronctl" in error.message:
        way_out = ("cronctl never changes what it does not manage: rename the cron (`name:` or "
                   "the file's name) and commit, or remove that resource yourself")
    elif error.message.startswith("timezone "):
        way_out = ("run with --scheduler scheduler (EventBridge Scheduler honours time zones), "
                   "or use UTC in the file and commit it")
    elif "--allow-mass-delete" in error.message or "CRONCTL_" in error.message:
        way_out = None
    else:
        way_out = "this cron's resources on AWS stay as they are until the error is fixed"
    return ErrorView(error.cron, error.file, headline, (), way_out)


def apply_error_view(error, file: str = "") -> ErrorView:
    """A change that failed during apply (``reconciler.service.control.apply.ApplyError``);
    the changes that depend on it are listed as skipped."""
    what = f"{error.action} {error.resource} {error.cron}"
    headline = f"{file}: {what} failed" if file else f"{what} failed"
    if error.resource == Resource.TASK_DEFINITION:
        way_out = "crons that use it keep their task definition; the next pass tries again"
    elif error.resource == Resource.MONITOR:
        way_out = "the cron's other resources are reconciled; the next pass tries again"
    else:
        way_out = "the changes that depend on it wait; the next pass tries again"
    return ErrorView(error.cron, file, headline, (plain_message(error.message),), way_out)


def pass_error_view(message: str) -> ErrorView:
    """An error of the whole pass (unreadable source, settings, lost lease)."""
    return ErrorView("", "", plain_message(message))


def _file_of(plan: Plan | None, cron: str) -> str:
    for change in (plan.changes if plan else ()):
        if change.cron == cron:
            for item in (change.desired, change.observed):
                if isinstance(getattr(item, "file", None), str) and item.file:
                    return item.file
    return ""


def error_views(plan: Plan | None, apply_errors=(), pass_errors=()) -> list[ErrorView]:
    """Every error of a pass, in the order shown: plan errors, failed changes, pass errors."""
    views = [plan_error_view(e) for e in (plan.errors if plan else ())]
    views += [apply_error_view(e, _file_of(plan, e.cron)) for e in apply_errors]
    views += [pass_error_view(m) for m in pass_errors]
    return views


def error_text(view: ErrorView) -> list[str]:
    lines = [f"Error: {view.headline}"]
    lines += [f"  {detail}" for detail in view.details]
    if view.way_out:
        lines.append(f"  To fix: {view.way_out}.")
    return lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(plan: Plan | None, errors: int) -> str:
    """``No changes.`` only when there is nothing to do and nothing wrong; else the counts of
    the listed changes by action, and the number of errors."""
    if plan is None:
        return f"Nothing planned: {_plural(errors, 'error')}."
    if not plan.has_changes and not errors:
        return "No changes."
    counts = plan.counts()
    line = (f"Plan: {counts['create']} to create, {counts['update']} to update, "
            f"{counts['delete']} to delete.")
    return f"{line} {_plural(errors, 'error')}." if errors else line


def skipped_line(skipped) -> str:
    """A change apply did not try (``reconciler.service.control.apply.Skipped``): a change
    it depends on failed, or a quota it would reach was reached (``reason``)."""
    if getattr(skipped, "reason", ""):
        return (f"Skipped: {skipped.change.id}: not tried: {skipped.reason} ({skipped.after} "
                "reached it); the next pass tries again")
    return (f"Skipped: {skipped.change.id}: it depends on {skipped.after}, which failed; "
            "the next pass tries again")


def render_text(plan: Plan | None, apply_errors=(), pass_errors=(), skipped=(),
                summary: str | None = None) -> str:
    """Terraform-style: one block per change, per-field ``before -> after``, an ``Error:``
    block per error (what, where, the way out), a ``Skipped:`` line per change not tried
    because one it depends on failed, then the summary line, which counts exactly the
    changes listed above it, by action. ``summary``: a cheap pass's line
    (``pass_check.cheap_summary``), said instead of ``No changes.``."""
    lines: list[str] = []
    if plan is not None and plan.commit:
        lines.append(f"Commit {plan.commit}")
    for change in (plan.pending if plan else ()):
        lines.append("")
        lines.append(f"{SYMBOLS[change.action]} {change.action} {change.resource} "
                     f"{change.cron}: {change.reason}")
        for field, before, after in change.diff:
            before, after = _value(field, before), _value(field, after)
            if change.action == Action.CREATE:
                lines.append(f"    + {field} = {_show(after)}")
            elif change.action == Action.DELETE:
                lines.append(f"    - {field} = {_show(before)}")
            else:
                lines.append(f"    ~ {field}: {_show(before)} -> {_show(after)}")
    for warning in (plan.warnings if plan else ()):
        lines.append("")
        lines.append(f"Warning: {warning}")
    views = error_views(plan, apply_errors, pass_errors)
    for view in views:
        lines.append("")
        lines.extend(error_text(view))
    if skipped:
        lines.append("")
        lines.extend(skipped_line(item) for item in skipped)
    lines.append("")
    line = summary_line(plan, len(views))
    lines.append(summary if summary and line == "No changes." else line)
    if plan is not None and plan.deep_check is not None:
        lines.append(deep_check_line(plan.deep_check))
    return "\n".join(lines).lstrip("\n") + "\n"


def deep_check_line(check: DeepCheck) -> str:
    """What a sweep or an incremental pass did not read one by one, and since when."""
    if not check.listed:
        return f"Deep check: all {check.read} resources read this pass."
    since = (f"each last read no earlier than {_moment(check.since)}" if check.since
             else "not all read one by one yet by the rotation")
    return (f"Deep check: {check.read} resources read this pass, {check.listed} not ({since}; "
            "--full-check reads every one).")


def deep_check_dict(check: DeepCheck) -> dict:
    return {"read": check.read, "not_read": check.listed,
            "last_read_no_earlier_than": _moment(check.since) if check.since else None}


def _moment(moment) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def change_to_dict(change: Change) -> dict:
    return {
        "id": change.id, "depends_on": list(change.depends_on), "after": list(change.after),
        "cron": change.cron, "resource": change.resource, "action": change.action,
        "reason": change.reason,
        "diff": {field: [_value(field, before), _value(field, after)]
                 for field, before, after in change.diff},
    }


def _error_dict(view: ErrorView) -> dict:
    message = view.headline if not view.details else f"{view.headline}: {'; '.join(view.details)}"
    return {"cron": view.cron, "file": view.file, "message": message, "way_out": view.way_out}


def plan_to_dict(plan: Plan | None, api_calls: dict | None = None, apply_errors=(),
                 pass_errors=(), commit: str | None = None, skipped=()) -> dict:
    """The JSON form; no-ops are left out of ``changes``. ``summary`` has the same counts as
    the text's summary line; ``errors`` holds every error of the pass (plan errors, failed
    changes, then errors of the whole pass); ``apply_errors`` details the failed changes."""
    views = error_views(plan, apply_errors, pass_errors)
    counts = plan.counts() if plan else dict.fromkeys(COUNTED, 0)
    data = {
        "commit": plan.commit if plan else commit,
        "summary": {**counts, "errors": len(views),
                    "by_resource": plan.counts_by_resource() if plan else {}},
        "changes": [change_to_dict(c) for c in (plan.pending if plan else ())],
        "errors": [_error_dict(view) for view in views],
        "api_calls": dict(sorted((api_calls or {}).items())),
    }
    if apply_errors:
        data["apply_errors"] = [{"cron": e.cron, "resource": e.resource, "action": e.action,
                                 "message": plain_message(e.message)} for e in apply_errors]
    if skipped:
        data["skipped"] = [{"id": item.change.id, "after": item.after,
                            **({"reason": item.reason} if getattr(item, "reason", "") else {})}
                           for item in skipped]
    if plan is not None and plan.deep_check is not None:
        data["deep_check"] = deep_check_dict(plan.deep_check)
    return data


def render_json(plan: Plan | None, api_calls: dict | None = None, apply_errors=(),
                pass_errors: tuple[str, ...] = (), commit: str | None = None,
                warnings: tuple[str, ...] = (), skipped=(), check: dict | None = None) -> str:
    """The JSON document; a pass that stopped before planning (``plan`` None, e.g. an
    unreadable source) still gives one, with no changes and its ``pass_errors``. ``check``:
    whether the pass was full or cheap, why, and the last full check."""
    data = plan_to_dict(plan, api_calls, apply_errors, pass_errors, commit, skipped)
    if check is not None:
        data["check"] = check
    warnings = (*warnings, *(plan.warnings if plan else ()))
    if warnings:
        data["warnings"] = list(warnings)
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
