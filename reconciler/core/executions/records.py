"""Executions: ids, the record of one run, and its state machine (record + event -> record).

Pure: no I/O. The dispatcher creates a ``PENDING`` record before calling RunTask; the event
consumer folds ``ECS Task State Change`` events into it with ``apply_event``.

Invariants:
- ``execution_id(cron, scheduled_at)`` is deterministic, so every delivery of one scheduled
  message maps to the same record (and the same RunTask ``clientToken``/``startedBy``).
- ``detail.version`` orders events: an event whose version is not above the record's
  ``version`` is stale or a duplicate and changes nothing.
- A terminal record never goes back to a non-terminal status.

Events whose ``lastStatus`` is ``DEACTIVATING``/``STOPPING``/``DEPROVISIONING`` with
``desiredStatus`` ``STOPPED`` (e.g. the captured 2019 Fargate event) already carry the final
outcome once the essential containers have exit codes (or ECS says the task failed to start):
such an event finishes the execution at once, so the outcome does not wait for (or depend on)
the final ``STOPPED`` event. A later ``STOPPED`` event with a higher version refreshes the
timestamps but keeps the decided outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

TASK_STATE_CHANGE = "ECS Task State Change"
MAIN_CONTAINER = "main"
TIMEOUT_CONTAINER = "timeout"
TIMEOUT_EXIT_CODE = 124

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"
TIMEOUT = "TIMEOUT"
SKIPPED = "SKIPPED"
FAILED_TO_START = "FAILED_TO_START"
LOST = "LOST"
# A scheduled run that never came: no execution for it within the cron's no-run-threshold
# (recorded by the watchdog, so that a delivery arriving later starts nothing).
MISSED = "MISSED"
# Not stored statuses: how ``status`` shows a PENDING run with no task that waits for the run
# holding its cron's lock (``concurrency: queue``; ``Execution.queued_behind``), or for the
# time of its next attempt (``retries``; ``Execution.retry_at``).
QUEUED = "QUEUED"
RETRY_WAIT = "RETRY_WAIT"
STATUSES = (PENDING, RUNNING, SUCCESS, FAILED, TIMEOUT, SKIPPED, FAILED_TO_START, LOST, MISSED)
TERMINAL = frozenset({SUCCESS, FAILED, TIMEOUT, SKIPPED, FAILED_TO_START, LOST, MISSED})
TRIGGERS = ("schedule", "manual")

# Task lastStatus values on the way down, before STOPPED.
STOPPING_STATES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})
START_FAILURE_MARKERS = ("CannotPullContainerError", "ResourceInitializationError")

_ID_NAMESPACE = uuid.UUID("6f1c2a4e-9b3d-5e7f-8a1b-2c3d4e5f6a7b")


class MalformedEvent(ValueError):
    """A task state change event that cannot be used; the message says what is wrong."""


def parse_time(value: str) -> datetime:
    """An ISO-8601 timestamp (``Z`` or an offset) as an aware UTC datetime; ValueError if not."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: sorts as text in time order."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def normalize_scheduled_at(value: str) -> str:
    """The scheduled time in one canonical form (UTC, whole seconds), whatever the input form."""
    return parse_time(value).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def execution_id(cron: str, scheduled_at: str) -> str:
    """Deterministic id (36 chars, fits RunTask ``startedBy``) of a cron's scheduled run."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{cron}@{normalize_scheduled_at(scheduled_at)}"))


def manual_execution_id() -> str:
    """A fresh id (36 chars) for a manual run."""
    return str(uuid.uuid4())


def attempt_token(eid: str, attempt: int) -> str:
    """RunTask's ``clientToken`` and ``startedBy`` (at most 36 characters) of one attempt of a
    run: the execution id for the first; ``<id without dashes>-a<NN>`` for retries."""
    if attempt <= 1:
        return eid
    return f"{uuid.UUID(eid).hex}-a{attempt:02d}"


def parse_token(token: str) -> tuple[str, int]:
    """``attempt_token``'s inverse: (execution id, attempt); a plain id is attempt 1."""
    if len(token) == 36 and token[32:34] == "-a" and token[34:].isdigit():
        try:
            return str(uuid.UUID(hex=token[:32])), int(token[34:])
        except ValueError:
            pass
    return token, 1


