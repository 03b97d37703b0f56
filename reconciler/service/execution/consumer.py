"""The event consumer: ECS task state changes from SQS become execution records.

Each message body is an EventBridge envelope, and each message is handled on its own: one
bad message never holds back (or sends to the dead-letter queue) the others of its batch.
Per message:
- not JSON (including JSON too deep or too large to parse within bounds), or a task state
  change that cannot be used -> logged and NOT deleted (after ``maxReceiveCount`` receives the
  queue's redrive policy moves it, alone, to the dead-letter queue);
- another detail-type, a task not started by us (no ``startedBy``, or no such execution)
  -> deleted quietly;
- otherwise the event is stored by one conditional UpdateItem computed from the event alone
  (``records.event_write``, the common case: no read first); refused, an event that does not
  decide the outcome changes nothing (stale, duplicate, finished run), and a final event's
  refused write returns the record (``ALL_OLD``) for ``apply_event`` + a compare-and-swap on
  ``version`` (retries, a decided outcome refined, a redelivery repairing a crash). The
  message is deleted only after its effect is stored.
The write that makes a run terminal also stores its outbox (``finished``, ``ping``,
``alert``: see ``reconciler.service.execution.outbox``) and, on the fast path, claims it for
``FRESH_CLAIM_S``. Then the overlap lock is released (only if this execution holds it), the
record notes ``lock_released`` (so a redelivered final event does not release again; on the
fast path in the write that empties the outbox), and the outbox is drained at once (the canonical
``execution.finished`` line, the run counted, ``on_terminal(execution)``, the monitor's ping,
alerts). A crash after the final state is stored loses none of it: a redelivered final event,
or the watchdog's next sweep, releases the lock and drains the outbox. Several replicas may
consume the same queue: every effect is a conditional write, the outbox's under a claim.

``retries``: ``startedBy`` names the execution and the attempt (``records.parse_token``); an
event of an earlier attempt changes nothing. A final state that ``core.executions.retries``
retries is stored instead as the run waiting for its next attempt (``store_retry``: one
compare-and-swap, no outbox, the lock kept). A lock released to a queued run
(``concurrency: queue``) starts that run at once when this process has a dispatcher.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.sqs import EventQueue, QueueMessage
from reconciler.core.alerts.model import initial_effects
from reconciler.core.executions import retries
from reconciler.core.executions.records import (
    Execution,
    MalformedEvent,
    apply_event,
    event_write,
    outcome_decided,
    parse_task_event,
    parse_time,
    parse_token,
)
from reconciler.core.json_bounds import loads_bounded
from reconciler.errors import CronctlError
from reconciler.logs import get_logger
from reconciler.service.execution.outbox import Outbox
from reconciler.service.metrics import Metrics
from reconciler.service.worker import Worker
from reconciler.settings import Settings

log = get_logger("cronctl.consumer")

DELETE, KEEP = "delete", "keep"
APPLY_ATTEMPTS = 5
# How long the write that stores a final state claims the run's outbox for the consumer
# that stored it: enough for its fast path (a lock release and one write); a drain with
# more to do takes the outbox's usual claim first. A consumer that dies leaves the outbox to
# a redelivered final event or the watchdog this much later.
FRESH_CLAIM_S = 5.0


class EventConsumer(Worker):
    """Consumes ``<ns>-ecs-events``; ``start``/``stop`` run it on thread ``cronctl-consumer``."""

    thread_name = "cronctl-consumer"

    def __init__(self, clients: AwsClients, settings: Settings,
                 on_terminal: Callable[[Execution], None] | None = None,
                 wait_time_s: int = 20, batch_size: int = 10,
                 error_backoff_s: float = 1.0, metrics: Metrics | None = None,
                 outbox: Outbox | None = None) -> None:
        self.metrics = metrics or Metrics(process=False)
        self.queue = EventQueue(clients, settings)
        self.executions = ExecutionStore(clients, settings)
        self.locks = OverlapLocks(clients, settings)
        self.outbox = outbox or Outbox(clients, settings, metrics=self.metrics,
                                       on_terminal=on_terminal)
        self._wait_time_s = wait_time_s
        self._batch_size = batch_size
        self._error_backoff_s = error_backoff_s
        self._settings = settings
        self._settled = Settled()
        super().__init__()

    # -- thread ---------------------------------------------------------------------------
    def stop(self, timeout: float = 30.0) -> bool:
        """Ask the thread to stop and wait; True when it has stopped within ``timeout``.

        A receive in progress finishes first, so allow ``wait_time_s`` plus a little.
        """
        return super().stop(timeout)

    def _loop(self) -> None:
        log.info("consumer.started")
        while not self._stop.is_set():
            try:
                self.process_batch()
            except Exception as exc:  # keep consuming; the error is logged, messages return
                with contextlib.suppress(Exception):  # not even a broken log stream stops us
                    log.error("consumer.batch_failed", error=str(exc),
                              error_type=type(exc).__name__)
                self._stop.wait(self._error_backoff_s)
        log.info("consumer.stopped")

    # -- work -----------------------------------------------------------------------------
    def process_batch(self) -> int:
        """One receive and the handling of what it returned; the number of messages received."""
        messages = self.queue.receive(self._batch_size, self._wait_time_s)
        done = []
        for message in messages:
            self.metrics.message_processed()
            try:
                verdict = self.handle(message)
            except CronctlError as exc:  # transient AWS trouble: the message comes back later
                log.warning("consumer.message_failed", message_id=message.message_id,
                            error=str(exc))
                self.metrics.message_failed("transient")
                continue
            except Exception as exc:  # noqa: BLE001 - this message only; the others go on
                log.error("consumer.message_crashed", message_id=message.message_id,
                          receive_count=message.receive_count,
                          error=f"{type(exc).__name__}: {exc}")
                self.metrics.message_failed("error")
                continue
            if verdict == DELETE:
                done.append(message)
        if done:
            for message_id in self.queue.delete(done):
                log.warning("consumer.delete_failed", message_id=message_id)
                self.metrics.message_failed("not_deleted")
        return len(messages)

    def handle(self, message: QueueMessage) -> str:
        """Store the message's effect; DELETE when it may be deleted, KEEP when not."""
        try:
            event = parse_task_event(loads_bounded(message.body))
        except (ValueError, MalformedEvent) as exc:
            log.error("consumer.malformed_message", message_id=message.message_id,
                      receive_count=message.receive_count, error=str(exc))
            self.metrics.message_failed("malformed")
            return KEEP
        if event is None:
            return DELETE
        if event.event_time:
            self.metrics.event_lagged(
                (datetime.now(UTC) - parse_time(event.event_time)).total_seconds())
        if not event.started_by:
            return DELETE
        eid, attempt = parse_token(event.started_by)
        if self._settled.known(event.started_by, event.version, outcome_decided(event)):
            return DELETE       # a redelivery of what this consumer stored and settled
        # The common case in one conditional write, with no read first (``event_write``);
        # when its condition fails, the record it returns is what the slow path starts from.
        write = event_write(event, attempt)
        owner = str(uuid.uuid4())
        effects = initial_effects(write.status) if write.terminal else frozenset()
        stored, record = self.executions.store_event(eid, write, effects, owner,
                                                     FRESH_CLAIM_S)
        if stored:
            settled = write.terminal and record is not None and \
                self._finished_claimed(record, owner)
            self._settled.note(event.started_by, event.version, settled=bool(settled))
            return DELETE
        if not write.terminal:
            # Refused: ``apply_event`` would change nothing either (stale, a duplicate, a
            # finished run, another attempt's or another task's event, or not our run).
            return DELETE
        for _ in range(APPLY_ATTEMPTS):
            if record is None:
                log.debug("consumer.foreign_task", task_arn=event.task_arn,
                          started_by=event.started_by)
                return DELETE
            if record.attempt_number != attempt:
                return DELETE       # an event of an earlier attempt of a retried run
            updated = apply_event(record, event)
            if updated is None:
                # Stale or duplicate. A redelivered final event makes sure the lock is gone
                # and the outbox carried out (repairs a crash after storing the final state),
                # unless the record says they are done already.
                if record.terminal and outcome_decided(event):
                    if not record.lock_released:
                        self.release_lock(record)
                    if record.outbox and record.outbox_owner == owner:
                        # Our own final write, whose first answer was lost.
                        self.outbox.drain_claimed(record, owner, "consumer")
                    elif record.outbox:
                        # Claimed by the write that stored the final state: that consumer
                        # finishes in a moment, or died; wait for the short claim (no longer)
                        # and drain what is left. A drain under way keeps its claim: the
                        # watchdog's sweep finishes what it leaves.
                        record = self._after_fresh_claim(record)
                        if record is not None and record.outbox:
                            self.outbox.drain(record, "consumer")
                return DELETE
            becomes_terminal = updated.terminal and not record.terminal
            if becomes_terminal:
                stored = store_retry(self.executions, self.metrics, record, updated,
                                     self._settings.start_deadline_s, "consumer")
                if stored is not None:
                    if stored:
                        return DELETE
                    record = self.executions.get(eid)
                    continue        # someone else wrote first: read it and apply again
            effects = initial_effects(updated.status) if becomes_terminal else frozenset()
            if self.executions.apply(updated, record.version, effects):
                if becomes_terminal:
                    self._finished(replace(updated, outbox=effects or None))
                return DELETE
            # Another consumer stored a newer state meanwhile: read it and apply again.
            record = self.executions.get(eid)
        log.warning("consumer.contended", execution_id=event.started_by)
        self.metrics.message_failed("contended")
        return KEEP

    def _after_fresh_claim(self, record: Execution) -> Execution | None:
        """The record once its outbox is no longer claimed, or once ``FRESH_CLAIM_S`` (the
        claim of a final state's write) has passed, whichever comes first: re-read a few
        times a second meanwhile (only when a final event meets a claimed outbox)."""
        deadline = time.monotonic() + FRESH_CLAIM_S + 0.5
        while record is not None and record.outbox and record.outbox_claimed(time.time()) \
                and time.monotonic() < deadline:
            if self._stop.wait(0.2):
                break
            record = self.executions.get(record.execution_id)
        return record

    def release_lock(self, execution: Execution) -> None:
        """Release the run's overlap lock (if it holds it) and note that it is gone."""
        release_lock(self.executions, self.locks, execution, self.outbox)

    def _finished(self, execution: Execution) -> None:
        finished(self.executions, self.locks, execution, self.outbox, "consumer")

    def _finished_claimed(self, execution: Execution, owner: str) -> bool:
        """What follows a final state stored by ``store_event`` (``execution``: the record
        after it, its outbox claimed by ``owner``): the lock released (if the run holds it),
        then the outbox drained, and the write that empties it notes the lock released and
        takes the run out of the index of open runs: two calls for a run with nothing to
        ping or alert. A crash in between loses nothing: the record shows the lock not noted
        released and the outbox, and a redelivered final event or the watchdog's sweep (once
        the short claim has expired) finishes the work."""
        _, handed = self.locks.release_to_waiting(execution.cron, execution.execution_id)
        noted = self.outbox.drain_claimed(execution, owner, "consumer", lock_released_now=True)
        if not noted:
            self.executions.mark_lock_released(execution.execution_id)
        if handed and self.outbox.start_queued is not None:
            self.outbox.start_queued(handed)
        return noted    # the outbox empty, the lock released and noted: nothing left to do


