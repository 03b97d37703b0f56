"""Dispatch: a due cron (from SNS, ``cronctl trigger`` or the watchdog) becomes exactly one
ECS task, even when a process crashes at any step.

The execution record is the intent. One dispatch:
1. takes the cron's registry item from the dispatcher's cache (``RegistryCache``: primed by
   one Scan in ``warm``, else read once) — a cached item is only ever used under the check of
   step 2, and a run not started on its word is decided by the item read anew (unknown ->
   ``unknown_cron``; suspended -> ``suspended``;
   a scheduled time outside the cron's ``active`` window -> ``outside_window``, not recorded:
   the rules backend's backstop, its rule being disabled outside the window by the plan; a
   manual ``cronctl trigger`` is not held to the window);
2. creates the execution record, PENDING, conditionally (``attribute_not_exists``), carrying
   this attempt's id and a claim on the record (``claimed_by``/``claim_until``, default
   30 s), in one ``TransactWriteItems`` with a ``ConditionCheck`` that the cron's registry
   item is still exactly the cached one and, when nothing must be looked at first (no
   ``suspend-after-failures``, no excluded date, not forced, not ``allow``), the overlap lock
   of step 4. Refused, the answer says why, item by item: the record exists (a duplicate:
   this one call is all it costs), the registry item changed (its answer carries the item as
   stored now: decided again with it, from step 1), or the lock is held (the record is then
   written alone, under the same check, and step 4 starts from the holder named). If the
   first answer is lost and the retry finds the record, the attempt id in it is ours: it is
   our record (and our lock), not a duplicate;
3. when the record exists already: a run with a task (or finished) is a ``duplicate``; a
   PENDING record with no task is an interrupted dispatch: if another attempt holds a live
   claim the answer is 503 (SNS retries later); otherwise this attempt claims it
   (conditional write) and *resumes* it: a task already started for it (``ListTasks`` with
   ``startedBy``: the attempt that started it died before recording it) is recorded, whatever
   the deadline or the lock say by now; otherwise it goes on from step 4, unless it is past
   its start deadline (default 5 minutes after the scheduled time, or after the first delivery
   if that came later): then it ends FAILED_TO_START with the reason;
4. applies the concurrency policy through the overlap lock ``lock#<cron>`` (which expires
   after the cron's timeout plus the grace period): ``forbid`` records SKIPPED while a
   non-terminal execution holds it, ``replace`` stops the holder's task (or ends a holder
   that has not started) and takes the lock over, ``allow`` takes no lock, ``queue`` notes
   the run as the one waiting on the lock (``waiting``, conditional: at most one) and on its
   record (``queued_behind``, a later start deadline), and leaves it PENDING: when the holder
   releases the lock it is handed to the waiting run, which ``start_queued`` (or the
   watchdog, after a crash) starts through ``resume`` (same execution id: exactly once).
   A second run due meanwhile is SKIPPED, its reason naming the one already waiting;
5. RunTask (``startedBy`` = ``clientToken`` = execution id, idempotent on AWS for 24 hours;
   for attempt n > 1 of a retried run, ``records.attempt_token(id, n)``) and records the task
   ARN, then queues the monitor's start ping (``pinger``: never waits for the monitoring
   service).

``retries``: the run's retry terms are copied from the spec into its record at creation
(``core.executions.retries.terms_for``); a run waiting for its next attempt (``retry_at`` in
the future) is a duplicate to deliveries, and started by the watchdog once due, through
``resume``. RunTask refused for good with attempts left stores the retry instead of
FAILED_TO_START.

Failures: throttling, 5xx, capacity and DynamoDB trouble raise ``TransientError`` after the
adapters' retries; the claim is dropped and SNS gets a 503, so it delivers again (bootstrap
sets a delivery policy that retries with backoff for several minutes), and the watchdog
resumes what SNS gives up on. FAILED_TO_START only when AWS refuses for good or the start
deadline has passed.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from reconciler.adapters.alert_states import AlertStates
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ec2 import default_network
from reconciler.adapters.ecs_tasks import EcsTasks
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.registry_read import RegistryCache, RegistryReader
from reconciler.adapters.registry_read import check as registry_check
from reconciler.core.alerts.decide import counted, pause_reason
from reconciler.core.alerts.model import initial_effects
from reconciler.core.cronfile.calendars import excluded_by, exclusion_reason
from reconciler.core.executions import records as ex
from reconciler.core.executions import retries
from reconciler.core.json_bounds import loads_bounded
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import NAME_PATTERN, CronSpec
from reconciler.errors import PermanentError, TransientError
from reconciler.logs import get_logger
from reconciler.service.execution.consumer import store_retry
from reconciler.service.execution.outbox import Outbox
from reconciler.service.metrics import Metrics
from reconciler.service.monitoring.pings import NoPings
from reconciler.settings import NetworkSettings, Settings

log = get_logger("cronctl.dispatch")

STARTED, SKIPPED, DUPLICATE = "started", "skipped", "duplicate"
SUSPENDED, FAILED_TO_START, UNKNOWN_CRON = "suspended", "failed_to_start", "unknown_cron"
IN_PROGRESS = "in_progress"
OUTSIDE_WINDOW = "outside_window"
QUEUED = "queued"
RETRY_WAIT = "retry_wait"
LOCK_ATTEMPTS = 5
REGISTRY_ATTEMPTS = 4
DEFAULT_TIMEOUT_S = 24 * 3600
# What a run that fails to start leaves in its outbox: its ping and its alert (dispatch logs
# and counts it itself).
UNSTARTED_EFFECTS = initial_effects(ex.FAILED_TO_START, finished=False)


class RetryLater(TransientError):
    """Another attempt is working on this run right now; SNS should deliver again later."""


@dataclass(frozen=True)
class DispatchOutcome:
    """What one dispatch did. ``execution_id`` is None only for unknown/suspended crons."""

    status: str
    execution_id: str | None = None
    task_arn: str | None = None
    reason: str | None = None
    resumed: bool | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class InvalidDispatchMessage(ValueError):
    """An SNS message that does not name a cron and a scheduled time."""


def parse_dispatch_message(text: str) -> tuple[str, str]:
    """``{"cron": NAME, "scheduled_at": ISO-8601}`` -> (cron, scheduled_at)."""
    if not isinstance(text, str):
        raise InvalidDispatchMessage("Message is not a string")
    try:
        body = loads_bounded(text, max_depth=8, max_bytes=64 * 1024)
    except ValueError as exc:
        raise InvalidDispatchMessage(f"Message is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidDispatchMessage("Message is not a JSON object")
    cron, scheduled_at = body.get("cron"), body.get("scheduled_at")
    if not isinstance(cron, str) or not re.fullmatch(NAME_PATTERN, cron):
        raise InvalidDispatchMessage(f"Message.cron is not a cron name: {cron!r}")
    try:
        ex.parse_time(scheduled_at)
    except (TypeError, ValueError) as exc:
        raise InvalidDispatchMessage(
            f"Message.scheduled_at is not an ISO-8601 time: {scheduled_at!r}") from exc
    return cron, scheduled_at


class Dispatcher:
    """Starts cron runs; safe to call concurrently from many threads and replicas."""

    def __init__(self, clients: AwsClients, settings: Settings,
                 metrics: Metrics | None = None, pinger=None,
                 outbox: Outbox | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self._clients = clients
        # The clock that says whether a retried run's next attempt is due (tests move it).
        self._now = now or (lambda: datetime.now(UTC))
        self._settings = settings
        self.metrics = metrics or Metrics(process=False)
        # The monitor's start ping once RunTask answered (queued: never holds the dispatch).
        self.pinger = pinger or NoPings()
        self.outbox = outbox or Outbox(clients, settings, metrics=self.metrics)
        self.registry = RegistryReader(clients, settings)
        self.registry_cache = RegistryCache(self.registry)
        self.executions = ExecutionStore(clients, settings)
        self.locks = OverlapLocks(clients, settings)
        self.tasks = EcsTasks(clients, settings)
        self.alert_states = AlertStates(clients, settings)
        self._network: NetworkSettings | None = None
        self._network_lock = threading.Lock()
        # A lock released by the consumer or the watchdog (through the shared outbox) may be
        # handed to a queued run: this process starts it at once.
        if self.outbox.start_queued is None:
            self.outbox.start_queued = self.start_queued

    def network(self) -> NetworkSettings:
        """The configured network, else the default VPC's (looked up once)."""
        if self._settings.network.subnets:
            return self._settings.network
        with self._network_lock:
            if self._network is None:
                self._network = default_network(self._clients)
            return self._network

    def warm(self) -> None:
        """Look up what the first dispatch would otherwise look up (the default VPC's
        network, every cron's registry item: one Scan), so that it costs what any other
        does. Best effort: on failure the first dispatch looks it up again."""
        try:
            self.network()
        except (TransientError, PermanentError) as exc:
            log.warning("dispatch.network_lookup_failed", error=str(exc),
                        message="the first dispatch looks the default VPC up again")
        try:
            self.registry_cache.prime(self.registry.all_wire())
        except (TransientError, PermanentError) as exc:
            log.warning("dispatch.registry_scan_failed", error=str(exc),
                        message="each cron's first dispatch reads its registry item")
        try:
            if not self.tasks.warm():
                log.warning("dispatch.cluster_not_active", cluster=self._settings.cluster_name,
                            message="ECS does not know the cluster as ACTIVE: starts will fail "
                                    "until it is")
        except (TransientError, PermanentError) as exc:
            log.warning("dispatch.cluster_check_failed", error=str(exc))

    def handle_sns_message(self, message: dict) -> tuple[int, str]:
        """HTTP status and body for a verified SNS notification; its outcome is counted.

        Garbage gets 200 (SNS must not retry it); transient failures, and a run that another
        attempt is starting right now, get 503 (SNS delivers again later)."""
        try:
            cron, scheduled_at = parse_dispatch_message(message.get("Message"))
        except InvalidDispatchMessage as exc:
            log.warning("dispatch.invalid_message", message_id=message.get("MessageId"),
                        error=str(exc))
            self.metrics.dispatched("invalid")
            return 200, json.dumps({"status": "invalid", "error": str(exc)})
        try:
            outcome = self.dispatch(cron, scheduled_at)
        except RetryLater as exc:
            log.info("dispatch.in_progress", cron=cron, scheduled_at=scheduled_at,
                     detail=str(exc))
            self.metrics.dispatched(IN_PROGRESS)
            return 503, json.dumps({"status": IN_PROGRESS, "error": str(exc)})
        except (TransientError, PermanentError) as exc:
            log.error("dispatch.unavailable", cron=cron, scheduled_at=scheduled_at, error=str(exc))
            self.metrics.dispatched("retry")
            return 503, json.dumps({"status": "retry", "error": str(exc)})
        except Exception:
            self.metrics.dispatched("error")  # answered 500 by the endpoint
            raise
        self.metrics.dispatched(outcome.status)
        return 200, json.dumps(outcome.to_dict())

    def dispatch(self, cron: str, scheduled_at: str, trigger: str = "schedule",
                 force: bool = False) -> DispatchOutcome:
        """Start (or skip) one run of ``cron``; see the module docstring for the order."""
        attempt = str(uuid.uuid4())
        cached, from_cache = self.registry_cache.get(cron)
        for _ in range(REGISTRY_ATTEMPTS):
            if cached is None:
                log.warning("dispatch.unknown_cron", cron=cron, scheduled_at=scheduled_at)
                return DispatchOutcome(UNKNOWN_CRON, reason=f"no cron named {cron!r}")
            item = cached.item
            spec = item.spec
            suspended = spec.suspend and not (trigger == "manual" and force)
            why = None if suspended or trigger == "manual" else \
                self._outside(spec, scheduled_at)
            if (suspended or why) and from_cache:
                # A run not started on the strength of a cached item: the item as stored
                # decides (the write's check only covers runs that are started).
                cached, from_cache = self.registry_cache.read(cron), False
                continue
            if suspended:
                log.info("dispatch.suspended", cron=cron, scheduled_at=scheduled_at)
                return DispatchOutcome(SUSPENDED, reason="cron is suspended")
            if why:
                log.info("dispatch.outside_window", cron=cron, scheduled_at=scheduled_at,
                         reason=why)
                return DispatchOutcome(OUTSIDE_WINDOW, reason=why)
            record = self._new_record(item, cron, scheduled_at, trigger, attempt)
            # The lock rides in the record's write when nothing has to be looked at before
            # it (no pause after failures to read, no excluded date, not forced).
            with_lock = (not force and spec.concurrency != "allow"
                         and spec.suspend_after_failures is None
                         and self._excluded(spec, record) is None)
            others = [registry_check(self._settings.registry_table, cached)]
            if with_lock:
                others.append(self.locks.acquire_item(cron, record.execution_id,
                                                      self._hold_s(spec)))
            created, stored, reasons = self._create(record, others)
            if not created and stored is not None and stored.attempt_id == attempt:
                created = True      # our own write, whose first answer was lost
            if created:
                if with_lock:
                    return self._locked(item, record, attempt)
                return self._proceed(item, record, attempt, force=force, resumed=False)
            if stored is not None:
                if reasons and reasons[0][0] == "ConditionalCheckFailed":
                    self.registry_cache.refresh(cron, reasons[0][1])
                # Resumed with the registry item as stored now (read if it goes on).
                return self.resume(stored, attempt=attempt)
            if not reasons:     # deleted meanwhile (its history expired): nothing to do
                return DispatchOutcome(DUPLICATE, record.execution_id)
            if reasons[0][0] == "ConditionalCheckFailed":
                # The registry item changed since it was cached (or the cron is gone):
                # decide again with the item as it is now.
                cached = self.registry_cache.refresh(cron, reasons[0][1])
                from_cache = False
                continue
            if with_lock and reasons[1][0] == "ConditionalCheckFailed":
                # The lock is held: the record alone (still under the registry's check),
                # then the concurrency policy, starting from the holder the answer named.
                holder = (reasons[1][1] or {}).get("execution_id", {}).get("S")
                created, stored, reasons = self._create(record, others[:1])
                if not created and stored is not None and stored.attempt_id == attempt:
                    created = True
                if created:
                    return self._proceed(item, record, attempt, force=False, resumed=False,
                                         holder=holder)
                if stored is not None:
                    return self.resume(stored, attempt=attempt)
                if reasons and reasons[0][0] == "ConditionalCheckFailed":
                    cached = self.registry_cache.refresh(cron, reasons[0][1])
                    from_cache = False
                continue
            raise TransientError(f"dispatch of {cron}: the record's write was refused "
                                 f"({[code for code, _ in reasons]})")
        raise TransientError(f"the registry item of {cron} keeps changing; retried later")

    def _create(self, record: ex.Execution, others: list[dict]):
        """``create_with``; when every try failed (``TransientError``), the last may still
        have been stored with its answer lost: one read tells (the record with this
        attempt's id is ours, written with ``others``, all or nothing), so the attempt goes
        on instead of leaving a claimed record for a redelivery or the watchdog to wait
        for. Nothing found (or the read fails too): the error is raised."""
        try:
            return self.executions.create_with(record, others)
        except TransientError:
            try:
                stored = self.executions.get(record.execution_id)
            except (TransientError, PermanentError):
                stored = None
            if stored is None or stored.attempt_id != record.attempt_id:
                raise
            return False, stored, []

    def _new_record(self, item, cron: str, scheduled_at: str, trigger: str,
                    attempt: str) -> ex.Execution:
        """The PENDING record of a new run: this attempt's id and claim, the start deadline,
        the retry terms, and whether it is quiet (nothing to ping or alert when it ends)."""
        spec = item.spec
        now = datetime.now(UTC)
        eid = ex.execution_id(cron, scheduled_at) if trigger == "schedule" \
            else ex.manual_execution_id()
        scheduled = ex.parse_time(scheduled_at)
        anchor = ex.parse_time(item.schedule_since) if item.schedule_since else None
        return ex.Execution(
            execution_id=eid, cron=cron, trigger=trigger,
            scheduled_at=ex.format_time(scheduled),
            created_at=ex.format_time(now),
            expires_at=int((now + timedelta(days=self._settings.history_days)).timestamp()),
            attempt_id=attempt, claimed_by=attempt,
            claim_until=now.timestamp() + self._settings.claim_s,
            start_deadline=ex.format_time(
                max(scheduled, now) + timedelta(seconds=self._settings.start_deadline_s)),
            retry=retries.terms_for(spec, scheduled if trigger == "schedule" else now, anchor),
            quiet=True if not item.monitor_id and not counted(spec) else None)

    def _locked(self, item, record: ex.Execution, attempt: str) -> DispatchOutcome:
        """Step 5 for a new record whose write took the overlap lock too."""
        try:
            return self._start(record.cron, record.execution_id, item, attempt, locked=True,
                               resumed=False, scheduled_at=record.scheduled_at
                               if record.trigger == "schedule" else None, run=record)
        except (TransientError, PermanentError):
            self._unclaim(record.execution_id, attempt)
            raise

    @staticmethod
    def _outside(spec: CronSpec, scheduled_at: str) -> str | None:
        """Why a run scheduled at ``scheduled_at`` starts nothing (its active window)."""
        if spec.active is None:
            return None
        try:
            scheduled = ex.parse_time(scheduled_at)
        except ValueError:
            return None  # left to the record's own parsing below
        return active_window.outside_reason(spec, scheduled)

    def resume(self, stored: ex.Execution, item=None, attempt: str | None = None,
               source: str = "delivery") -> DispatchOutcome:
        """Go on with a run whose record exists: a duplicate unless it is PENDING with no task
        and nobody else works on it, in which case it is claimed and started (or found)."""
        eid = stored.execution_id
        if not stored.unstarted:
            log.info("dispatch.duplicate", cron=stored.cron, execution_id=eid,
                     status=stored.status)
            return DispatchOutcome(DUPLICATE, eid, stored.task_arn)
        if not stored.retry_due(self._now()):
            return DispatchOutcome(DUPLICATE, eid, reason=f"attempt {stored.attempt_number} "
                                   f"starts at {stored.retry_at}")
        now = time.time()
        attempt = attempt or str(uuid.uuid4())
        if stored.claimed(now, attempt):
            raise RetryLater(f"execution {eid} is being started by another attempt "
                             f"(claimed for {stored.claim_until - now:.0f} s more)")
        if not self.executions.claim(eid, attempt, self._settings.claim_s, now):
            current = self.executions.get(eid)
            if current is not None and current.unstarted:
                raise RetryLater(f"execution {eid} is being started by another attempt")
            return DispatchOutcome(DUPLICATE, eid, current.task_arn if current else None)
        try:
            task_arn = self.tasks.find_started_by(stored.token)
        except (TransientError, PermanentError):
            self._unclaim(eid, attempt)
            raise
        if task_arn is not None:
            # Started by an attempt that died before recording it: the run has started,
            # whatever its start deadline, the lock or the registry say by now.
            return self._recorded(stored.cron, eid, task_arn, resumed=True, found=True,
                                  item=item)
        if item is None:
            item = self.registry.get(stored.cron)
        if item is None:
            return self._give_up(stored, attempt, f"cron {stored.cron!r} no longer exists")
        if stored.past_start_deadline(datetime.now(UTC)):
            return self._give_up(stored, attempt,
                                 f"not started by its start deadline {stored.start_deadline}")
        log.info("dispatch.resuming", cron=stored.cron, execution_id=eid, source=source)
        return self._proceed(item, stored, attempt, force=False, resumed=True)

    def _give_up(self, record: ex.Execution, attempt: str, reason: str) -> DispatchOutcome:
        """FAILED_TO_START with ``reason``, and the lock released if the run held it."""
        if not self.executions.finish_unstarted(record.execution_id, ex.FAILED_TO_START,
                                                reason, lock_released=False,
                                                effects=UNSTARTED_EFFECTS):
            current = self.executions.get(record.execution_id)
            return DispatchOutcome(DUPLICATE, record.execution_id,
                                   current.task_arn if current else None)
        self.metrics.execution_finished(ex.FAILED_TO_START)
        _, handed = self.locks.release_to_waiting(record.cron, record.execution_id)
        self.executions.mark_lock_released(record.execution_id, outbox_pending=True)
        if handed:
            self.start_queued(handed)
        log.warning("dispatch.failed_to_start", cron=record.cron,
                    execution_id=record.execution_id, reason=reason)
        self._drain(record)
        return DispatchOutcome(FAILED_TO_START, record.execution_id, reason=reason)

    def _proceed(self, item, record: ex.Execution, attempt: str, *, force: bool,
                 resumed: bool, holder: str | None = None) -> DispatchOutcome:
        """Steps 4 and 5 for a record this attempt has claimed (``holder``: the lock's holder
        as a refused write just named it)."""
        cron, eid = record.cron, record.execution_id
        spec = item.spec
        policy = spec.concurrency
        try:
            reason = self._held(item, record, force)    # calendars, pause after failures
            blocked = None if reason else self._take_lock(cron, eid, policy, force,
                                                          self._hold_s(spec), resumed=resumed,
                                                          holder=holder)
            if blocked is not None and policy == "queue" and not force:
                return self._queue(item, record, attempt, blocked)
            if reason or blocked is not None:
                reason = reason or f"previous execution {blocked} is still running"
                if self.executions.finish_unstarted(eid, ex.SKIPPED, reason,
                                                    lock_released=True):
                    self.metrics.execution_finished(ex.SKIPPED)
                    log.info("dispatch.skipped", cron=cron, execution_id=eid,
                             blocked_by=blocked)
                    return DispatchOutcome(SKIPPED, eid, reason=reason)
                return DispatchOutcome(DUPLICATE, eid)
            return self._start(cron, eid, item, attempt, locked=policy != "allow",
                               resumed=resumed, scheduled_at=record.scheduled_at
                               if record.trigger == "schedule" else None, run=record)
        except (TransientError, PermanentError):
            self._unclaim(eid, attempt)
            raise

    def _held(self, item, record: ex.Execution, force: bool) -> str | None:
        """Why a due run starts nothing before any lock is taken: its scheduled time is on a
        date one of its calendars excludes (scheduled runs only), or suspend-after-failures
        paused the cron for its current spec (unless forced). Only a cron with
        ``suspend-after-failures`` costs a read (its alert state)."""
        spec = item.spec
        if (why := self._excluded(spec, record)) is not None:
            return why
        if spec.suspend_after_failures is not None and not force:
            state = self.alert_states.get(record.cron)
            if state.paused_for(spec.spec_hash()):
                return pause_reason(state, spec)
        return None

    @staticmethod
    def _excluded(spec: CronSpec, record: ex.Execution) -> str | None:
        """Why a scheduled run is held back by its calendars (no I/O), or None."""
        if spec.exclude and record.trigger == "schedule":
            hit = excluded_by(spec.exclude, ex.parse_time(record.scheduled_at))
            if hit is not None:
                return exclusion_reason(*hit)
        return None

    def _queue(self, item, record: ex.Execution, attempt: str,
               holder: str) -> DispatchOutcome:
        """``concurrency: queue``: wait for ``holder`` (at most one run waits), else SKIPPED
        naming the run already waiting. The mark on the lock comes first: a crash before the
        record notes it leaves a PENDING run that the watchdog resumes into the same state."""
        cron, eid = record.cron, record.execution_id
        hold_s = self._hold_s(item.spec)
        stale: str | None = None
        for _ in range(LOCK_ATTEMPTS):
            marked, lock = self.locks.wait(cron, holder, eid, expected_waiting=stale)
            if marked:
                deadline = ex.format_time(datetime.now(UTC) + timedelta(
                    seconds=hold_s + self._settings.start_deadline_s))
                if not self.executions.mark_queued(eid, attempt, holder, deadline):
                    return DispatchOutcome(DUPLICATE, eid)
                log.info("dispatch.queued", cron=cron, execution_id=eid, behind=holder)
                return DispatchOutcome(QUEUED, eid, reason=f"waiting for execution {holder}")
            if lock is None or lock.holder != holder:
                # Released or taken over meanwhile: apply the policy again.
                blocked = self._take_lock(cron, eid, "queue", False, hold_s, resumed=True)
                if blocked is None:
                    return self._start(cron, eid, item, attempt, locked=True, resumed=True,
                                       scheduled_at=record.scheduled_at
                                       if record.trigger == "schedule" else None, run=record)
                holder, stale = blocked, None
                continue
            waiting = self.executions.get(lock.waiting) if lock.waiting else None
            if waiting is not None and waiting.unstarted:
                reason = f"execution {waiting.execution_id} is already waiting for {holder}"
                if self.executions.finish_unstarted(eid, ex.SKIPPED, reason,
                                                    lock_released=True):
                    self.metrics.execution_finished(ex.SKIPPED)
                    log.info("dispatch.skipped", cron=cron, execution_id=eid,
                             blocked_by=holder, waiting=waiting.execution_id)
                    return DispatchOutcome(SKIPPED, eid, reason=reason)
                return DispatchOutcome(DUPLICATE, eid)
            stale = lock.waiting   # the run marked waiting has started or ended: take over
        raise TransientError(f"the overlap lock of {cron} keeps changing; retried later")

    def start_queued(self, eid: str) -> DispatchOutcome | None:
        """Start the queued run ``eid`` that a released lock was handed to (best effort: on
        any failure the watchdog starts it, through the same resumable path)."""
        try:
            stored = self.executions.get(eid)
            if stored is None or not stored.unstarted:
                return None
            outcome = self.resume(stored, source="queue")
        except (TransientError, PermanentError) as exc:
            log.warning("dispatch.queued_start_failed", execution_id=eid, error=str(exc))
            return None
        log.info("dispatch.dequeued", cron=stored.cron, execution_id=eid,
                 outcome=outcome.status)
        return outcome

    def _unclaim(self, eid: str, attempt: str) -> None:
        """Nothing recorded as started: let the next delivery resume at once."""
        try:
            self.executions.unclaim(eid, attempt)
        except (TransientError, PermanentError) as exc:   # the claim expires by itself
            log.warning("dispatch.unclaim_failed", execution_id=eid, error=str(exc))

    def _hold_s(self, spec: CronSpec) -> float:
        """How long an overlap lock lasts: the cron's timeout plus the grace period."""
        return float(spec.timeout_s) + self._settings.grace_s

    def _take_lock(self, cron: str, eid: str, policy: str, force: bool, hold_s: float,
                   resumed: bool = False, holder: str | None = None) -> str | None:
        """Apply the concurrency policy; returns the blocking execution id, or None to go on.
        ``holder``: the holder a refused write just named (the first attempt starts from it).

        A resumed (older) run never replaces a newer holder: it is skipped instead."""
        if policy == "allow":
            return None
        if force:
            self.locks.force(cron, eid, hold_s)
            return None
        expected = None
        known = holder
        for _ in range(LOCK_ATTEMPTS):
            if known is not None:
                acquired, holder, known = False, known, None
            else:
                acquired, holder = self.locks.try_acquire(cron, eid, expected, hold_s)
            if acquired:
                return None
            if holder is None:          # released meanwhile: try again from "free"
                expected = None
                continue
            current = self.executions.get(holder)
            if current is not None and not current.terminal:
                if policy != "replace" or resumed:
                    return holder
                self._replace(cron, current, eid)
            expected = holder           # terminal, gone or replaced: take it over
        return self.locks.holder(cron) or "unknown"

    def _replace(self, cron: str, holder: ex.Execution, eid: str) -> None:
        """Stop the holder's task; a holder that has not started yet is ended instead, so it
        can never start later (a resumed dispatch of it finds it finished)."""
        reason = f"replaced by {eid}"
        if holder.unstarted and self.executions.finish_unstarted(
                holder.execution_id, ex.FAILED_TO_START, f"{reason} before it started",
                effects=UNSTARTED_EFFECTS):
            self.metrics.execution_finished(ex.FAILED_TO_START)
            log.info("dispatch.replaced", cron=cron, ended=holder.execution_id, by=eid)
            self._drain(holder)
            return
        current = self.executions.get(holder.execution_id) if holder.unstarted else holder
        arn = current.task_arn if current else None
        if arn is None and current is not None:
            arn = self.tasks.find_started_by(current.token)
        if arn:
            self.tasks.stop_task(arn, reason)
            log.info("dispatch.replaced", cron=cron, stopped=holder.execution_id, by=eid)

    def _start(self, cron: str, eid: str, item, attempt: str, locked: bool,
               resumed: bool, scheduled_at: str | None = None,
               run: ex.Execution | None = None) -> DispatchOutcome:
        """RunTask for the run's current attempt (``run``: its record; token and tags name
        the attempt, so each attempt of a retried run is its own task, started once)."""
        number = run.attempt_number if run is not None else 1
        token = ex.attempt_token(eid, number)
        if not item.task_definition_arn:
            return self._refused(cron, eid, locked,
                                 "the cron has no task definition yet (not reconciled)")
        # (A resumed run's task, if one was started already, was looked for by ``resume``.)
        try:
            result = self.tasks.run_task(
                task_definition=item.task_definition_arn, overrides=item.overrides,
                token=token, tags={"cronctl:cron": cron, "cronctl:execution": eid,
                                   "managed-by": "cronctl",
                                   "cronctl:namespace": self._settings.namespace,
                                   **({"cronctl:attempt": str(number)} if number > 1
                                      else {})},
                network=self.network())
        except PermanentError as exc:
            return self._refused(cron, eid, locked, f"RunTask failed: {exc}")
        if result.task_arn is None:
            if result.transient:
                raise TransientError(f"RunTask: {result.failure}")
            return self._refused(cron, eid, locked, result.failure)
        if scheduled_at and number == 1:
            self.metrics.started_late(
                (datetime.now(UTC) - ex.parse_time(scheduled_at)).total_seconds())
        return self._recorded(cron, eid, result.task_arn, resumed=resumed, found=False,
                              item=item)

    def _recorded(self, cron: str, eid: str, task_arn: str, *, resumed: bool,
                  found: bool, item=None) -> DispatchOutcome:
        """Record the run's task ARN (the claim ends with it)."""
        try:
            recorded = self.executions.set_task(eid, task_arn)
        except (TransientError, PermanentError) as exc:
            # The task runs; its events (or a resumed dispatch, through ListTasks) record it.
            log.warning("dispatch.task_arn_not_recorded", execution_id=eid, error=str(exc))
        else:
            if not recorded:
                return self._superseded(cron, eid, task_arn)
        log.info("dispatch.started", cron=cron, execution_id=eid, task_arn=task_arn,
                 resumed=resumed, found_running=found)
        self._ping_start(cron, eid, task_arn, item)
        return DispatchOutcome(STARTED, eid, task_arn, resumed=resumed or None)

    def _ping_start(self, cron: str, eid: str, task_arn: str, item) -> None:
        """The monitor's start ping (queued; a cron without a monitor pings nothing)."""
        if isinstance(self.pinger, NoPings):
            return
        try:
            item = item or self.registry.get(cron)
            if item is not None:
                self.pinger.start(item, ex.Execution(execution_id=eid, cron=cron,
                                                     scheduled_at="", task_arn=task_arn))
        except Exception as exc:  # the run has started: a ping never changes that
            log.warning("dispatch.start_ping_failed", cron=cron, execution_id=eid,
                        error=str(exc))

    def _superseded(self, cron: str, eid: str, task_arn: str) -> DispatchOutcome:
        """The record moved on while RunTask was under way (given up at its start deadline,
        or replaced, after this attempt's claim had expired): the task must not run."""
        current = self.executions.get(eid)
        if current is not None and current.task_arn == task_arn:
            return DispatchOutcome(STARTED, eid, task_arn)
        self.tasks.stop_task(task_arn, f"execution {eid} was ended before its task started")
        log.warning("dispatch.superseded", cron=cron, execution_id=eid, task_arn=task_arn,
                    status=current.status if current else None)
        return DispatchOutcome(DUPLICATE, eid, current.task_arn if current else None,
                               reason="the run was ended before its task started")

    def _refused(self, cron: str, eid: str, locked: bool, reason: str) -> DispatchOutcome:
        """AWS refused for good: FAILED_TO_START with the reason, lock released; or, with
        ``retries`` left, the run waits for its next attempt (lock kept)."""
        current = self.executions.get(eid)
        if current is not None and current.retry is not None and current.unstarted:
            ended = replace(current, status=ex.FAILED_TO_START, reason=reason,
                            stopped_at=ex.format_time(datetime.now(UTC)))
            stored = store_retry(self.executions, self.metrics, current, ended,
                                 self._settings.start_deadline_s, "dispatch")
            if stored:
                return DispatchOutcome(RETRY_WAIT, eid, reason=f"{reason}; retried later")
        ended = self.executions.finish_unstarted(eid, ex.FAILED_TO_START, reason,
                                                 lock_released=not locked,
                                                 effects=UNSTARTED_EFFECTS)
        if ended:
            self.metrics.execution_finished(ex.FAILED_TO_START)
        if locked:
            _, handed = self.locks.release_to_waiting(cron, eid)
            self.executions.mark_lock_released(eid, outbox_pending=ended)
            if handed:
                self.start_queued(handed)
        log.warning("dispatch.failed_to_start", cron=cron, execution_id=eid, reason=reason)
        if ended:
            self._drain(ex.Execution(execution_id=eid, cron=cron, scheduled_at=""))
        return DispatchOutcome(FAILED_TO_START, eid, reason=reason)

    def _drain(self, record: ex.Execution) -> None:
        """The fast path of a run ended before it started: its outbox (ping, alert), carried
        out on the record as stored (the claim reads it)."""
        self.outbox.drain(replace(record, outbox=UNSTARTED_EFFECTS), "dispatch")
