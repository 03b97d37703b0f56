"""The watchdog: what no delivery and no event repairs (design §4), on thread
``cronctl-watchdog`` of ``cronctl serve``.

Every ``watchdog_interval_s`` (default 15 s) it reads the open executions (one query of the
sparse index ``unfinished``) and, for each, does what ``reconciler.core.executions.repairs.decide`` says:
- a PENDING run with no task whose claim has expired (its dispatch crashed, or SNS gave up
  retrying; or a queued run whose holder's lock was released, handed to it, or expired) is
  resumed through ``Dispatcher.resume``: a task already started for it is found
  and recorded, otherwise RunTask with the same client token; past its start deadline it ends
  FAILED_TO_START with the reason and its lock is released;
- a run with a task and no final event for longer than its cron's timeout plus the grace
  period (default 60 s): ECS is asked about that one task (DescribeTasks). If it stopped, its
  final state is recorded from ECS's answer exactly as the STOPPED event would have; if ECS no
  longer knows it, the run is LOST and its lock released. The lock is released before the
  final state is stored, so a crash between the two is repaired by the next sweep;
- a finished run still in the index: its lock is released, its outbox drained (what a crash
  or a failed delivery left: ``reconciler.service.execution.outbox``), or it is taken out;
- a run still going past its cron's ran-longer-than-threshold: noted on the record with an
  ``overlong`` effect in its outbox, by conditional write (once per run, whichever replica
  wins), then drained (a Slack message).

Every ``missed_interval_s`` (default 60 s) it also catches up on scheduled runs that never
came (``core.executions.catchup``): for each cron, the fire times of the look-back window
whose record does not exist (one BatchGetItem for all crons' ids, 100 a call) are started
late while within the cron's catch-up window (oldest first, ``Dispatcher.dispatch`` under the
run's own execution id), and past it recorded MISSED by a conditional create keyed by that
id, with an outbox: of three replicas, one creates it and alerts.

It is safe with several replicas: resuming takes a claim by conditional write, and every
final state is a compare-and-swap on the record's version, so one replica wins each repair
and ``on_terminal`` runs once. Errors are logged and counted; the next sweep tries again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ecs_tasks import EcsTasks
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.alerts import decide as alerts
from reconciler.core.alerts.model import OVERLONG, initial_effects
from reconciler.core.executions import catchup, repairs
from reconciler.core.executions.records import (
    MISSED,
    Execution,
    apply_event,
    execution_id,
    format_time,
)
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import CronctlError
from reconciler.logs import get_logger
from reconciler.service.execution.consumer import finished, release_lock, store_retry
from reconciler.service.execution.dispatch import DEFAULT_TIMEOUT_S, Dispatcher, RetryLater
from reconciler.service.execution.outbox import Outbox
from reconciler.service.metrics import Metrics
from reconciler.service.worker import Worker
from reconciler.settings import Settings

log = get_logger("cronctl.watchdog")


class Watchdog(Worker):
    """Sweeps the open executions; ``start``/``stop`` run it on its own thread."""

    thread_name = "cronctl-watchdog"

    def __init__(self, clients: AwsClients, settings: Settings, dispatcher: Dispatcher,
                 on_terminal: Callable[[Execution], None] | None = None,
                 now: Callable[[], datetime] | None = None,
                 metrics: Metrics | None = None, outbox: Outbox | None = None,
                 missed_interval_s: float = 60.0) -> None:
        self.metrics = metrics or Metrics(process=False)
        self._settings = settings
        self._dispatcher = dispatcher
        self._now = now or (lambda: datetime.now(UTC))
        self.outbox = outbox or Outbox(clients, settings, metrics=self.metrics,
                                       on_terminal=on_terminal, now=self._now)
        self.missed_interval_s = missed_interval_s
        self._missed_checked: float | None = None
        self.executions = ExecutionStore(clients, settings)
        self.locks = OverlapLocks(clients, settings)
        self.tasks = EcsTasks(clients, settings)
        self.registry = RegistryReader(clients, settings)
        self.repairs: Counter[str] = Counter()
        self.sweeps = 0
        super().__init__()

    # -- thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        log.info("watchdog.started", interval_s=self._settings.watchdog_interval_s,
                 grace_s=self._settings.grace_s)
        while not self._stop.wait(self._settings.watchdog_interval_s):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.error("watchdog.sweep_failed", error=f"{type(exc).__name__}: {exc}")

    # -- work -----------------------------------------------------------------------------
    def sweep(self) -> Counter[str]:
        """One look at every open execution (and, when due, at missed runs); the repairs
        made, by kind."""
        done: Counter[str] = Counter()
        items: dict[str, RegistryItem | None] = {}
        pending = 0
        for record in self.executions.unfinished():
            if self._stop.is_set():
                break
            pending += bool(record.outbox)
            for step in (self._repair, self._overlong, self._drain):
                try:
                    kind = step(record, items)
                except RetryLater:
                    kind = None
                except CronctlError as exc:
                    log.warning("watchdog.repair_failed", execution_id=record.execution_id,
                                cron=record.cron, error=str(exc))
                    done["failed"] += 1
                    break
                if kind:
                    done[kind] += 1
        self.metrics.outbox_seen(pending)
        if not self._stop.is_set() and self._missed_due():
            try:
                done["missed"] += self.check_missed()
            except CronctlError as exc:
                log.warning("watchdog.missed_check_failed", error=str(exc))
                done["failed"] += 1
        done = Counter({k: v for k, v in done.items() if v})
        self.sweeps += 1
        self.repairs.update(done)
        self.metrics.repaired(done)
        if done:
            log.info("watchdog.sweep", **dict(done))
        return done

    def _item(self, cron: str, cache: dict[str, RegistryItem | None]) -> RegistryItem | None:
        if cron not in cache:
            cache[cron] = self.registry.get(cron)
        return cache[cron]

    def _timeout_s(self, cron: str, cache: dict[str, RegistryItem | None]) -> float:
        item = self._item(cron, cache)
        return float(item.spec.timeout_s if item else DEFAULT_TIMEOUT_S)

    def _repair(self, record: Execution, items: dict[str, RegistryItem | None]) -> str | None:
        now = self._now()
        timeout_s = self._timeout_s(record.cron, items)
        lock = self.locks.get(record.cron) if record.queued else None
        action = repairs.decide(record, now, timeout_s, self._settings.grace_s, lock)
        if action is repairs.Repair.RELEASE_LOCK:
            release_lock(self.executions, self.locks, record, self.outbox)
            log.info("watchdog.lock_released", cron=record.cron,
                     execution_id=record.execution_id, status=record.status)
            return "lock_released"
        if action is repairs.Repair.CLOSE:
            return "closed" if self.executions.close(record.execution_id) else None
        if action in (repairs.Repair.RESUME, repairs.Repair.GIVE_UP):
            outcome = self._dispatcher.resume(record, source="watchdog")
            log.info("watchdog.resumed", cron=record.cron, execution_id=record.execution_id,
                     outcome=outcome.status, reason=outcome.reason)
            return {"started": "resumed", "failed_to_start": "failed_to_start",
                    "skipped": "skipped", "queued": "queued"}.get(outcome.status)
        if action is repairs.Repair.CHECK_TASK:
            return self._check_task(record, now)
        return None

    def _check_task(self, record: Execution, now: datetime) -> str | None:
        """Ask ECS about an overdue run's task; record its final state, or LOST."""
        arn = record.task_arn or self.tasks.find_started_by(record.token)
        task = self.tasks.describe_one(arn) if arn else None
        if task is None:
            updated = repairs.lost(record, now, "ECS no longer knows the task and no final "
                                   "event arrived" if arn else "no task was found for the run")
        else:
            if task.get("lastStatus") != "STOPPED":
                log.warning("watchdog.overdue", cron=record.cron,
                            execution_id=record.execution_id, task_arn=arn,
                            last_status=task.get("lastStatus"))
                return None
            updated = apply_event(record, repairs.task_event(task, (record.version or 0) + 1))
            if updated is None:
                return None
        becomes_terminal = updated.terminal and not record.terminal
        if becomes_terminal:
            stored = store_retry(self.executions, self.metrics, record, updated,
                                 self._settings.start_deadline_s, "watchdog")
            if stored is not None:
                return "retrying" if stored else None
        effects = initial_effects(updated.status) if becomes_terminal else frozenset()
        if not self.executions.apply(updated, record.version, effects):
            return None            # an event or another replica got there first
        if becomes_terminal:
            finished(self.executions, self.locks,
                     replace(updated, outbox=(record.pending_effects | effects) or None),
                     self.outbox, "watchdog")
        return "lost" if updated.status == "LOST" else "recorded_from_ecs"

    # -- the outbox, overlong and missed runs ------------------------------------------------
    def _drain(self, record: Execution, items: dict[str, RegistryItem | None]) -> str | None:
        """Carry out what a crash or a failed delivery left in a run's outbox."""
        if not record.outbox or not record.outbox_due(self._now().timestamp()):
            return None
        current = self.executions.get(record.execution_id)
        if current is None or not current.outbox:
            return None
        if current.terminal and not current.lock_released:
            return None   # the repair of this sweep (or the next) releases it first
        drained = self.outbox.drain(current, "watchdog", self._item(record.cron, items))
        return "outbox" if drained else None

    def _overlong(self, record: Execution, items: dict[str, RegistryItem | None]) -> str | None:
        """Alert once about a run still going past its ran-longer-than-threshold."""
        if record.terminal:
            return None
        item = self._item(record.cron, items)
        now = self._now()
        if item is None or not alerts.overlong(record, item.spec, now):
            return None
        if not self.executions.mark_overlong(record.execution_id, format_time(now), OVERLONG):
            return None            # another replica did (one alert per run)
        log.warning("watchdog.overlong", cron=record.cron, execution_id=record.execution_id,
                    started_at=record.started_at,
                    threshold_s=item.spec.notifications.ran_longer_than_threshold_s)
        self.outbox.drain(replace(record, outbox=record.pending_effects | {OVERLONG}),
                          "watchdog", item)
        return "overlong"

    def _missed_due(self) -> bool:
        now = time.monotonic()
        if self._missed_checked is not None and \
                now - self._missed_checked < self.missed_interval_s:
            return False
        self._missed_checked = now
        return True

    def check_missed(self) -> int:
        """Catch-up after an outage (``core.executions.catchup``): every fire of the look-back
        window that has no execution is started late while within its cron's catch-up window
        (oldest first, through the dispatcher under the run's own execution id, so a late
        delivery is a duplicate and the concurrency policy applies), or recorded (and alerted
        about) as MISSED past it. The number of runs this replica recorded MISSED."""
        now = self._now()
        fires: dict[str, tuple[RegistryItem, catchup.Fire]] = {}
        for item in self.registry.each():  # a page at a time: 10,000 items are not held
            for fire in catchup.fires(item.spec, item.schedule_since, now):
                fires[execution_id(item.name, format_time(fire.at))] = (item, fire)
        if not fires:
            return 0
        existing = self.executions.existing(list(fires))
        expires = int((now + timedelta(days=self._settings.history_days)).timestamp())
        recorded = 0
        absent = sorted(((eid, item, fire) for eid, (item, fire) in fires.items()
                         if eid not in existing), key=lambda row: (row[2].at, row[1].name))
        for eid, item, fire in absent:
            if self._stop.is_set():
                break
            if fire.action is catchup.Action.START:
                self._catch_up(item, fire)
                continue
            record = replace(alerts.missed_record(item.spec, eid, fire.at, now, expires),
                             outbox=initial_effects(MISSED),
                             reason=catchup.missed_reason(item.spec, fire.window_s))
            created, _ = self.executions.create_or_get(record)
            if not created:
                continue           # it came after all, or another replica recorded it
            recorded += 1
            self.metrics.caught_up("missed")
            log.warning("watchdog.missed", cron=item.name, execution_id=eid,
                        scheduled_at=record.scheduled_at, catch_up_s=fire.window_s)
            self.outbox.drain(record, "watchdog", item)
        return recorded

    def _catch_up(self, item: RegistryItem, fire: catchup.Fire) -> None:
        """Start a fire that has no execution, late, within its catch-up window."""
        scheduled_at = format_time(fire.at)
        try:
            outcome = self._dispatcher.dispatch(item.name, scheduled_at)
        except RetryLater:
            return                 # another replica (or the delivery) is starting it
        except CronctlError as exc:
            log.warning("watchdog.catch_up_failed", cron=item.name, scheduled_at=scheduled_at,
                        error=str(exc))
            return                 # the next check tries again while within the window
        if outcome.status != "duplicate":
            self.metrics.caught_up("started")
        log.warning("watchdog.caught_up", cron=item.name, execution_id=outcome.execution_id,
                    scheduled_at=scheduled_at, outcome=outcome.status,
                    late_s=round((self._now() - fire.at).total_seconds()),
                    catch_up_s=fire.window_s)