class Settled:
    """What this consumer stored itself, by task token (``startedBy``: execution and
    attempt): the highest event version, and whether the run is settled (final state stored,
    lock released and noted, outbox empty: the record out of the index of open runs). A
    redelivered event whose version is not above it changes nothing (``apply_event``: the
    stored version only grows within an attempt) and, if it decides the outcome, finds
    nothing to repair once the run is settled (a settled record changes no more): deleted
    without a call. Bounded (the oldest forgotten first); per process, so another replica or
    a restarted consumer simply makes the refused write."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, tuple[int, bool]] = OrderedDict()

    def known(self, token: str, version: int, decided: bool) -> bool:
        entry = self._entries.get(token)
        return entry is not None and version <= entry[0] and (entry[1] or not decided)

    def note(self, token: str, version: int, settled: bool) -> None:
        old = self._entries.pop(token, None)
        if old is not None:
            version, settled = max(version, old[0]), settled or old[1]
        self._entries[token] = (version, settled)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)


def store_retry(executions: ExecutionStore, metrics: Metrics, read: Execution,
                ended: Execution, start_deadline_s: float, source: str) -> bool | None:
    """``retries``: when the attempt that ``ended`` (``read`` before) is retried, store the
    run waiting for its next attempt in its place (no outbox: the final attempt alone logs,
    pings and alerts). None: not retried (store the final state); True: stored; False: the
    record changed meanwhile (read it again)."""
    waiting = retries.after_attempt(ended, datetime.now(UTC), start_deadline_s)
    if waiting is None:
        return None
    if not executions.retry(waiting, read):
        return False
    metrics.retried(ended.status)
    log.warning("execution.retrying", cron=ended.cron, execution_id=ended.execution_id,
                status=ended.status, exit_code=ended.exit_code, reason=ended.reason,
                attempt=ended.attempt_number, next_attempt=waiting.attempt,
                retry_at=waiting.retry_at, source=source)
    return True


def release_lock(executions: ExecutionStore, locks: OverlapLocks, execution: Execution,
                 outbox: Outbox | None = None) -> None:
    """Release the run's overlap lock (if it holds it) and note on the record that it is gone.
    A lock handed to a queued run (``concurrency: queue``) starts that run through
    ``outbox.start_queued`` when this process has a dispatcher; else (or after a crash) the
    watchdog starts it: the queued record and the lock naming it are the intent."""
    _, handed = locks.release_to_waiting(execution.cron, execution.execution_id)
    executions.mark_lock_released(execution.execution_id, outbox_pending=bool(execution.outbox))
    if handed and outbox is not None and outbox.start_queued is not None:
        outbox.start_queued(handed)


def finished(executions: ExecutionStore, locks: OverlapLocks, execution: Execution,
             outbox: Outbox, source: str) -> None:
    """What follows a run's terminal state, once stored by ``source`` (consumer or watchdog)
    with its outbox: the lock released, then the outbox drained (the run counted, its
    canonical line, ``on_terminal``, the ping, alerts). A failure here loses nothing: the
    run stays in the index of open runs and the watchdog's sweep finishes it."""
    release_lock(executions, locks, execution, outbox)
    outbox.drain(execution, source)
