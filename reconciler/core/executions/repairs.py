"""What the watchdog does with one open execution (pure; the service does the I/O).

An execution is *open* while it is not terminal. For each open record, ``decide`` names one
repair:
- ``RESUME``: PENDING with no task and no live claim (the attempt that created it crashed, or
  its retries gave up): dispatch resumes it (finds a task started for it, else RunTask with the
  same client token);
- ``GIVE_UP``: PENDING with no task, past its start deadline: FAILED_TO_START, lock released;
- a run waiting for its next attempt (``retries``, ``Execution.retry_at``) gets ``NONE``
  until then, ``RESUME`` after: its attempt's own task is started;
- a *queued* run (``concurrency: queue``, ``Execution.queued_behind``) is resumed only once
  the run it waits for no longer holds a live lock (released, expired, or handed to it):
  ``RESUME`` then starts it through the dispatcher's resumable path (same execution id);
- ``CHECK_TASK``: a task is known (or the run is RUNNING) and nothing has ended it for longer
  than the cron's timeout plus the grace period: ask ECS about that one task; its final state
  is recorded from ECS's answer exactly as the STOPPED event would have, or LOST when ECS no
  longer knows it;
- ``RELEASE_LOCK``: terminal, but the process that stored the final state died before
  releasing the overlap lock: release it;
- ``CLOSE``: terminal, lock released, outbox empty, yet still in the index of open runs (a
  process died between the two): take it out. (A terminal run whose outbox has effects left
  gets ``NONE`` here: the watchdog drains outboxes apart from repairs.)
- ``NONE``: nothing to do yet.

``task_event`` turns one task of a DescribeTasks answer into the ``TaskEvent`` that the ECS
event of that state would have carried, so ``apply_event`` folds it in with the same rules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from reconciler.core.executions.records import (
    LOST,
    TASK_STATE_CHANGE,
    Execution,
    TaskEvent,
    format_time,
    parse_task_event,
    parse_time,
)


class Repair(enum.Enum):
    NONE = "none"
    RELEASE_LOCK = "release_lock"
    CLOSE = "close"
    RESUME = "resume"
    GIVE_UP = "give_up"
    CHECK_TASK = "check_task"


def overdue_at(record: Execution, timeout_s: float, grace_s: float) -> datetime | None:
    """When a started run with no final event becomes worth asking ECS about."""
    since = record.started_at or record.retry_at or record.created_at or record.scheduled_at
    if not since:
        return None
    return parse_time(since) + timedelta(seconds=timeout_s + grace_s)


@dataclass(frozen=True)
class LockState:
    """A cron's overlap lock as read: its holder, until when (epoch seconds), who waits."""

    holder: str
    expires_at: float
    waiting: str | None = None

    def held_by(self, execution_id: str | None, now: datetime) -> bool:
        return execution_id is not None and self.holder == execution_id and \
            self.expires_at > now.timestamp()


def decide(record: Execution, now: datetime, timeout_s: float, grace_s: float,
           lock: LockState | None = None) -> Repair:
    """The repair ``record`` needs at ``now`` (see the module docstring); ``lock``: its cron's
    overlap lock (read for a queued run only; None when there is none)."""
    if record.terminal:
        # Still in the index of open runs: its final state was stored but its lock release,
        # or its outbox, is not done (a crash in between, or a delivery to retry).
        if not record.lock_released:
            return Repair.RELEASE_LOCK
        return Repair.NONE if record.outbox else Repair.CLOSE
    if record.unstarted:
        if record.claimed(now.timestamp()):
            return Repair.NONE
        if not record.retry_due(now):
            return Repair.NONE      # waiting for the time of its next attempt (``retries``)
        if record.past_start_deadline(now):
            return Repair.GIVE_UP
        if record.queued and lock is not None and lock.held_by(record.queued_behind, now):
            return Repair.NONE      # still waiting for the run ahead of it
        return Repair.RESUME
    due = overdue_at(record, timeout_s, grace_s)
    return Repair.CHECK_TASK if due is not None and now >= due else Repair.NONE


def _iso(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def task_event(task: dict, fallback_version: int) -> TaskEvent:
    """A DescribeTasks task as the TaskEvent of its current state.

    ``fallback_version`` is used when the answer carries no ``version`` (it must be above the
    record's, or the state would be taken for a stale event)."""
    version = task.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        version = fallback_version
    detail = {
        "taskArn": task.get("taskArn"),
        "lastStatus": task.get("lastStatus"),
        "desiredStatus": task.get("desiredStatus"),
        "version": version,
        "startedBy": task.get("startedBy"),
        "clusterArn": task.get("clusterArn"),
        "containers": [
            {k: v for k, v in {"name": c.get("name"), "lastStatus": c.get("lastStatus"),
                               "exitCode": c.get("exitCode"), "reason": c.get("reason")}.items()
             if v is not None}
            for c in task.get("containers") or [] if isinstance(c, dict)],
        "stopCode": task.get("stopCode"),
        "stoppedReason": task.get("stoppedReason"),
    }
    for key in ("createdAt", "startedAt", "stoppedAt", "executionStoppedAt"):
        detail[key] = _iso(task.get(key))
    event = parse_task_event({"detail-type": TASK_STATE_CHANGE,
                              "detail": {k: v for k, v in detail.items() if v is not None}})
    assert event is not None  # the detail-type is a task state change
    return event


def lost(record: Execution, now: datetime, reason: str) -> Execution:
    """The record of a run that ECS no longer knows: LOST, with the reason."""
    return replace(record, status=LOST, reason=reason, stopped_at=format_time(now))
