"""Pings of a run's monitor at the cron-monitoring service (Cronitor or Healthchecks.io).

``start`` when dispatch has started the run's task; ``finish`` (success, or failure with the
exit code) when the run is terminal. Each carries the execution id as the run id, so that the
service pairs them. A ping never blocks or fails the step that asks for it: an unreachable,
slow or refusing service is logged and counted, never raised.
"""

from __future__ import annotations

from reconciler.core.executions.records import Execution
from reconciler.core.registry_model import RegistryItem
from reconciler.settings import Settings


class Pinger:
    """Sends the pings of the namespace's monitoring service (none: does nothing)."""

    def __init__(self, settings: Settings, metrics=None) -> None:
        self._settings = settings
        self._metrics = metrics

    def start(self, item: RegistryItem, execution: Execution) -> None:
        """The run's task was started. Never raises."""

    def finish(self, item: RegistryItem, execution: Execution) -> None:
        """The run is terminal (``execution.status``). Never raises."""
