"""The decisions (pure, table-tested): a finished run folded into its cron's alert state,
the scheduled runs that never came, a run that goes on too long, PagerDuty routing keys, and
the warning for a cron that names Slack when the process cannot reach it.

Routing: failed runs (FAILED, TIMEOUT, FAILED_TO_START, LOST) and missed runs page PagerDuty
when the cron has a routing key, else go to its Slack channel; overlong runs go to Slack.
``alert-after: N``: an alert opens at the N-th consecutive failure; while it is open, further
failures notify nobody again (``cronctl status`` shows the count). The next SUCCESS resolves
every open alert: a PagerDuty resolve per open incident, one Slack "recovered" message when an
alert had gone to Slack. SKIPPED runs change nothing.

``suspend-after-failures: N`` (``pause``): the N-th consecutive failed run (FAILED, TIMEOUT,
FAILED_TO_START, LOST; a MISSED run neither counts nor breaks the streak) pauses the cron
for its current spec (``paused_spec_hash``): dispatch then starts nothing until the spec
changes (a commit that changes the file) or ``cronctl resume`` (``resumed``). A cron with
notifiers is told once (Slack, else a PagerDuty incident resolved by the next SUCCESS).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from reconciler.core.alerts import messages
from reconciler.core.alerts.model import (
    FAILURE_STATUSES,
    KIND_FAILED,
    KIND_MISSED,
    KIND_OVERLONG,
    KIND_PAUSED,
    KIND_RECOVERED,
    MESSAGE,
    PAGERDUTY,
    RESOLVE,
    RUN_FAILURE_STATUSES,
    SLACK,
    SUCCESS_STATUS,
    TRIGGER,
    AlertState,
    Decision,
    Notice,
    OpenAlert,
)
from reconciler.core.alerts.routing import routing_key
from reconciler.core.cronfile.calendars import without_excluded
from reconciler.core.executions.records import (
    MISSED,
    PENDING,
    RUNNING,
    Execution,
    format_time,
    parse_time,
)
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import CronSpec

# Missed runs are looked for among the fires of the last hour before the threshold, at most
# the last 10 of them: bounded reads per cron and sweep.
LOOK_BACK_S = 3600
LOOK_BACK_FIRES = 10


def alerting(spec: CronSpec) -> bool:
    """True when the cron names a notifier (its runs are folded into an alert state)."""
    return bool(spec.notifications.slack or spec.notifications.pagerduty)


def counted(spec: CronSpec) -> bool:
    """True when the cron's runs are folded into its alert state: it names a notifier, or it
    pauses after failures (counted, without alerts it did not ask for)."""
    return alerting(spec) or spec.suspend_after_failures is not None


def dedup_key(namespace: str, cron: str, kind: str) -> str:
    return f"{namespace}/{cron}/{kind}"


# -- a finished run folded into the state ------------------------------------------------

def evaluate(state: AlertState, run: Execution, spec: CronSpec, namespace: str) -> Decision:
    """The cron's state after the final state of ``run``, and the notices that it decides.

    The caller makes sure each run is folded in once (the service does it in the same
    transaction that removes the run's ``alert`` effect)."""
    state = _pause_current(state, spec)
    if run.status == SUCCESS_STATUS:
        return _recovered(state, run, spec, namespace)
    if run.status not in FAILURE_STATUSES:
        return Decision(state)
    count = state.consecutive_failures + 1
    since = state.failing_since or run.stopped_at or run.scheduled_at
    new = replace(state, consecutive_failures=count, failing_since=since,
                  last_status=run.status)
    paused = None
    if run.status in RUN_FAILURE_STATUSES:
        new, paused = _pause(new, run, spec, namespace)
    kind = KIND_MISSED if run.status == MISSED else KIND_FAILED
    if count < spec.notifications.alert_after or state.is_open(kind):
        return _with(new, paused)
    notice = _failure_notice(run, spec, namespace, kind, count)
    if notice is None:
        return _with(new, paused)
    opened = OpenAlert(kind=kind, notifier=notice.notifier,
                       since=run.stopped_at or run.scheduled_at,
                       dedup_key=notice.dedup_key, routing_key=notice.routing_key,
                       channel=notice.channel)
    return _with(replace(new, open=(*new.open, opened)), paused, notice)


def _with(state: AlertState, paused: Notice | None, *notices: Notice) -> Decision:
    """The decision, with the pause notice (and its open alert) when one was decided."""
    if paused is None:
        return Decision(state, tuple(notices))
    opened = OpenAlert(kind=KIND_PAUSED, notifier=paused.notifier, since=state.paused_at or "",
                       dedup_key=paused.dedup_key, routing_key=paused.routing_key,
                       channel=paused.channel)
    return Decision(replace(state, open=(*state.open, opened)), (*notices, paused))


# -- suspend-after-failures ------------------------------------------------------------------

def _pause_current(state: AlertState, spec: CronSpec) -> AlertState:
    """A pause of an older spec ended with that spec (a new commit): it counts afresh."""
    if state.paused_at is not None and state.paused_spec_hash != spec.spec_hash():
        return resumed(state)
    return state


def resumed(state: AlertState) -> AlertState:
    """The state after ``cronctl resume`` (or a new spec): not paused, the streak restarted.
    The alerts' own count and open alerts are left as they are."""
    return replace(state, run_failures=0, paused_at=None, paused_after=None,
                   paused_spec_hash=None)


def _pause(state: AlertState, run: Execution, spec: CronSpec,
           namespace: str) -> tuple[AlertState, Notice | None]:
    """One more failed run: the streak, and the pause (with its notice) when it reaches N."""
    limit = spec.suspend_after_failures
    count = state.run_failures + 1
    state = replace(state, run_failures=count)
    if limit is None or count < limit or state.paused_at is not None:
        return state, None
    state = replace(state, paused_at=run.stopped_at or run.scheduled_at, paused_after=count,
                    paused_spec_hash=spec.spec_hash())
    return state, _paused_notice(run, spec, namespace, count)


def _paused_notice(run: Execution, spec: CronSpec, namespace: str,
                   count: int) -> Notice | None:
    summary = messages.paused_summary(namespace, spec, count)
    if spec.notifications.slack:
        return Notice(SLACK, MESSAGE, KIND_PAUSED, spec.name, namespace,
                      execution_id=run.execution_id, channel=spec.notifications.slack,
                      summary=summary,
                      text=messages.paused_text(namespace, spec, run, count))
    key = routing_key(spec.notifications.pagerduty)
    if key:
        return Notice(PAGERDUTY, TRIGGER, KIND_PAUSED, spec.name, namespace,
                      execution_id=run.execution_id, routing_key=key,
                      dedup_key=dedup_key(namespace, spec.name, KIND_PAUSED),
                      summary=summary, severity="warning",
                      details=messages.run_facts(namespace, spec, run))
    return None


def pause_reason(state: AlertState, spec: CronSpec) -> str:
    """Why dispatch skips a run of a paused cron (the SKIPPED record's reason)."""
    n = state.paused_after or state.run_failures
    return (f"paused after {n} consecutive failure{'s' if n != 1 else ''} since "
            f"{messages.minute(state.paused_at)}; cronctl resume {spec.name}")


def describe_pause(state: AlertState | None, spec: CronSpec) -> str | None:
    """``PAUSED since 2026-Dec-01 13:50 UTC after 2 consecutive failures; resume: cronctl
    resume NAME``; None when the cron is not paused (for its current spec)."""
    if state is None or not state.paused_for(spec.spec_hash()):
        return None
    n = state.paused_after or state.run_failures
    return (f"PAUSED since {messages.minute(state.paused_at)} after {n} consecutive failure"
            f"{'s' if n != 1 else ''}; resume: cronctl resume {spec.name}")


def _failure_notice(run: Execution, spec: CronSpec, namespace: str, kind: str,
                    count: int) -> Notice | None:
    key = routing_key(spec.notifications.pagerduty)
    summary = messages.failure_summary(namespace, spec, run, count)
    facts = messages.run_facts(namespace, spec, run)
    links = ((spec.docs, "runbook"),) if spec.docs else ()
    if key:
        return Notice(PAGERDUTY, TRIGGER, kind, spec.name, namespace,
                      execution_id=run.execution_id, routing_key=key,
                      dedup_key=dedup_key(namespace, spec.name, kind), summary=summary,
                      severity="error", details=facts, links=links)
    if spec.notifications.slack:
        return Notice(SLACK, MESSAGE, kind, spec.name, namespace,
                      execution_id=run.execution_id, channel=spec.notifications.slack,
                      summary=summary,
                      text=messages.failure_text(namespace, spec, run, count))
    return None


def _recovered(state: AlertState, run: Execution, spec: CronSpec,
               namespace: str) -> Decision:
    new = replace(state, consecutive_failures=0, failing_since=None, last_status=run.status,
                  open=(), run_failures=0)
    notices: list[Notice] = []
    for alert in state.open:
        if alert.notifier == PAGERDUTY:
            notices.append(Notice(PAGERDUTY, RESOLVE, alert.kind, spec.name, namespace,
                                  execution_id=run.execution_id,
                                  routing_key=alert.routing_key, dedup_key=alert.dedup_key,
                                  summary=f"cron {spec.name} ({namespace}) recovered"))
    slack = [a for a in state.open if a.notifier == SLACK]
    if slack:
        notices.append(Notice(
            SLACK, MESSAGE, KIND_RECOVERED, spec.name, namespace,
            execution_id=run.execution_id,
            channel=spec.notifications.slack or slack[0].channel,
            summary=f"cron {spec.name} ({namespace}) recovered",
            text=messages.recovered_text(namespace, spec, run, state.consecutive_failures,
                                         state.failing_since)))
    return Decision(new, tuple(notices))


# -- overlong runs -------------------------------------------------------------------------

def overlong(run: Execution, spec: CronSpec, now: datetime) -> bool:
    """True when ``run`` is still going past its cron's ran-longer-than-threshold and has not
    been alerted about yet (once per run)."""
    threshold = spec.notifications.ran_longer_than_threshold_s
    if threshold is None or run.overlong_at or run.status not in (RUNNING, PENDING):
        return False
    if run.status == PENDING and not run.task_arn:
        return False
    since = run.started_at or run.created_at
    return since is not None and now - parse_time(since) >= timedelta(seconds=threshold)


def overlong_notice(run: Execution, spec: CronSpec, namespace: str,
                    now: datetime) -> Notice | None:
    """The Slack message about an overlong run; None when the cron names no channel."""
    threshold = spec.notifications.ran_longer_than_threshold_s
    if not spec.notifications.slack or threshold is None:
        return None
    return Notice(SLACK, MESSAGE, KIND_OVERLONG, spec.name, namespace,
                  execution_id=run.execution_id, channel=spec.notifications.slack,
                  summary=messages.overlong_summary(namespace, spec, run, now, threshold),
                  text=messages.overlong_text(namespace, spec, run, now, threshold))


# -- missed runs -----------------------------------------------------------------------------

def missed_fires(spec: CronSpec, since: datetime | str | None, now: datetime, *,
                 look_back_s: int = LOOK_BACK_S,
                 limit: int = LOOK_BACK_FIRES) -> list[datetime]:
    """The scheduled times whose run should have started by ``now`` (their time plus the
    cron's no-run-threshold has passed), within the look-back window (the last
    ``look_back_s`` before that, at most the last ``limit`` fires), computed from the schedule
    in its time zone; none before the schedule existed (``since``: the registry's
    ``schedule_since``), none for a suspended cron or a cron without a threshold. A ``rate()``
    whose start is unknown has no computable fires."""
    threshold = spec.notifications.no_run_threshold_s
    if threshold is None or spec.suspend:
        return []
    latest = now - timedelta(seconds=threshold)
    start = latest - timedelta(seconds=look_back_s)
    anchor = None
    since_at = None if since is None else parse_time(since) if isinstance(since, str) else since
    if since_at is not None:
        start = max(start, since_at)
    try:
        parsed = schedule.parse(spec.schedule)
        if isinstance(parsed, schedule.RateExpression):
            if since_at is None:
                return []
            anchor = since_at.replace(second=0, microsecond=0)
        if start >= latest:
            return []
        times = active_window.spec_fire_times(spec, start, 500, anchor=anchor)
    except (schedule.ScheduleError, ValueError):
        return []
    return without_excluded(spec, [t for t in times if t <= latest])[-limit:]


def missed_record(spec: CronSpec, execution_id: str, fire: datetime, now: datetime,
                  expires_at: int) -> Execution:
    """The record of a scheduled run that never came (MISSED, with the reason)."""
    threshold = spec.notifications.no_run_threshold_s or 0
    return Execution(execution_id=execution_id, cron=spec.name,
                     scheduled_at=format_time(fire), status=MISSED,
                     created_at=format_time(now), stopped_at=format_time(now),
                     expires_at=expires_at, lock_released=True,
                     reason=f"no run started within the no-run-threshold "
                            f"({threshold} s) of its scheduled time")


# -- Slack without a token or webhook -----------------------------------------------------

SLACK_NOT_CONFIGURED = ("names a Slack channel ({channel}) but this process has no Slack "
                        "token or webhook: set CRONCTL_SLACK_TOKEN or "
                        "CRONCTL_SLACK_WEBHOOK_URL, or its Slack alerts are dropped")


def slack_warnings(specs, slack_configured: bool) -> list[str]:
    """One warning per cron that names ``slack:`` when the process cannot post to Slack."""
    if slack_configured:
        return []
    return [f"cron {spec.name}: " + SLACK_NOT_CONFIGURED.format(channel=spec.notifications.slack)
            for spec in sorted(specs, key=lambda s: s.name) if spec.notifications.slack]


# -- what status shows ------------------------------------------------------------------------

def describe_state(state: AlertState | None, spec: CronSpec | None = None) -> str | None:
    """``FAILING since 2026-Dec-01 13:50 UTC (3 consecutive failures, PagerDuty triggered)``;
    None when the cron is not failing."""
    if state is None or not state.failing:
        return None
    n = state.consecutive_failures
    parts = [f"{n} consecutive failure{'s' if n != 1 else ''}"]
    for alert in state.open:
        parts.append(f"{'PagerDuty triggered' if alert.notifier == PAGERDUTY else 'Slack notified'}"
                     + (" (missed run)" if alert.kind == KIND_MISSED else ""))
    if not state.open and spec is not None and alerting(spec):
        after = spec.notifications.alert_after
        if n < after:
            parts.append(f"alerts after {after}")
    return f"FAILING since {messages.minute(state.failing_since)} ({', '.join(parts)})"