@dataclass(frozen=True)
class RetryTerms:
    """A run's retry terms, copied from its cron's ``retries`` when the run is created: up to
    ``retries`` more attempts, the first ``backoff_s`` after a failure (doubling, at most
    ``max_backoff_s``), TIMEOUT too when ``on_timeout``; none starting at or after ``until``
    (the next scheduled run; None with ``concurrency: allow``)."""

    retries: int
    backoff_s: int
    on_timeout: bool = False
    until: str | None = None
    max_backoff_s: int = 3600

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> RetryTerms:
        return cls(retries=int(data["retries"]), backoff_s=int(data["backoff_s"]),
                   on_timeout=bool(data.get("on_timeout", False)), until=data.get("until"),
                   max_backoff_s=int(data.get("max_backoff_s", 3600)))


@dataclass(frozen=True)
class Try:
    """One attempt of a run that ended and was retried: what ``status`` lists."""

    attempt: int
    status: str
    task_arn: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Try:
        values = {k: data[k] for k in cls.__dataclass_fields__ if data.get(k) is not None}
        values["attempt"] = int(values["attempt"])
        if "exit_code" in values:
            values["exit_code"] = int(values["exit_code"])
        return cls(**values)


@dataclass(frozen=True)
class Execution:
    """One run of a cron. Times are ISO-8601 UTC strings; ``expires_at`` is epoch seconds."""

    execution_id: str
    cron: str
    scheduled_at: str
    trigger: str = "schedule"
    status: str = PENDING
    task_arn: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    version: int | None = None
    expires_at: int | None = None
    # The intent and its claims (see ``reconciler.service.execution.dispatch``): the attempt that
    # created the record, the attempt working on it now and until when (epoch seconds), and
    # the time after which a run that has not started is given up (FAILED_TO_START).
    attempt_id: str | None = None
    claimed_by: str | None = None
    claim_until: float | None = None
    start_deadline: str | None = None
    lock_released: bool | None = None
    # How the run was made, when it differs from AWS's: the embedded runner without Docker
    # notes that it ran the command as a local process, without the image (``cronctl status``).
    note: str | None = None
    # The outbox (see ``reconciler.core.alerts.model``): the effects still to carry out for
    # this run, stored with its final state in the same conditional write; the claim of the
    # replica carrying them out (owner, until: epoch seconds); when a failed delivery may be
    # retried (epoch seconds), how many deliveries failed and since when; the decided notices
    # (notice key -> JSON); when the run was found running past ran-longer-than-threshold.
    outbox: frozenset[str] | None = None
    outbox_owner: str | None = None
    outbox_until: float | None = None
    outbox_retry_at: float | None = None
    outbox_attempts: int | None = None
    outbox_failing_since: float | None = None
    notices: dict | None = None
    overlong_at: str | None = None
    # ``concurrency: queue``: the run this PENDING one waits for (it starts when that one's
    # lock is released or expires; the dispatcher's resumable path starts it).
    queued_behind: str | None = None
    # ``retries`` (see ``reconciler.core.executions.retries``): the terms copied from the
    # cron's spec when the run was created; the number of the current attempt (None: the
    # first); when it may start (a run waiting for its retry); the attempts that ended.
    retry: RetryTerms | None = None
    attempt: int | None = None
    retry_at: str | None = None
    tries: tuple[Try, ...] | None = None
    # True when the cron had no monitor and folded no run into an alert state when this run
    # was created (dispatch decides, from the registry item it started the run with): its
    # final state then needs no ping and no alert, so the consumer's outbox holds only
    # ``finished`` and its drain reads no registry item. None: not known (full effects).
    quiet: bool | None = None

    @property
    def attempt_number(self) -> int:
        return self.attempt or 1

    @property
    def token(self) -> str:
        """The ``clientToken`` and ``startedBy`` of the current attempt's task."""
        return attempt_token(self.execution_id, self.attempt_number)

    def retry_due(self, now: datetime) -> bool:
        """False while a run waits for its next attempt (``retry_at`` in the future)."""
        return self.retry_at is None or now >= parse_time(self.retry_at)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def unstarted(self) -> bool:
        """PENDING with no task known: the intent of a run that RunTask has not yet answered."""
        return self.status == PENDING and not self.task_arn

    @property
    def queued(self) -> bool:
        """Waiting for the run that holds its cron's lock (``concurrency: queue``)."""
        return self.unstarted and bool(self.queued_behind)

    @property
    def shown_status(self) -> str:
        """The status as ``status`` shows it: QUEUED for a queued run, else ``status``."""
        if self.queued:
            return QUEUED
        if self.unstarted and self.retry_at:
            return RETRY_WAIT
        return self.status

    def claimed(self, now: float, attempt: str | None = None) -> bool:
        """True when an attempt other than ``attempt`` holds a live claim on the record."""
        return (self.claim_until is not None and self.claim_until > now
                and self.claimed_by != attempt)

    def past_start_deadline(self, now: datetime) -> bool:
        return self.start_deadline is not None and now >= parse_time(self.start_deadline)

    def duration_s(self) -> float | None:
        """Seconds from start to stop; None until both are known."""
        if not self.started_at or not self.stopped_at:
            return None
        return max(0.0, (parse_time(self.stopped_at) - parse_time(self.started_at)).total_seconds())

    def to_dict(self) -> dict:
        """Plain attributes, ``None`` left out (the stored shape)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if self.retry is not None:
            data["retry"] = self.retry.to_dict()
        if self.tries is not None:
            data["tries"] = [t.to_dict() for t in self.tries]
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Execution:
        values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("exit_code", "version", "expires_at"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        if values.get("claim_until") is not None:
            values["claim_until"] = float(values["claim_until"])
        if values.get("lock_released") is not None:
            values["lock_released"] = bool(values["lock_released"])
        for key in ("outbox_until", "outbox_retry_at", "outbox_failing_since"):
            if values.get(key) is not None:
                values[key] = float(values[key])
        if values.get("outbox_attempts") is not None:
            values["outbox_attempts"] = int(values["outbox_attempts"])
        if values.get("outbox") is not None:
            values["outbox"] = frozenset(values["outbox"]) or None
        if values.get("notices") is not None:
            values["notices"] = {str(k): str(v) for k, v in dict(values["notices"]).items()}
        if values.get("attempt") is not None:
            values["attempt"] = int(values["attempt"])
        if values.get("quiet") is not None:
            values["quiet"] = bool(values["quiet"])
        if values.get("retry") is not None:
            values["retry"] = RetryTerms.from_dict(dict(values["retry"]))
        if values.get("tries") is not None:
            values["tries"] = tuple(Try.from_dict(dict(t)) for t in values["tries"]) or None
        return cls(**values)

    @property
    def pending_effects(self) -> frozenset[str]:
        """The outbox's effects (empty when there are none)."""
        return self.outbox or frozenset()

    def outbox_claimed(self, now: float, owner: str | None = None) -> bool:
        """True when a replica other than ``owner`` holds a live claim on the outbox."""
        return (self.outbox_until is not None and self.outbox_until > now
                and self.outbox_owner != owner)

    def outbox_due(self, now: float) -> bool:
        """True when the outbox has effects that may be carried out at ``now``."""
        return bool(self.outbox) and not self.outbox_claimed(now) and (
            self.outbox_retry_at is None or self.outbox_retry_at <= now)


