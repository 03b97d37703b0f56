"""The watchdog: what no delivery and no event repairs (design §4), on thread
``cronctl-watchdog`` of ``cronctl serve``.

Every ``watchdog_interval_s`` (default 15 s) it reads the open executions (one query of the
sparse index ``unfinished``) and, for each, does what ``reconciler.core.executions.repairs.decide`` says:
- a PENDING run with no task whose claim has expired (its dispatch crashed, or SNS gave up
  retrying) is resumed through ``Dispatcher.resume``: a task already started for it is found
  and recorded, otherwise RunTask with the same client token; past its start deadline it ends
  FAILED_TO_START with the reason and its lock is released;
- a run with a task and no final event for longer than its cron's timeout plus the grace
  period (default 60 s): ECS is asked about that one task (DescribeTasks). If it stopped, its
  final state is recorded from ECS's answer exactly as the STOPPED event would have; if ECS no
  longer knows it, the run is LOST and its lock released. The lock is released before the
  final state is stored, so a crash between the two is repaired by the next sweep.

It is safe with several replicas: resuming takes a claim by conditional write, and every
final state is a compare-and-swap on the record's version, so one replica wins each repair
and ``on_terminal`` runs once. Errors are logged and counted; the next sweep tries again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ecs_tasks import EcsTasks
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.executions import repairs
from reconciler.core.executions.records import Execution, apply_event
from reconciler.errors import CronctlError
from reconciler.logs import get_logger
from reconciler.service.execution.consumer import finished, release_lock
from reconciler.service.execution.dispatch import DEFAULT_TIMEOUT_S, Dispatcher, RetryLater
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
                 metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics(process=False)
        self._settings = settings
        self._dispatcher = dispatcher
        self._on_terminal = on_terminal
        self._now = now or (lambda: datetime.now(UTC))
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
        """One look at every open execution; the repairs made, by kind."""
        done: Counter[str] = Counter()
        timeouts: dict[str, float] = {}
        for record in self.executions.unfinished():
            if self._stop.is_set():
                break
            try:
                kind = self._repair(record, timeouts)
            except RetryLater:
                kind = None
            except CronctlError as exc:
                log.warning("watchdog.repair_failed", execution_id=record.execution_id,
                            cron=record.cron, error=str(exc))
                done["failed"] += 1
                continue
            if kind:
                done[kind] += 1
        self.sweeps += 1
        self.repairs.update(done)
        self.metrics.repaired(done)
        if done:
            log.info("watchdog.sweep", **dict(done))
        return done

    def _timeout_s(self, cron: str, cache: dict[str, float]) -> float:
        if cron not in cache:
            item = self.registry.get(cron)
            cache[cron] = float(item.spec.timeout_s if item else DEFAULT_TIMEOUT_S)
        return cache[cron]

    def _repair(self, record: Execution, timeouts: dict[str, float]) -> str | None:
        now = self._now()
        timeout_s = self._timeout_s(record.cron, timeouts)
        action = repairs.decide(record, now, timeout_s, self._settings.grace_s)
        if action is repairs.Repair.RELEASE_LOCK:
            release_lock(self.executions, self.locks, record)
            log.info("watchdog.lock_released", cron=record.cron,
                     execution_id=record.execution_id, status=record.status)
            return "lock_released"
        if action in (repairs.Repair.RESUME, repairs.Repair.GIVE_UP):
            outcome = self._dispatcher.resume(record, source="watchdog")
            log.info("watchdog.resumed", cron=record.cron, execution_id=record.execution_id,
                     outcome=outcome.status, reason=outcome.reason)
            return {"started": "resumed", "failed_to_start": "failed_to_start",
                    "skipped": "skipped"}.get(outcome.status)
        if action is repairs.Repair.CHECK_TASK:
            return self._check_task(record, now)
        return None

    def _check_task(self, record: Execution, now: datetime) -> str | None:
        """Ask ECS about an overdue run's task; record its final state, or LOST."""
        arn = record.task_arn or self.tasks.find_started_by(record.execution_id)
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
        if not self.executions.apply(updated, record.version):
            return None            # an event or another replica got there first
        if updated.terminal and not record.terminal:
            finished(self.executions, self.locks, updated, self._on_terminal, "watchdog",
                     self.metrics)
        return "lost" if updated.status == "LOST" else "recorded_from_ecs"
