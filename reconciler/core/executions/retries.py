"""Retries (pure): whether an attempt that just ended is tried again, and the record of the
run while it waits.

A run's ``RetryTerms`` are copied from its cron's ``retries`` when the run is created
(``terms_for``), so the decision needs nothing but the record. When an attempt ends (the
consumer's event, the watchdog's answer from ECS, or dispatch when RunTask refused for good),
``after_attempt`` says whether the run goes on: FAILED and FAILED_TO_START are retried, TIMEOUT
only with ``on: [failure, timeout]``, while attempts are left and the retry's start time is
before ``until`` (the next scheduled run, unless ``concurrency: allow``). The run then goes
back to PENDING with no task, ``attempt`` + 1 and ``retry_at``, the ended attempt noted in
``tries``; stored in one conditional write with nothing in its outbox (no finished line, no
ping, no alert: those follow the final attempt only). The watchdog starts it when due through
the dispatcher's resumable path, with the attempt's own token (``attempt_token``), so each
attempt starts exactly once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from reconciler.core.executions.records import (
    FAILED,
    FAILED_TO_START,
    PENDING,
    TIMEOUT,
    Execution,
    RetryTerms,
    Try,
    format_time,
    parse_time,
)
from reconciler.core.schedule import expressions as schedule
from reconciler.core.spec import MAX_BACKOFF_S, CronSpec

RETRIED = frozenset({FAILED, FAILED_TO_START})


def terms_for(spec: CronSpec, since: datetime,
              anchor: datetime | None = None) -> RetryTerms | None:
    """The retry terms of a run of ``spec`` scheduled at (or, manual, created at) ``since``;
    None when the cron has no ``retries``. ``anchor``: a ``rate()`` schedule's start."""
    policy = spec.retries
    if policy is None:
        return None
    until = None
    if spec.concurrency != "allow":
        try:
            after = schedule.next_fire_times(spec.schedule, spec.timezone, since, 1,
                                             anchor=anchor)
        except (schedule.ScheduleError, ValueError):
            after = []
        until = format_time(after[0]) if after else None
    return RetryTerms(retries=policy.attempts, backoff_s=policy.backoff_s,
                      on_timeout=policy.on_timeout, until=until, max_backoff_s=MAX_BACKOFF_S)


def backoff_s(terms: RetryTerms, retry: int) -> int:
    """The wait before retry number ``retry`` (1 = the second attempt): doubling, capped."""
    return min(terms.max_backoff_s, terms.backoff_s * 2 ** (retry - 1))


def after_attempt(ended: Execution, now: datetime,
                  start_deadline_s: float) -> Execution | None:
    """The record of the run waiting for its next attempt, if the attempt that ``ended`` (the
    record as it would be stored, terminal) is to be retried; None when ``ended`` is final."""
    terms = ended.retry
    if terms is None or not ended.terminal:
        return None
    if ended.status not in RETRIED and not (ended.status == TIMEOUT and terms.on_timeout):
        return None
    attempt = ended.attempt_number
    if attempt > terms.retries:
        return None
    retry_at = now + timedelta(seconds=backoff_s(terms, attempt))
    if terms.until is not None and retry_at >= parse_time(terms.until):
        return None
    done = Try(attempt=attempt, status=ended.status, task_arn=ended.task_arn,
               exit_code=ended.exit_code, started_at=ended.started_at,
               stopped_at=ended.stopped_at, reason=ended.reason)
    return replace(
        ended, status=PENDING, attempt=attempt + 1, retry_at=format_time(retry_at),
        start_deadline=format_time(retry_at + timedelta(seconds=start_deadline_s)),
        tries=(*(ended.tries or ()), done), task_arn=None, version=None, started_at=None,
        stopped_at=None, exit_code=None, reason=None, claimed_by=None, claim_until=None,
        overlong_at=None)