@dataclass(frozen=True)
class ContainerState:
    """One container of a task event."""

    name: str
    last_status: str | None = None
    exit_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TaskEvent:
    """The parts of an ``ECS Task State Change`` event that executions need."""

    task_arn: str
    last_status: str
    desired_status: str | None
    version: int
    started_by: str | None = None
    cluster_arn: str | None = None
    containers: tuple[ContainerState, ...] = ()
    stop_code: str | None = None
    stopped_reason: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    execution_stopped_at: str | None = None
    event_time: str | None = None

    def main_container(self) -> ContainerState | None:
        """The container named ``main``; else the only one that is not the timeout sidecar."""
        for container in self.containers:
            if container.name == MAIN_CONTAINER:
                return container
        others = [c for c in self.containers if c.name != TIMEOUT_CONTAINER]
        return others[0] if len(others) == 1 else None

    def container(self, name: str) -> ContainerState | None:
        return next((c for c in self.containers if c.name == name), None)


def _optional_time(detail: dict, key: str) -> str | None:
    value = detail.get(key)
    if value in (None, ""):
        return None
    try:
        return format_time(parse_time(value))
    except (ValueError, TypeError) as exc:
        raise MalformedEvent(f"detail.{key} is not an ISO-8601 timestamp: {value!r}") from exc


