"""Pings of a run's monitor at the cron-monitoring service (Cronitor or Healthchecks.io).

``start`` when dispatch has started the run's task; ``finish`` (success, or failure with the
exit code) when the run is terminal. Each carries the execution id as the run id, so that the
service pairs them. A ping never blocks or fails the step that asks for it: it is queued for
``PingSender``, a small background thread with a bounded queue (full: the ping is dropped and
counted), and an unreachable, slow or refusing service is logged (one line) and counted
(``cronctl_monitor_pings_total{kind,result}``), never raised.

What is sent (the run id is the execution id, a UUID):
- Healthchecks.io: start ``GET <ping_url>/start?rid=<id>``; SUCCESS ``POST <ping_url>?rid=``;
  FAILED / TIMEOUT ``POST <ping_url>/<exit code>?rid=`` (TIMEOUT: 124; no exit code: ``/fail``);
  FAILED_TO_START, LOST, MISSED ``POST <ping_url>/fail?rid=``; the body of a finish says
  ``duration=12.3s status=FAILED exit_code=2``.
- Cronitor: ``GET <ping_base>/p/<apiKey>/<key>?state=run|complete|fail&series=<id>``, with
  ``status_code=<exit code>``, ``metric=duration:<s>`` and that text as ``message`` at the end.
- SKIPPED: nothing (no start either). A cron without a monitor: nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.adapters.monitors import pings_for
from reconciler.core.executions import records as ex
from reconciler.core.executions.records import Execution
from reconciler.core.monitors.model import PROVIDERS
from reconciler.core.registry_model import RegistryItem
from reconciler.logs import get_logger
from reconciler.service.worker import Worker
from reconciler.settings import MONITOR_PING_URLS, Settings

log = get_logger("cronctl.monitor")

TIMEOUT_EXIT_CODE = 124
QUEUE_SIZE = 1000
FAILED_WITH_CODE = ("FAILED", "TIMEOUT")
FAILED_WITHOUT_CODE = ("FAILED_TO_START", "LOST", "MISSED")


@dataclass(frozen=True)
class Ping:
    """One ping to send: ``kind`` start or finish."""

    kind: str
    provider: str
    monitor_id: str
    ping_url: str | None
    cron: str
    run_id: str
    ok: bool = True
    exit_code: int | None = None
    body: str = ""
    duration_s: float | None = None


def finish_ping(item: RegistryItem, execution: Execution) -> Ping | None:
    """The finish ping of a terminal run (None: nothing to send)."""
    status = execution.status
    if status == "SUCCESS":
        ok, code = True, execution.exit_code if execution.exit_code is not None else 0
    elif status in FAILED_WITH_CODE:
        ok = False
        code = TIMEOUT_EXIT_CODE if status == "TIMEOUT" else execution.exit_code
    elif status in FAILED_WITHOUT_CODE:
        ok, code = False, None
    else:
        return None  # SKIPPED, or not terminal
    duration = execution.duration_s()
    words = [f"duration={duration:.1f}s"] if duration is not None else []
    words.append(f"status={status}")
    if code is not None:
        words.append(f"exit_code={code}")
    return Ping("finish", item.monitor_provider or "", item.monitor_id or "",
                item.monitor_ping_url, item.name, execution.execution_id, ok=ok,
                exit_code=code, body=" ".join(words), duration_s=duration)


class PingSender(Worker):
    """Sends queued pings one at a time on thread ``cronctl-pings``; a daemon component
    (stopped last; pings still queued when it stops are not sent)."""

    thread_name = "cronctl-pings"

    def __init__(self, send: Callable[[Ping], None], capacity: int = QUEUE_SIZE,
                 on_drop: Callable[[Ping], None] | None = None) -> None:
        super().__init__()
        self._send = send
        self._queue: queue.Queue[Ping] = queue.Queue(maxsize=capacity)
        self._on_drop = on_drop or (lambda ping: None)

    def submit(self, ping: Ping) -> bool:
        """Queue ``ping``; False (dropped) when the queue is full. Never blocks."""
        try:
            self._queue.put_nowait(ping)
        except queue.Full:
            self._on_drop(ping)
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ping = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._send(ping)


class Pinger:
    """Sends the pings of the namespace's monitoring service (none: does nothing)."""

    def __init__(self, settings: Settings, metrics=None, *, capacity: int = QUEUE_SIZE) -> None:
        self._settings = settings
        self._metrics = metrics
        self._services: dict[str, object] = {}
        self.sender = PingSender(self._send, capacity, on_drop=self._dropped)

    def start(self, item: RegistryItem, execution: Execution) -> None:
        """The run's task was started. Never raises."""
        try:
            if not self._monitored(item) or execution.status == ex.SKIPPED:
                return
            self.sender.submit(Ping("start", item.monitor_provider or "",
                                    item.monitor_id or "", item.monitor_ping_url, item.name,
                                    execution.execution_id))
        except Exception as exc:  # a ping never fails its caller
            log.warning("monitor.ping_failed", kind="start", cron=item.name, error=str(exc))

    def finish(self, item: RegistryItem, execution: Execution) -> None:
        """The run is terminal (``execution.status``). Never raises."""
        try:
            if not self._monitored(item):
                return
            ping = finish_ping(item, execution)
            if ping is not None:
                self.sender.submit(ping)
        except Exception as exc:  # a ping never fails its caller
            log.warning("monitor.ping_failed", kind="finish", cron=item.name, error=str(exc))

    @staticmethod
    def _monitored(item: RegistryItem) -> bool:
        return bool(item.monitor_id) and item.monitor_provider in PROVIDERS

    def _service(self, provider: str):
        if provider not in self._services:
            ns = self._settings.namespace_settings
            base = (ns.monitor_ping_base if provider == self._settings.monitor
                    else None) or MONITOR_PING_URLS[provider]
            self._services[provider] = pings_for(provider, base,
                                                 self._settings.monitor_api_key,
                                                 self._settings.notify_timeout_s)
        return self._services[provider]

    def _send(self, ping: Ping) -> None:
        try:
            service = self._service(ping.provider)
            if ping.kind == "start":
                service.start(ping.monitor_id, ping.ping_url, ping.run_id)
            else:
                service.finish(ping.monitor_id, ping.ping_url, ping.run_id, ok=ping.ok,
                               exit_code=ping.exit_code, body=ping.body,
                               duration_s=ping.duration_s)
        except Exception as exc:  # logged and counted, never raised
            log.warning("monitor.ping_failed", kind=ping.kind, cron=ping.cron,
                        execution_id=ping.run_id, service=ping.provider, error=str(exc))
            self._count(ping.kind, "failed")
            return
        self._count(ping.kind, "ok")

    def _dropped(self, ping: Ping) -> None:
        log.warning("monitor.ping_dropped", kind=ping.kind, cron=ping.cron,
                    execution_id=ping.run_id, reason="the ping queue is full")
        self._count(ping.kind, "dropped")

    def _count(self, kind: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.monitor_ping(kind, result)


class NoPings:
    """What a dispatcher built without a Pinger uses: nothing is sent."""

    def start(self, item: RegistryItem, execution: Execution) -> None:
        return

    def finish(self, item: RegistryItem, execution: Execution) -> None:
        return
