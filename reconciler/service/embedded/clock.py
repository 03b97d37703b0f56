"""A local clock that fires every cron's schedule at its times, as AWS would.

moto never fires rules or schedules. This thread computes each registered cron's fire times
(in its time zone) and, when one is due, publishes to the namespace's SNS topic exactly the
message the EventBridge rule's input transformer (or the Scheduler target input) produces:
``{"cron": NAME, "scheduled_at": "<ISO-8601 UTC>"}``. Fires due before the clock started are
not back-filled. A one-time ``at()`` fires once; nothing fires outside a cron's ``active``
window (``core/schedule/window.spec_fire_times``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from reconciler.core.registry_model import RegistryItem
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import CronSpec
from reconciler.logs import get_logger

log = get_logger("cronctl.embedded.clock")


def scheduled_time_text(dt: datetime) -> str:
    """EventBridge's ``$.time`` format: second precision, ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalClock:
    """Publishes each due fire time once; ``now`` is injectable so tests need not wait."""

    def __init__(self, list_registry: Callable[[], list[RegistryItem]],
                 publish: Callable[[str], None], poll_s: float = 1.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._list_registry = list_registry
        self._publish = publish
        self._poll_s = poll_s
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next: dict[str, tuple[str, datetime | None]] = {}  # cron -> (spec_hash, next fire)
        self._anchor = None

    def start(self) -> None:
        self._anchor = self._now()
        self._thread = threading.Thread(target=self._run, name="cronctl-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the clock must keep going
                log.exception("clock tick failed")
            self._stop.wait(self._poll_s)

    def tick(self) -> int:
        """Fire every due schedule once; returns how many fired."""
        now = self._now()
        fired = 0
        for item in self._list_registry():
            spec = item.spec
            if spec.suspend:
                self._next.pop(item.name, None)
                continue
            known = self._next.get(item.name)
            anchor = self._rate_anchor(item)
            if known is None or known[0] != item.spec_hash:
                first = self._first_scheduler_rate_fire(item) if known is None else None
                self._next[item.name] = (item.spec_hash,
                                         first or self._after(spec, now, anchor))
                if first is None:
                    continue
                known = self._next[item.name]
            due = known[1]
            while due is not None and due <= now and not self._stop.is_set():
                message = json.dumps({"cron": item.name, "scheduled_at": scheduled_time_text(due)})
                self._publish(message)
                log.info("schedule fired (local clock)", cron=item.name,
                         scheduled_at=scheduled_time_text(due))
                fired += 1
                due = self._after(spec, due, anchor)
            self._next[item.name] = (item.spec_hash, due)
        return fired

    def _first_scheduler_rate_fire(self, item: RegistryItem) -> datetime | None:
        """EventBridge Scheduler starts a ``rate()`` schedule without a start date at once: its
        first invocation is when it is created (Scheduler User Guide, "Schedule types"). So a
        rate schedule put in place while this clock runs fires at its ``schedule_since``."""
        if item.schedule_backend != "scheduler" or not item.spec.schedule.startswith("rate("):
            return None
        since = _since(item)
        if since is None or self._anchor is None or since < self._anchor - timedelta(minutes=1):
            return None
        return since

    def _rate_anchor(self, item: RegistryItem) -> datetime | None:
        """A ``rate()`` fires at ``since + k * interval``, ``since`` being when its schedule
        was put in place (the registry's ``schedule_since``, to the second: the times
        ``cronctl status`` shows), as on AWS; else from when this clock started."""
        return _since(item) or self._anchor

    def _after(self, spec: CronSpec, moment: datetime,
               anchor: datetime | None = None) -> datetime | None:
        times = active_window.spec_fire_times(spec, moment, 1, anchor=anchor or self._anchor)
        if not times:
            return None
        return times[0] if times[0] > moment else moment + timedelta(minutes=1)


def _since(item: RegistryItem) -> datetime | None:
    """The registry's ``schedule_since`` (UTC, to the second); None when absent or unreadable."""
    if not item.schedule_since:
        return None
    try:
        since = datetime.fromisoformat(item.schedule_since.replace("Z", "+00:00"))
    except ValueError:
        return None
    return since.astimezone(UTC).replace(microsecond=0)