def _containers(detail: dict) -> tuple[ContainerState, ...]:
    raw = detail.get("containers") or []
    if not isinstance(raw, list):
        raise MalformedEvent("detail.containers is not a list")
    result = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise MalformedEvent(f"detail.containers[{index}] has no name")
        code = item.get("exitCode")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise MalformedEvent(f"detail.containers[{index}].exitCode is not an integer")
        result.append(ContainerState(item["name"], item.get("lastStatus"), code,
                                     item.get("reason")))
    return tuple(result)


def parse_task_event(envelope: dict) -> TaskEvent | None:
    """An EventBridge envelope as a TaskEvent; None for other detail-types.

    Raises ``MalformedEvent`` when the envelope or a task state change in it is unusable
    (no taskArn / lastStatus / integer detail.version, bad timestamps or containers).
    """
    if not isinstance(envelope, dict):
        raise MalformedEvent("event is not a JSON object")
    detail_type = envelope.get("detail-type")
    if not isinstance(detail_type, str):
        raise MalformedEvent("event has no detail-type")
    if detail_type != TASK_STATE_CHANGE:
        return None
    detail = envelope.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("event has no detail object")
    for key in ("taskArn", "lastStatus"):
        if not isinstance(detail.get(key), str) or not detail[key]:
            raise MalformedEvent(f"detail.{key} is missing")
    version = detail.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise MalformedEvent("detail.version is missing or not an integer")
    started_by = detail.get("startedBy")
    event_time = envelope.get("time")
    try:
        event_time = format_time(parse_time(event_time)) if event_time else None
    except ValueError as exc:
        raise MalformedEvent(f"time is not an ISO-8601 timestamp: {event_time!r}") from exc
    return TaskEvent(
        task_arn=detail["taskArn"],
        last_status=detail["lastStatus"],
        desired_status=detail.get("desiredStatus"),
        version=version,
        started_by=started_by if isinstance(started_by, str) and started_by else None,
        cluster_arn=detail.get("clusterArn"),
        containers=_containers(detail),
        stop_code=detail.get("stopCode"),
        stopped_reason=detail.get("stoppedReason") or None,
        created_at=_optional_time(detail, "createdAt"),
        started_at=_optional_time(detail, "startedAt"),
        stopped_at=_optional_time(detail, "stoppedAt"),
        execution_stopped_at=_optional_time(detail, "executionStoppedAt"),
        event_time=event_time,
    )


@dataclass(frozen=True)
class Outcome:
    status: str
    exit_code: int | None
    reason: str | None


def outcome_decided(event: TaskEvent) -> bool:
    """True when the event already tells how the run ended."""
    if event.last_status == "STOPPED":
        return True
    if event.last_status not in STOPPING_STATES or event.desired_status != "STOPPED":
        return False
    if event.stop_code == "TaskFailedToStart":
        return True
    main, sidecar = event.main_container(), event.container(TIMEOUT_CONTAINER)
    if sidecar is not None and sidecar.exit_code == TIMEOUT_EXIT_CODE:
        return True
    return main is not None and main.exit_code is not None


def final_outcome(event: TaskEvent) -> Outcome:
    """The final status rules, first match wins:

    1. the ``timeout`` sidecar exited 124 -> TIMEOUT;
    2. stopCode TaskFailedToStart, CannotPullContainerError / ResourceInitializationError in
       stoppedReason, or the task never started (no startedAt and main has no exit code)
       -> FAILED_TO_START;
    3. stopCode UserInitiated (StopTask, e.g. "replaced by <id>") -> FAILED with that reason;
    4. main exit code 0 -> SUCCESS; any other exit code -> FAILED with the code;
    5. main has no exit code (spot interruption, host lost) -> FAILED with stoppedReason.
    """
    main, sidecar = event.main_container(), event.container(TIMEOUT_CONTAINER)
    main_code = main.exit_code if main else None
    reason = event.stopped_reason
    if sidecar is not None and sidecar.exit_code == TIMEOUT_EXIT_CODE:
        return Outcome(TIMEOUT, main_code, "timed out (timeout sidecar exited 124)")
    start_failure = any(marker in (reason or "") for marker in START_FAILURE_MARKERS)
    never_started = event.started_at is None and main_code is None
    if event.stop_code == "TaskFailedToStart" or start_failure or never_started:
        return Outcome(FAILED_TO_START, None, reason or (main.reason if main else None))
    if event.stop_code == "UserInitiated":
        return Outcome(FAILED, main_code, reason or "stopped by a user")
    if main_code == 0:
        return Outcome(SUCCESS, 0, None)
    if main_code is not None:
        return Outcome(FAILED, main_code, (main.reason if main else None) or reason)
    return Outcome(FAILED, None, reason or "task stopped without an exit code")


