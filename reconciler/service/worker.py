"""One background thread of the daemon, with a stop event and a timed join.

``Worker`` is what the consumer and the watchdog share: ``start()`` runs ``_loop`` on a named
daemon thread (once), ``stop(timeout)`` sets ``_stop`` and joins within ``timeout``; ``_loop``
must return soon after ``_stop`` is set.
"""

from __future__ import annotations

import threading


class Worker:
    """Base of a component that runs ``_loop`` on its own thread ``thread_name``."""

    thread_name = "cronctl-worker"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout``; True when it has stopped."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:  # pragma: no cover - every worker defines its loop
        raise NotImplementedError
