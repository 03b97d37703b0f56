"""The daemon's Prometheus metrics, every series defined once, served by ``GET /metrics``.

A ``Metrics`` owns its own ``CollectorRegistry`` (never prometheus_client's global one), so
several daemons in one process, and tests, each count on their own. The daemon makes one in
``wiring.build_daemon`` and passes it to each component; a component built without one (a
command, a test) gets a private ``Metrics`` that nobody reads.

Series (counters are exposed with ``_total``; label values known in advance start at 0):

- ``cronctl_reconcile_passes_total{result=ok|error}``, ``cronctl_reconcile_pass_duration_seconds``
  (histogram), ``cronctl_reconcile_last_success_timestamp_seconds`` and
  ``cronctl_reconcile_changes_applied_total{action,resource}``: from each pass's ``PassResult``;
- ``cronctl_aws_api_calls_total{service,operation}`` and
  ``cronctl_aws_api_throttles_total{service,operation}``: every attempt of every AWS call, and
  those AWS answered with throttling (``adapters.aws.CallCounter``);
- ``cronctl_dispatches_total{outcome}``: each SNS delivery's outcome (``started``, ``skipped``,
  ``duplicate``, ``in_progress``, ``failed_to_start``, ``unknown_cron``, ``suspended``,
  ``retry``, ``invalid``, ``error``, ``queued``: waiting for the run ahead, ``retry_wait``:
  RunTask refused, retried later);
- ``cronctl_dispatch_schedule_skew_seconds`` (histogram): from a scheduled run's scheduled
  time to RunTask's answer with its task;
- ``cronctl_executions_finished_total{status}``: runs becoming terminal (SUCCESS, FAILED,
  TIMEOUT, LOST from the consumer and the watchdog; SKIPPED and FAILED_TO_START from dispatch);
- ``cronctl_sqs_messages_processed_total``, ``cronctl_sqs_messages_failed_total{reason}`` (a
  processed message left on the queue: ``malformed``, ``contended``, ``transient``, ``error``,
  ``not_deleted``) and ``cronctl_sqs_event_lag_seconds`` (histogram: from an ECS event's
  ``time`` to its handling);
- ``cronctl_watchdog_repairs_total{kind}``: ``resumed``, ``failed_to_start``, ``skipped``,
  ``recorded_from_ecs``, ``lost``, and ``failed`` (a repair that raised; retried next sweep);
- ``cronctl_monitor_pings_total{kind=start|finish,result=ok|failed|dropped}``: pings of the
  monitoring service (``service/monitoring/pings.py``; ``dropped``: the queue was full);
  ``recorded_from_ecs``, ``lost``, ``lock_released``, ``closed`` (a finished run taken out of
  the index of open runs), ``outbox`` (an outbox drained), ``overlong``, ``missed`` (a run
  recorded MISSED), and ``failed`` (a repair that raised; retried next sweep);
- ``cronctl_alerts_total{kind,notifier,result}``: notices to Slack or PagerDuty by kind
  (``failed``, ``missed``, ``overlong``, ``recovered``) and result (``sent``, ``failed``: left
  in the outbox to be retried, ``dropped``: given up); ``cronctl_outbox_retries_total`` (drains
  that left a failed delivery for later) and ``cronctl_outbox_pending`` (runs whose outbox has
  effects, as the watchdog's latest sweep saw them);
- ``cronctl_execution_retries_total{status}``: attempts that ended and were retried (by the
  status they ended with: ``retries``), and ``cronctl_catch_up_total{result=started|missed}``:
  fires found without an execution after an outage, started late within their catch-up
  window or recorded MISSED past it;
- the standard ``process_*`` series of the daemon's process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

PASS_RESULTS = ("ok", "error")
DISPATCH_OUTCOMES = ("started", "skipped", "duplicate", "in_progress", "failed_to_start",
                     "unknown_cron", "suspended", "retry", "invalid", "error", "queued",
                     "retry_wait")
FINAL_STATUSES = ("SUCCESS", "FAILED", "TIMEOUT", "SKIPPED", "FAILED_TO_START", "LOST",
                  "MISSED")
SQS_FAILURES = ("malformed", "contended", "transient", "error", "not_deleted")
PING_KINDS = ("start", "finish")
PING_RESULTS = ("ok", "failed", "dropped")
REPAIR_KINDS = ("resumed", "failed_to_start", "skipped", "recorded_from_ecs", "lost",
                "lock_released", "closed", "outbox", "overlong", "missed", "failed")
ALERT_KINDS = ("failed", "missed", "overlong", "recovered")
NOTIFIERS = ("slack", "pagerduty")
ALERT_RESULTS = ("sent", "failed", "dropped")

# Seconds. A pass takes from under a second to minutes (thousands of crons, throttled APIs);
# runs start seconds after their time, and minutes late when SNS or AWS had trouble.
PASS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
SKEW_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    """Every series of the daemon, on ``registry`` (a new one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)
        self.reconcile_passes = Counter(
            "cronctl_reconcile_passes", "Reconcile passes run by this replica, by result.",
            ["result"], registry=r)
        self.reconcile_duration = Histogram(
            "cronctl_reconcile_pass_duration_seconds", "Duration of reconcile passes.",
            buckets=PASS_BUCKETS, registry=r)
        self.reconcile_last_success = Gauge(
            "cronctl_reconcile_last_success_timestamp_seconds",
            "When the latest successful reconcile pass of this replica ended (Unix time).",
            registry=r)
        self.changes_applied = Counter(
            "cronctl_reconcile_changes_applied", "Changes applied to AWS by reconcile passes.",
            ["action", "resource"], registry=r)
        self.aws_calls = Counter(
            "cronctl_aws_api_calls", "AWS API call attempts, by service and operation.",
            ["service", "operation"], registry=r)
        self.aws_throttles = Counter(
            "cronctl_aws_api_throttles", "AWS API call attempts answered with throttling.",
            ["service", "operation"], registry=r)
        self.dispatches = Counter(
            "cronctl_dispatches", "SNS dispatch deliveries, by outcome.", ["outcome"],
            registry=r)
        self.schedule_skew = Histogram(
            "cronctl_dispatch_schedule_skew_seconds",
            "From a run's scheduled time to RunTask answering with its task.",
            buckets=SKEW_BUCKETS, registry=r)
        self.executions_finished = Counter(
            "cronctl_executions_finished", "Executions that reached a final status.",
            ["status"], registry=r)
        self.sqs_processed = Counter(
            "cronctl_sqs_messages_processed", "ECS event messages received and handled.",
            registry=r)
        self.sqs_failed = Counter(
            "cronctl_sqs_messages_failed",
            "Handled ECS event messages left on the queue (received again later, or moved "
            "to the dead-letter queue), by reason.", ["reason"], registry=r)
        self.event_lag = Histogram(
            "cronctl_sqs_event_lag_seconds", "From an ECS event's time to its handling.",
            buckets=LAG_BUCKETS, registry=r)
        self.watchdog_repairs = Counter(
            "cronctl_watchdog_repairs", "Repairs made by the watchdog, by kind.", ["kind"],
            registry=r)
        self.monitor_pings = Counter(
            "cronctl_monitor_pings", "Pings of the monitoring service, by kind and result.",
            ["kind", "result"], registry=r)
        for kind in PING_KINDS:
            for result in PING_RESULTS:
                self.monitor_pings.labels(kind, result)
        self.alerts = Counter(
            "cronctl_alerts", "Notices to Slack or PagerDuty, by kind, notifier and result.",
            ["kind", "notifier", "result"], registry=r)
        self.outbox_retries = Counter(
            "cronctl_outbox_retries",
            "Outbox drains that left a failed delivery to be retried later.", registry=r)
        self.outbox_pending = Gauge(
            "cronctl_outbox_pending",
            "Runs whose outbox has effects left, as the latest watchdog sweep saw them.",
            registry=r)
        # -- retries and catch-up (issue 11) --
        self.execution_retries = Counter(
            "cronctl_execution_retries",
            "Attempts of runs that ended and were retried, by the status they ended with.",
            ["status"], registry=r)
        self.catch_up = Counter(
            "cronctl_catch_up",
            "Fires without an execution found by the watchdog: started late within the "
            "catch-up window, or recorded MISSED past it.", ["result"], registry=r)
        for result in ("started", "missed"):
            self.catch_up.labels(result)
        for kind in ALERT_KINDS:
            for notifier in NOTIFIERS:
                for result in ALERT_RESULTS:
                    self.alerts.labels(kind, notifier, result)
        for labels, values in ((self.reconcile_passes, PASS_RESULTS),
                               (self.dispatches, DISPATCH_OUTCOMES),
                               (self.executions_finished, FINAL_STATUSES),
                               (self.sqs_failed, SQS_FAILURES),
                               (self.watchdog_repairs, REPAIR_KINDS)):
            for value in values:
                labels.labels(value)

    # -- reconcile ----------------------------------------------------------------------------
    def observing_passes(self, pass_fn: Callable[..., Any]) -> Callable[..., Any]:
        """``pass_fn``, counting each pass it runs (one that raises counts as an error)."""

        def observed(*args, **kwargs):
            started = time.monotonic()
            try:
                result = pass_fn(*args, **kwargs)
            except Exception:
                self.reconcile_passes.labels("error").inc()
                self.reconcile_duration.observe(time.monotonic() - started)
                raise
            self.pass_finished(result, time.monotonic() - started)
            return result

        return observed

    def pass_finished(self, result: Any, elapsed_s: float | None = None) -> None:
        """Count one pass from its ``PassResult``: result, duration, changes applied."""
        ok = bool(getattr(result, "ok", False))
        self.reconcile_passes.labels("ok" if ok else "error").inc()
        duration = getattr(result, "duration_s", None)
        self.reconcile_duration.observe(duration if duration is not None else elapsed_s or 0)
        if ok:
            self.reconcile_last_success.set_to_current_time()
        for change in getattr(result, "applied", ()):
            self.changes_applied.labels(change.action, change.resource).inc()

    # -- AWS ----------------------------------------------------------------------------------
    def aws_call(self, key: str) -> None:
        """One attempt of ``service.Operation``."""
        self.aws_calls.labels(*_service_operation(key)).inc()

    def aws_throttle(self, key: str) -> None:
        """One attempt of ``service.Operation`` that AWS answered with throttling."""
        self.aws_throttles.labels(*_service_operation(key)).inc()

    # -- dispatch and executions --------------------------------------------------------------
    def dispatched(self, outcome: str) -> None:
        self.dispatches.labels(outcome).inc()

    def started_late(self, seconds: float) -> None:
        """A scheduled run's task started ``seconds`` after its scheduled time."""
        self.schedule_skew.observe(max(0.0, seconds))

    def execution_finished(self, status: str) -> None:
        self.executions_finished.labels(status).inc()

    # -- event consumer -----------------------------------------------------------------------
    def message_processed(self) -> None:
        self.sqs_processed.inc()

    def message_failed(self, reason: str) -> None:
        self.sqs_failed.labels(reason).inc()

    def event_lagged(self, seconds: float) -> None:
        self.event_lag.observe(max(0.0, seconds))

    # -- watchdog -----------------------------------------------------------------------------
    def repaired(self, counts: Mapping[str, int]) -> None:
        for kind, count in counts.items():
            if count:
                self.watchdog_repairs.labels(kind).inc(count)

    # -- monitoring service -------------------------------------------------------------------
    def monitor_ping(self, kind: str, result: str) -> None:
        self.monitor_pings.labels(kind, result).inc()
    # -- alerts -------------------------------------------------------------------------------
    def alert_sent(self, kind: str, notifier: str, result: str) -> None:
        self.alerts.labels(kind, notifier, result).inc()

    def retried(self, status: str) -> None:
        """An attempt that ended with ``status`` is retried (``retries``)."""
        self.execution_retries.labels(status).inc()

    def caught_up(self, result: str, count: int = 1) -> None:
        """Fires found missing after an outage: ``started`` late, or ``missed``."""
        if count:
            self.catch_up.labels(result).inc(count)

    def outbox_retried(self) -> None:
        self.outbox_retries.inc()

    def outbox_seen(self, pending: int) -> None:
        self.outbox_pending.set(pending)

    # -- exposition ---------------------------------------------------------------------------
    def exposition(self) -> tuple[str, str]:
        """The text exposition of every series and its content type."""
        return generate_latest(self.registry).decode("utf-8"), CONTENT_TYPE_LATEST


def _service_operation(key: str) -> tuple[str, str]:
    service, _, operation = key.partition(".")
    return service, operation or "unknown"
