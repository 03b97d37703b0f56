"""Dispatch: a due cron (from SNS, or ``cronctl trigger``) becomes at most one ECS task.

Order of one dispatch:
1. read the cron's registry item (unknown -> ``unknown_cron``; suspended -> ``suspended``);
2. conditionally create the execution record (``attribute_not_exists``): a second delivery of
   the same scheduled message finds it and is a no-op (``duplicate``). RunTask's
   ``clientToken`` makes the call idempotent on AWS too, but this write is what guarantees
   one task per execution (the emulator ignores ``clientToken``);
3. apply the concurrency policy through the overlap lock ``lock#<cron>``: ``forbid`` records
   SKIPPED while a non-terminal execution holds it, ``replace`` stops the holder's task and
   takes the lock over, ``allow`` takes no lock;
4. RunTask (``startedBy`` = ``clientToken`` = execution id; tags name cron and execution);
   ``failures`` or a refusal -> FAILED_TO_START with the reason, lock released.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.ec2 import default_network
from reconciler.adapters.ecs_tasks import EcsTasks
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core import executions as ex
from reconciler.core.spec import NAME_PATTERN
from reconciler.errors import PermanentError, TransientError
from reconciler.logs import get_logger
from reconciler.settings import NetworkSettings, Settings

log = get_logger("cronctl.dispatch")

STARTED, SKIPPED, DUPLICATE = "started", "skipped", "duplicate"
SUSPENDED, FAILED_TO_START, UNKNOWN_CRON = "suspended", "failed_to_start", "unknown_cron"
LOCK_ATTEMPTS = 5


@dataclass(frozen=True)
class DispatchOutcome:
    """What one dispatch did. ``execution_id`` is None only for unknown/suspended crons."""

    status: str
    execution_id: str | None = None
    task_arn: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class InvalidDispatchMessage(ValueError):
    """An SNS message that does not name a cron and a scheduled time."""


def parse_dispatch_message(text: str) -> tuple[str, str]:
    """``{"cron": NAME, "scheduled_at": ISO-8601}`` -> (cron, scheduled_at)."""
    try:
        body = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InvalidDispatchMessage(f"Message is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidDispatchMessage("Message is not a JSON object")
    cron, scheduled_at = body.get("cron"), body.get("scheduled_at")
    if not isinstance(cron, str) or not re.match(NAME_PATTERN, cron):
        raise InvalidDispatchMessage(f"Message.cron is not a cron name: {cron!r}")
    try:
        ex.parse_time(scheduled_at)
    except (TypeError, ValueError) as exc:
        raise InvalidDispatchMessage(
            f"Message.scheduled_at is not an ISO-8601 time: {scheduled_at!r}") from exc
    return cron, scheduled_at


class Dispatcher:
    """Starts cron runs; safe to call concurrently from many threads and replicas."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients = clients
        self._settings = settings
        self.registry = RegistryReader(clients, settings)
        self.executions = ExecutionStore(clients, settings)
        self.locks = OverlapLocks(clients, settings)
        self.tasks = EcsTasks(clients, settings)
        self._network: NetworkSettings | None = None
        self._network_lock = threading.Lock()

    def network(self) -> NetworkSettings:
        """The configured network, else the default VPC's (looked up once)."""
        if self._settings.network.subnets:
            return self._settings.network
        with self._network_lock:
            if self._network is None:
                self._network = default_network(self._clients)
            return self._network

    def handle_sns_message(self, message: dict) -> tuple[int, str]:
        """HTTP status and body for a verified SNS notification.

        Garbage gets 200 (SNS must not retry it); transient failures get 503 (SNS retries).
        """
        try:
            cron, scheduled_at = parse_dispatch_message(message.get("Message"))
        except InvalidDispatchMessage as exc:
            log.warning("dispatch.invalid_message", message_id=message.get("MessageId"),
                        error=str(exc))
            return 200, json.dumps({"status": "invalid", "error": str(exc)})
        try:
            outcome = self.dispatch(cron, scheduled_at)
        except (TransientError, PermanentError) as exc:
            log.error("dispatch.unavailable", cron=cron, scheduled_at=scheduled_at, error=str(exc))
            return 503, json.dumps({"status": "retry", "error": str(exc)})
        return 200, json.dumps(outcome.to_dict())

    def dispatch(self, cron: str, scheduled_at: str, trigger: str = "schedule",
                 force: bool = False) -> DispatchOutcome:
        """Start (or skip) one run of ``cron``; see the module docstring for the order."""
        item = self.registry.get(cron)
        if item is None:
            log.warning("dispatch.unknown_cron", cron=cron, scheduled_at=scheduled_at)
            return DispatchOutcome(UNKNOWN_CRON, reason=f"no cron named {cron!r}")
        spec = item.spec or {}
        if spec.get("suspend") and not (trigger == "manual" and force):
            log.info("dispatch.suspended", cron=cron, scheduled_at=scheduled_at)
            return DispatchOutcome(SUSPENDED, reason="cron is suspended")
        now = datetime.now(UTC)
        eid = ex.execution_id(cron, scheduled_at) if trigger == "schedule" \
            else ex.manual_execution_id()
        record = ex.Execution(
            execution_id=eid, cron=cron, trigger=trigger,
            scheduled_at=ex.format_time(ex.parse_time(scheduled_at)),
            created_at=ex.format_time(now),
            expires_at=int((now + timedelta(days=self._settings.history_days)).timestamp()))
        if not self.executions.create(record):
            log.info("dispatch.duplicate", cron=cron, execution_id=eid)
            return DispatchOutcome(DUPLICATE, eid)
        policy = spec.get("concurrency", "forbid")
        try:
            blocked = self._take_lock(cron, eid, policy, force)
        except (TransientError, PermanentError):
            # Nothing started: forget the record so that SNS's retry can dispatch again.
            self.executions.discard_unstarted(eid)
            raise
        if blocked is not None:
            reason = f"previous execution {blocked} is still running"
            self.executions.finish_unstarted(eid, ex.SKIPPED, reason)
            log.info("dispatch.skipped", cron=cron, execution_id=eid, blocked_by=blocked)
            return DispatchOutcome(SKIPPED, eid, reason=reason)
        return self._run(cron, eid, item, locked=policy != "allow")

    def _take_lock(self, cron: str, eid: str, policy: str, force: bool) -> str | None:
        """Apply the concurrency policy; returns the blocking execution id, or None to go on."""
        if policy == "allow":
            return None
        if force:
            self.locks.force(cron, eid)
            return None
        expected = None
        for _ in range(LOCK_ATTEMPTS):
            acquired, holder = self.locks.try_acquire(cron, eid, expected)
            if acquired:
                return None
            if holder is None:          # released meanwhile: try again from "free"
                expected = None
                continue
            current = self.executions.get(holder)
            if current is not None and not current.terminal:
                if policy != "replace":
                    return holder
                if current.task_arn:
                    self.tasks.stop_task(current.task_arn, f"replaced by {eid}")
                    log.info("dispatch.replaced", cron=cron, stopped=holder, by=eid)
            expected = holder           # terminal, expired or replaced: take it over
        return self.locks.holder(cron) or "unknown"

    def _run(self, cron: str, eid: str, item, locked: bool) -> DispatchOutcome:
        if not item.task_definition_arn:
            result_failure = "the cron has no task definition yet (not reconciled)"
            result = None
        else:
            try:
                result = self.tasks.run_task(
                    task_definition=item.task_definition_arn, overrides=item.overrides,
                    token=eid, tags={"cronctl:cron": cron, "cronctl:execution": eid,
                                     "managed-by": "cronctl",
                                     "cronctl:namespace": self._settings.namespace},
                    network=self.network())
            except (TransientError, PermanentError) as exc:
                result = None
                result_failure = f"RunTask failed: {exc}"
            else:
                result_failure = result.failure
        if result is None or result.task_arn is None:
            self.executions.finish_unstarted(eid, ex.FAILED_TO_START, result_failure)
            if locked:
                self.locks.release(cron, eid)
            log.warning("dispatch.failed_to_start", cron=cron, execution_id=eid,
                        reason=result_failure)
            return DispatchOutcome(FAILED_TO_START, eid, reason=result_failure)
        try:
            self.executions.set_task(eid, result.task_arn)
        except (TransientError, PermanentError) as exc:   # events will record the ARN
            log.warning("dispatch.task_arn_not_recorded", execution_id=eid, error=str(exc))
        log.info("dispatch.started", cron=cron, execution_id=eid, task_arn=result.task_arn)
        return DispatchOutcome(STARTED, eid, result.task_arn)
