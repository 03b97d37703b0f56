"""The outbox: what follows a run's final state, carried out at least once and acted on once.

The effects (``reconciler.core.alerts.model``) are stored with the final state in the same
conditional write (consumer, watchdog, dispatch). Right after, the same process *drains* the
run's outbox (the fast path); the watchdog's sweep drains what a crash or a failed delivery
left (the run stays in the index ``unfinished`` until its outbox is empty).

One drain: claim the outbox (conditional write: owner + expiry, so replicas never act at once;
a claim left by a dead process expires), read the cron's registry item, then in order:
- ``finished``: the run counted by its status and the canonical ``execution.finished`` line;
- ``ping``: ``Pinger.finish(item, execution)`` (never raises);
- ``alert``: the run folded into the cron's alert state (``core.alerts.decide.evaluate``),
  stored in one transaction with the replacement of ``alert`` by one ``notify:<key>`` per
  decided notice (so a run is counted once, and a decided notice is never lost);
- ``overlong``: the Slack message about a run past its ran-longer-than-threshold;
- ``notify:<key>``: one notice delivered (Slack, PagerDuty), removed as soon as it succeeded.
Every effect is removed (conditionally on the claim) only after it succeeded. A failed
delivery stays, with when to retry (exponential backoff, ``backoff_s`` doubling up to
``max_backoff_s``): an outage delays alerts, never loses them. A notifier that refuses for
good (bad token, unknown channel) is retried ``permanent_attempts`` times, a transient failure
for ``give_up_after_s``; then the notice is dropped and one error line says what was dropped
and why. One canonical line per drain that sent or dropped something (``outbox.drained``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from reconciler.adapters.alert_states import AlertStates
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.notifiers import Notifiers
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.alerts import decide
from reconciler.core.alerts.model import (
    ALERT,
    FINISHED,
    NOTIFY_PREFIX,
    OVERLONG,
    PING,
    Notice,
)
from reconciler.core.executions.records import Execution
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import CronctlError, PermanentError, TransientError
from reconciler.logs import get_logger
from reconciler.service.metrics import Metrics
from reconciler.settings import Settings

log = get_logger("cronctl.outbox")

FOLD_ATTEMPTS = 5


class Outbox:
    """Drains executions' outboxes; safe from many threads and replicas at once."""

    def __init__(self, clients: AwsClients, settings: Settings, *, pinger=None,
                 notifiers=None, metrics: Metrics | None = None,
                 on_terminal: Callable[[Execution], None] | None = None,
                 now: Callable[[], datetime] | None = None, claim_s: float = 60.0,
                 backoff_s: float = 15.0, max_backoff_s: float = 600.0,
                 give_up_after_s: float = 24 * 3600.0, permanent_attempts: int = 3) -> None:
        self._settings = settings
        self.executions = ExecutionStore(clients, settings)
        self.states = AlertStates(clients, settings)
        self.registry = RegistryReader(clients, settings)
        self.pinger = pinger
        self.notifiers = notifiers if notifiers is not None else Notifiers(settings)
        self.metrics = metrics or Metrics(process=False)
        self.on_terminal = on_terminal
        self._now = now or (lambda: datetime.now(UTC))
        self.claim_s = claim_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.give_up_after_s = give_up_after_s
        self.permanent_attempts = permanent_attempts
        # Starts a queued run that a released lock was handed to (``concurrency: queue``);
        # set by the dispatcher sharing this outbox. None: the watchdog starts it.
        self.start_queued: Callable[[str], object] | None = None

    def drain(self, record: Execution, source: str = "watchdog",
              item: RegistryItem | None = None) -> bool:
        """Carry out ``record``'s outbox if nobody else is; True when it is empty after."""
        if not record.outbox:
            return True
        now = self._now()
        owner = str(uuid.uuid4())
        claimed = self.executions.claim_outbox(record.execution_id, owner, self.claim_s,
                                               now.timestamp())
        if claimed is None:
            return False
        try:
            return self._carry_out(claimed, owner, source, item, now)
        except CronctlError as exc:
            # DynamoDB trouble: the claim expires and a later sweep goes on where this ended.
            log.warning("outbox.drain_failed", cron=record.cron,
                        execution_id=record.execution_id, error=str(exc))
            return False

    def drain_claimed(self, record: Execution, owner: str, source: str,
                      lock_released_now: bool = False) -> bool:
        """Carry out the outbox of ``record`` (as stored), which ``owner`` claimed already
        with the write that stored its final state (``ExecutionStore.store_event``): no
        claim of its own. ``lock_released_now``: the caller has just released the run's lock
        and the write that empties the outbox notes it. True when that write noted it (else
        the caller notes it: ``mark_lock_released``)."""
        if not record.outbox:
            return False
        now = self._now()
        try:
            if record.pending_effects - self._quick(record):
                # Something that may take long (a notice, a ping, an alert state): the claim
                # of the final write is short (``FRESH_CLAIM_S``); the usual one is taken.
                record = self.executions.claim_outbox(record.execution_id, owner,
                                                      self.claim_s, now.timestamp(),
                                                      ignore_backoff=True)
                if record is None:
                    return False
            return self._carry_out(record, owner, source, None, now,
                                   lock_released_now=lock_released_now) == "noted"
        except CronctlError as exc:
            log.warning("outbox.drain_failed", cron=record.cron,
                        execution_id=record.execution_id, error=str(exc))
            return False

    @staticmethod
    def _quick(run: Execution) -> frozenset[str]:
        """The effects of ``run`` carried out without any call: its ``finished`` line, and
        for a quiet run (``Execution.quiet``) its ping and alert, which are then nothing."""
        return frozenset({FINISHED, PING, ALERT}) if run.quiet else frozenset({FINISHED})

    # -- the effects ----------------------------------------------------------------------
    def _carry_out(self, run: Execution, owner: str, source: str, item: RegistryItem | None,
                   now: datetime, lock_released_now: bool = False) -> bool | str:
        effects = set(run.pending_effects)
        done: set[str] = set()
        carried: set[str] = set()     # every effect carried out (or dropped) by this drain
        if run.quiet:
            # No monitor and no alert state when the run was created: nothing to ping or fold
            # (its start was not pinged either), so no registry item is read.
            done |= effects & {PING, ALERT}
            effects -= {PING, ALERT}
        if item is None and effects & {PING, ALERT, OVERLONG}:
            item = self.registry.get(run.cron)
        if FINISHED in effects:
            self._finished(run, source)
            done.add(FINISHED)
        if PING in effects:
            if item is not None and self.pinger is not None:
                self.pinger.finish(item, run)
            done.add(PING)
        carried |= done
        notices = {key: Notice.from_json(text) for key, text in (run.notices or {}).items()}
        if ALERT in effects:
            if item is None or not decide.counted(item.spec):
                done.add(ALERT)
            else:
                decided = self._fold(run, owner, frozenset(effects - done), item)
                if decided is None:
                    return False            # the claim was lost: whoever holds it goes on
                # The transaction removed ``alert`` and what was done, and added the notices.
                effects = (effects - done - {ALERT}) | {NOTIFY_PREFIX + n.key for n in decided}
                notices.update({n.key: n for n in decided})
                carried.add(ALERT)
                done = set()
            carried |= done
        sent: list[str] = []
        dropped: list[str] = []
        failure: tuple[str, CronctlError] | None = None
        pending = sorted(e for e in effects if e == OVERLONG or e.startswith(NOTIFY_PREFIX))
        for effect in pending:
            notice = self._notice(effect, run, notices, item, now)
            if notice is None:
                done.add(effect)
                carried.add(effect)
                continue
            if done:   # what is done is stored as done before anything is sent
                if self.executions.remove_effects(run.execution_id, owner,
                                                  frozenset(done)) is None:
                    return False
                done = set()
            try:
                self._deliver(notice)
            except (TransientError, PermanentError) as exc:
                if self._give_up(run, exc, now):
                    self._dropped(notice, run, exc)
                    dropped.append(notice.describe())
                    done.add(effect)
                    carried.add(effect)
                else:
                    failure = (notice.describe(), exc)
                continue
            sent.append(notice.describe())
            carried.add(effect)
            if effects - carried and self.executions.remove_effects(
                    run.execution_id, owner, frozenset({effect})) is None:
                return False
            done.discard(effect)
        if (failure is None and not effects - carried and run.terminal
                and (run.lock_released or lock_released_now)
                and self.executions.finish_outbox(run.execution_id, owner,
                                                  lock_released_now=lock_released_now)):
            self._log_drained(run, sent, dropped, ())
            return "noted" if lock_released_now else True
        return self._release(run, owner, done | (carried & effects), failure, sent, dropped,
                             now)

    def _fold(self, run: Execution, owner: str, effects: frozenset[str],
              item: RegistryItem) -> tuple[Notice, ...] | None:
        for _ in range(FOLD_ATTEMPTS):
            state = self.states.get(run.cron)
            decision = decide.evaluate(state, run, item.spec, self._settings.namespace)
            if self.states.fold(run.execution_id, owner, effects, state, decision.state,
                                decision.notices):
                log.info("alert.state", cron=run.cron, execution_id=run.execution_id,
                         status=run.status,
                         consecutive_failures=decision.state.consecutive_failures,
                         open=[f"{a.notifier}:{a.kind}" for a in decision.state.open],
                         notices=[n.describe() for n in decision.notices])
                return decision.notices
            current = self.executions.get(run.execution_id)
            if current is None or ALERT not in current.pending_effects or \
                    current.outbox_owner != owner:
                return None
        raise TransientError(f"the alert state of {run.cron} keeps changing; retried later")

    def _notice(self, effect: str, run: Execution, notices: dict[str, Notice],
                item: RegistryItem | None, now: datetime) -> Notice | None:
        if effect == OVERLONG:
            if item is None:
                return None
            return decide.overlong_notice(run, item.spec, self._settings.namespace, now)
        notice = notices.get(effect[len(NOTIFY_PREFIX):])
        if notice is None:
            log.error("outbox.notice_missing", cron=run.cron, execution_id=run.execution_id,
                      effect=effect)
        return notice

    def _deliver(self, notice: Notice) -> None:
        if self.notifiers is None:
            raise PermanentError("no notifiers in this process")
        try:
            self.notifiers.deliver(notice)
        except (TransientError, PermanentError):
            self.metrics.alert_sent(notice.kind, notice.notifier, "failed")
            raise
        self.metrics.alert_sent(notice.kind, notice.notifier, "sent")
        log.info("alert.sent", cron=notice.cron, execution_id=notice.execution_id,
                 notifier=notice.notifier, action=notice.action, kind=notice.kind,
                 channel=notice.channel, dedup_key=notice.dedup_key)

    def _give_up(self, run: Execution, exc: CronctlError, now: datetime) -> bool:
        attempts = (run.outbox_attempts or 0) + 1
        if isinstance(exc, PermanentError):
            return attempts >= self.permanent_attempts
        since = run.outbox_failing_since or now.timestamp()
        return now.timestamp() - since >= self.give_up_after_s

    def _dropped(self, notice: Notice, run: Execution, exc: CronctlError) -> None:
        self.metrics.alert_sent(notice.kind, notice.notifier, "dropped")
        log.error("alert.dropped", cron=run.cron, execution_id=run.execution_id,
                  notifier=notice.notifier, action=notice.action, kind=notice.kind,
                  dropped=notice.summary or notice.describe(),
                  attempts=(run.outbox_attempts or 0) + 1, error=str(exc),
                  permanent=isinstance(exc, PermanentError))

    def _release(self, run: Execution, owner: str, done: set[str],
                 failure: tuple[str, CronctlError] | None, sent: list[str],
                 dropped: list[str], now: datetime) -> bool:
        retry_at = attempts = failing_since = None
        if failure is not None:
            attempts = (run.outbox_attempts or 0) + 1
            failing_since = run.outbox_failing_since or now.timestamp()
            retry_at = now.timestamp() + min(self.max_backoff_s,
                                             self.backoff_s * 2 ** (attempts - 1))
            self.metrics.outbox_retried()
            log.warning("alert.retry_later", cron=run.cron, execution_id=run.execution_id,
                        notice=failure[0], error=str(failure[1]), attempts=attempts,
                        retry_in_s=round(retry_at - now.timestamp(), 1))
        after = self.executions.remove_effects(
            run.execution_id, owner, frozenset(done), release=True, retry_at=retry_at,
            attempts=attempts, failing_since=failing_since)
        self._log_drained(run, sent, dropped,
                          sorted(after.pending_effects) if after else None)
        return after is not None and not after.outbox

    @staticmethod
    def _log_drained(run: Execution, sent: list[str], dropped: list[str], pending) -> None:
        if sent or dropped:
            log.info("outbox.drained", cron=run.cron, execution_id=run.execution_id,
                     status=run.status, sent=sent, dropped=dropped, pending=pending)

    def _finished(self, run: Execution, source: str) -> None:
        self.metrics.execution_finished(run.status)
        log.info("execution.finished", cron=run.cron, execution_id=run.execution_id,
                 status=run.status, exit_code=run.exit_code, duration_s=run.duration_s(),
                 reason=run.reason, source=source)
        if self.on_terminal is not None:
            try:
                self.on_terminal(run)
            except Exception as exc:  # noqa: BLE001 - a callback's failure blocks nothing
                log.error("execution.on_terminal_failed", execution_id=run.execution_id,
                          error=str(exc))
