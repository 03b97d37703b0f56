"""Uncommitted edits under the cron path of a local working tree: never applied (the source is
a commit), so ``cronctl reconcile`` and ``cronctl serve`` say so, naming the files and the way
to apply them (commit).

``UncommittedWatcher`` is the daemon's check: at start and then every ``every_s`` it looks
again, and logs a warning whenever the set of such files changes (not again while it stays
the same), so an edit made while the daemon runs is pointed out too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from reconciler.logs import get_logger
from reconciler.settings import Settings

log = get_logger("cronctl.source")

SHOWN = 10  # files named in one warning; the rest are counted


def uncommitted(settings: Settings) -> list[tuple[str, str]]:
    from reconciler.adapters.gitsource.reader import uncommitted_changes

    return uncommitted_changes(settings.repo, settings.path)


def warning_text(settings: Settings, changes: list[tuple[str, str]]) -> str | None:
    """One sentence: what is uncommitted, what is read instead, and how to apply it."""
    if not changes:
        return None
    named = ", ".join(f"{file} ({state})" for state, file in changes[:SHOWN])
    if len(changes) > SHOWN:
        named += f" and {len(changes) - SHOWN} more"
    source = f"ref {settings.ref}" if settings.ref else "the committed HEAD"
    return (f"uncommitted changes under {settings.path} are not applied: {named}. cronctl "
            f"reads {source}, not the working tree: commit them to apply them")


class UncommittedWatcher:
    """Logs ``source.uncommitted`` when the uncommitted files under the cron path change."""

    def __init__(self, settings: Settings, every_s: float = 10.0,
                 look: Callable[[Settings], list[tuple[str, str]]] = uncommitted) -> None:
        self._settings = settings
        self._every_s = every_s
        self._look = look
        self._last: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """Look once; the warning when the set changed and is not empty."""
        changes = self._look(self._settings)
        if changes == self._last:
            return None
        self._last = changes
        text = warning_text(self._settings, changes)
        if text:
            log.warning("source.uncommitted", message=text,
                        files=[file for _, file in changes])
        return text

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cronctl-uncommitted",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a warning must never stop the daemon
                log.warning("source.uncommitted_check_failed", error=str(exc))
            self._stop.wait(self._every_s)

    def stop(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
