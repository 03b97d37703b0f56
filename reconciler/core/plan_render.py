"""A Plan as Terraform-style text or as JSON (pure). Secret-looking env values are masked."""

from __future__ import annotations

import json
import re

from reconciler.core.plan_model import Change, Plan

SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
MASK = "(sensitive)"
SYMBOLS = {"create": "+", "update": "~", "delete": "-"}


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


def render_text(plan: Plan, apply_errors=()) -> str:
    """Terraform-style: one block per change, per-field ``before -> after``, then a summary
    counted in crons (and task definitions, which crons share, on a line of their own)."""
    lines: list[str] = []
    if plan.commit:
        lines.append(f"Commit {plan.commit}")
    for change in plan.pending:
        lines.append("")
        lines.append(f"{SYMBOLS[change.action]} {change.action} {change.resource} "
                     f"{change.cron}: {change.reason}")
        for field, before, after in change.diff:
            before, after = _value(field, before), _value(field, after)
            if change.action == "create":
                lines.append(f"    + {field} = {_show(after)}")
            elif change.action == "delete":
                lines.append(f"    - {field} = {_show(before)}")
            else:
                lines.append(f"    ~ {field}: {_show(before)} -> {_show(after)}")
    for error in plan.errors:
        where = f" ({error.file})" if error.file else ""
        who = f"{error.cron}{where}: " if error.cron else ""
        lines.append("")
        lines.append(f"! error: {who}{error.message}")
    for error in apply_errors:
        lines.append(f"! failed: {error.action} {error.resource} {error.cron}: {error.message}")
    lines.append("")
    if not plan.has_changes:
        lines.append("No changes.")
        return "\n".join(lines).lstrip("\n") + "\n"
    counts = plan.cron_counts()
    lines.append(f"Plan: {counts['create']} to create, {counts['update']} to update, "
                 f"{counts['delete']} to delete.")
    tds = plan.task_definition_counts()
    if any(tds.values()):
        lines.append(f"Task definitions: {tds['register']} to register, "
                     f"{tds['deregister']} to deregister.")
    return "\n".join(lines).lstrip("\n") + "\n"


def change_to_dict(change: Change) -> dict:
    return {
        "cron": change.cron, "resource": change.resource, "action": change.action,
        "reason": change.reason,
        "diff": {field: [_value(field, before), _value(field, after)]
                 for field, before, after in change.diff},
    }


def plan_to_dict(plan: Plan, api_calls: dict | None = None, apply_errors=()) -> dict:
    """The JSON form; no-ops are left out of ``changes``. ``errors`` holds every error of the
    pass (plan errors, then failed changes); ``apply_errors`` details the failed changes."""
    data = {
        "commit": plan.commit,
        "changes": [change_to_dict(c) for c in plan.pending],
        "errors": [{"cron": e.cron, "file": e.file, "message": e.message}
                   for e in plan.errors] + [
                  {"cron": e.cron, "file": "",
                   "message": f"{e.action} {e.resource} failed: {e.message}"}
                  for e in apply_errors],
        "api_calls": dict(sorted((api_calls or {}).items())),
    }
    if apply_errors:
        data["apply_errors"] = [{"cron": e.cron, "resource": e.resource, "action": e.action,
                                 "message": e.message} for e in apply_errors]
    return data


def render_json(plan: Plan | None, api_calls: dict | None = None, apply_errors=(),
                pass_errors: tuple[str, ...] = (), commit: str | None = None) -> str:
    """The JSON document; a pass that stopped before planning (``plan`` None, e.g. an
    unreadable source) still gives one, with no changes and its ``pass_errors``."""
    data = plan_to_dict(plan or Plan(commit=commit), api_calls, apply_errors)
    data["errors"] += [{"cron": "", "file": "", "message": message} for message in pass_errors]
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
