"""The daemon: the reconcile loop, the HTTP endpoint and the event consumer in one process.

Each component runs on its own named thread with a stop event. ``Daemon.stop`` stops them in
the reverse of their start order, within one shared budget. To lose nothing on SIGTERM the
caller lists them so that this reverse order is: the HTTP endpoint (stop accepting, let the
dispatches in flight finish), then the consumer (no message is deleted before its effect is
stored), then the reconcile loop - i.e. start order loop, consumer, HTTP endpoint.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.tables import check_readable
from reconciler.logs import get_logger

log = get_logger("cronctl.daemon")

SHUTDOWN_BUDGET_S = 30.0


class Component(Protocol):
    """What the daemon needs of a worker: ``start()`` and ``stop(timeout) -> bool``."""

    def start(self) -> None: ...

    def stop(self, timeout: float) -> bool: ...


def component_name(component: Component) -> str:
    return type(component).__name__


@dataclass
class Daemon:
    """Runs components; ``components`` are started in order and stopped in reverse order."""

    components: list[Component] = field(default_factory=list)
    on_reload: Callable[[], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    restart_requested: bool = False  # stopped to be built again (changed namespace settings)

    def request_restart(self) -> None:
        """Stop every component as on SIGTERM, for the caller to build the daemon again."""
        self.restart_requested = True
        self._stop.set()

    def start(self) -> None:
        for component in self.components:
            component.start()
            log.info("component started", component=component_name(component))
        log.info("daemon.ready", pid=os.getpid(),
                 components=[component_name(c) for c in self.components])

    def stop(self, budget_s: float = SHUTDOWN_BUDGET_S) -> bool:
        """Stop every component within ``budget_s`` in all; True when all stopped."""
        self._stop.set()
        deadline = time.monotonic() + budget_s
        clean = True
        for component in reversed(self.components):
            remaining = max(0.5, deadline - time.monotonic())
            try:
                stopped = component.stop(remaining)
            except Exception as exc:  # noqa: BLE001 - the other components must still stop
                log.error("component stop failed", component=component_name(component),
                          error=f"{type(exc).__name__}: {exc}")
                stopped = False
            clean = clean and bool(stopped if stopped is not None else True)
            log.info("component stopped", component=component_name(component), clean=stopped)
        return clean

    def run_until_signalled(self) -> int:
        """Start, then block until SIGTERM/SIGINT; SIGHUP triggers a reconcile pass."""
        previous = {}

        def on_term(signum, _frame):
            log.info("signal received, shutting down", signal=signal.Signals(signum).name)
            self._stop.set()

        def on_hup(_signum, _frame):
            if self.on_reload:
                self.on_reload()

        for sig, handler in ((signal.SIGTERM, on_term), (signal.SIGINT, on_term),
                             (signal.SIGHUP, on_hup)):
            previous[sig] = signal.signal(sig, handler)
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            clean = self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0 if clean else 1


def readiness_check(clients: AwsClients, registry_table: str) -> Callable[[], tuple[bool, str]]:
    """Ready when AWS answers and the registry table is readable."""

    def check() -> tuple[bool, str]:
        try:
            check_readable(clients, registry_table)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return False, f"registry not readable: {exc}"
        return True, "ready"

    return check