def apply_event(record: Execution, event: TaskEvent) -> Execution | None:
    """The record after ``event``; None when the event is stale, a duplicate or not for it."""
    if record.version is not None and event.version <= record.version:
        return None
    if record.status == SKIPPED or (record.task_arn and record.task_arn != event.task_arn):
        return None
    started_at = event.started_at or record.started_at
    changes: dict = {"version": event.version, "task_arn": event.task_arn,
                     "started_at": started_at}
    if outcome_decided(event):
        stopped_at = (event.stopped_at or event.execution_stopped_at or record.stopped_at
                      or event.event_time)
        if record.terminal and record.status != LOST:
            # The outcome was decided by an earlier event: only refine times and exit code.
            main = event.main_container()
            exit_code = record.exit_code if record.exit_code is not None or main is None \
                else main.exit_code
            return replace(record, stopped_at=event.stopped_at or record.stopped_at,
                           exit_code=exit_code, **changes)
        outcome = final_outcome(event)
        if outcome.status != FAILED_TO_START:
            changes["started_at"] = started_at or event.created_at or record.created_at
        return replace(record, status=outcome.status, exit_code=outcome.exit_code,
                       reason=outcome.reason, stopped_at=stopped_at, **changes)
    if record.terminal:
        return None
    status = RUNNING if event.last_status in ("RUNNING", *STOPPING_STATES) else PENDING
    return replace(record, status=status, **changes)


@dataclass(frozen=True)
class EventWrite:
    """What ``apply_event`` would do with ``event`` to a record in the common case, computed
    from the event alone, so that it can be stored in one conditional write without reading
    the record first (``ExecutionStore.store_event``).

    The write applies only to a record of the event's attempt (``attempt``), not terminal
    (PENDING or RUNNING), whose version is below ``version`` and whose task is ``task_arn``
    or none; ``sets`` are stored, ``sets_if_absent`` only where the record has none, ``removes`` removed; with
    ``needs`` (attribute names), only a record that has them (``apply_event`` would take a
    value from them). Anything else (a stale, duplicate or earlier-attempt event, a terminal
    record, a record that may be retried when ``retry_free``) fails the condition, and the
    caller goes on with ``apply_event`` on the record the failure returned.
    ``status`` is the status stored; ``terminal`` whether it is final."""

    status: str
    version: int
    task_arn: str
    attempt: int
    terminal: bool
    sets: dict
    sets_if_absent: dict
    removes: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    retry_free: bool = False


def event_write(event: TaskEvent, attempt: int) -> EventWrite:
    """``apply_event(record, event)`` for any record that meets ``EventWrite``'s conditions,
    as a write that needs no read (see ``EventWrite``)."""
    sets: dict = {}
    if_absent: dict = {}
    needs: list[str] = []
    if event.started_at:
        sets["started_at"] = event.started_at
    if not outcome_decided(event):
        status = RUNNING if event.last_status in ("RUNNING", *STOPPING_STATES) else PENDING
        return EventWrite(status=status, version=event.version, task_arn=event.task_arn,
                          attempt=attempt, terminal=False, sets={"status": status, **sets},
                          sets_if_absent={})
    outcome = final_outcome(event)
    stopped_at = event.stopped_at or event.execution_stopped_at
    if stopped_at:
        sets["stopped_at"] = stopped_at
    elif event.event_time:
        if_absent["stopped_at"] = event.event_time
    if outcome.status != FAILED_TO_START and not event.started_at:
        if event.created_at:
            if_absent["started_at"] = event.created_at
        else:
            needs.append("started_at")   # else the record's created_at: the slow path
    sets.update(status=outcome.status)
    removes = []
    for name, value in (("exit_code", outcome.exit_code), ("reason", outcome.reason)):
        if value is None:
            removes.append(name)
        else:
            sets[name] = value
    return EventWrite(status=outcome.status, version=event.version, task_arn=event.task_arn,
                      attempt=attempt, terminal=True, sets=sets, sets_if_absent=if_absent,
                      removes=tuple(removes), needs=tuple(needs), retry_free=outcome.status != SUCCESS)
