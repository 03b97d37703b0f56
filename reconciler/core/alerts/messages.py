"""What a notice says: Slack text and PagerDuty summaries and details (pure).

A run's message names the cron, its status, exit code, duration and scheduled time, the
runbook (``meta.docs``) and the ``cronctl logs`` command of the run (``--namespace`` when the
namespace is not the default one)."""

from __future__ import annotations

from datetime import datetime

from reconciler.core.executions.records import Execution, parse_time
from reconciler.core.spec import CronSpec
from reconciler.core.status.render import format_duration, format_moment

DEFAULT_NAMESPACE = "crons"
SUMMARY_MAX = 1024  # PagerDuty's bound on payload.summary

_WHAT = {
    "FAILED": "failed",
    "TIMEOUT": "timed out",
    "FAILED_TO_START": "failed to start",
    "LOST": "was lost (ECS no longer knows its task)",
    "MISSED": "did not run",
}


def logs_command(namespace: str, cron: str, execution_id: str) -> str:
    flags = "" if namespace == DEFAULT_NAMESPACE else f" --namespace {namespace}"
    return f"cronctl logs {cron} {execution_id}{flags}"


def minute(moment: str | datetime | None) -> str:
    """``2026-Dec-01 13:50 UTC`` (seconds cut: schedules fire on minutes)."""
    text = format_moment(moment)
    return text[:-7] + " UTC" if text.endswith(" UTC") else text


def run_facts(namespace: str, spec: CronSpec, run: Execution) -> tuple[tuple[str, str], ...]:
    """The facts of a run, in the order people read them."""
    facts = [("cron", spec.name), ("namespace", namespace), ("status", run.status),
             ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
             ("duration", format_duration(run.duration_s())),
             ("scheduled", format_moment(run.scheduled_at)),
             ("execution", run.execution_id)]
    if run.reason:
        facts.append(("reason", run.reason))
    if run.task_arn:
        facts.append(("logs", logs_command(namespace, spec.name, run.execution_id)))
    if spec.docs:
        facts.append(("runbook", spec.docs))
    return tuple(facts)


def failure_summary(namespace: str, spec: CronSpec, run: Execution,
                    consecutive: int) -> str:
    what = _WHAT.get(run.status, run.status.lower())
    if run.status == "MISSED":
        text = (f"cron {spec.name} ({namespace}) did not run: nothing started for "
                f"{minute(run.scheduled_at)}")
    else:
        code = f" with exit code {run.exit_code}" if run.exit_code is not None else ""
        text = f"cron {spec.name} ({namespace}) {what}{code}"
    if consecutive > 1:
        text += f" ({consecutive} consecutive failures)"
    return text[:SUMMARY_MAX]


def failure_text(namespace: str, spec: CronSpec, run: Execution, consecutive: int) -> str:
    """A Slack message about a failed (or missed) run."""
    lines = [f":red_circle: *{failure_summary(namespace, spec, run, consecutive)}*"]
    lines += [f"{name}: {value}" for name, value in run_facts(namespace, spec, run)
              if name not in ("cron", "namespace")]
    return "\n".join(lines)


def overlong_summary(namespace: str, spec: CronSpec, run: Execution, now: datetime,
                     threshold_s: int) -> str:
    since = run.started_at or run.created_at or run.scheduled_at
    running = (now - parse_time(since)).total_seconds() if since else None
    return (f"cron {spec.name} ({namespace}) is still running after "
            f"{format_duration(running)} (ran-longer-than-threshold "
            f"{format_duration(threshold_s)})")[:SUMMARY_MAX]


def overlong_text(namespace: str, spec: CronSpec, run: Execution, now: datetime,
                  threshold_s: int) -> str:
    lines = [f":hourglass: *{overlong_summary(namespace, spec, run, now, threshold_s)}*"]
    lines += [f"started: {format_moment(run.started_at or run.created_at)}",
              f"scheduled: {format_moment(run.scheduled_at)}",
              f"execution: {run.execution_id}",
              f"logs: {logs_command(namespace, spec.name, run.execution_id)}"]
    if spec.docs:
        lines.append(f"runbook: {spec.docs}")
    return "\n".join(lines)


def recovered_text(namespace: str, spec: CronSpec, run: Execution, failures: int,
                   failing_since: str | None) -> str:
    head = (f":large_green_circle: *cron {spec.name} ({namespace}) recovered*: "
            f"SUCCESS after {failures} consecutive failure{'s' if failures != 1 else ''}")
    lines = [head]
    if failing_since:
        lines.append(f"failing since: {format_moment(failing_since)}")
    lines += [f"duration: {format_duration(run.duration_s())}",
              f"scheduled: {format_moment(run.scheduled_at)}",
              f"execution: {run.execution_id}"]
    return "\n".join(lines)


def paused_summary(namespace: str, spec: CronSpec, failures: int) -> str:
    """``cron nightly (crons) paused after 3 consecutive failures; ...``."""
    return (f"cron {spec.name} ({namespace}) paused after {failures} consecutive failure"
            f"{'s' if failures != 1 else ''}: nothing starts until the next commit that "
            f"changes its file, or cronctl resume {spec.name}")[:SUMMARY_MAX]


def paused_text(namespace: str, spec: CronSpec, run: Execution, failures: int) -> str:
    """A Slack message about a cron that suspend-after-failures paused."""
    flags = "" if namespace == DEFAULT_NAMESPACE else f" --namespace {namespace}"
    return "\n".join([f":double_vertical_bar: *{paused_summary(namespace, spec, failures)}*",
                      f"last run: {run.status} ({run.execution_id})",
                      f"resume: cronctl resume {spec.name}{flags}"])
