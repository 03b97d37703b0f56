"""What ``load_snapshot`` remembers between source reads, so that parsing a new commit parses
only the files that changed (issue 10).

A plain object, passed in by its owner (the daemon keeps one for the life of the process,
``reconciler/service/control/parse_cache.py``); nothing here is global and nothing locks: a
caller that shares one between threads serialises its loads.

Each cron file's parse result is kept by its path, with the digest of its bytes, the calendar
folder its ``exclude:`` errors name, and the calendars it names (their values as loaded from
the same snapshot, or their absence): it is reused only when all of them are equal, so a
cached load is the uncached load, diagnostics included. A calendar file's result is kept by
path and digest. What needs all files at once (unique names, duplicate calendars) is never
cached: ``load_snapshot`` recomputes it from the per-file results on every load.

Bounded: after each load, only the entries of the files that load saw are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

_MISSING: Any = object()   # a calendar that was named but does not exist


class _Parsed(Protocol):
    calendars: tuple[str, ...]   # the calendar names the file's ``exclude:`` gives


P = TypeVar("P", bound=_Parsed)
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class _CronEntry(Generic[P]):
    digest: bytes
    folder: str
    depends: tuple[tuple[str, Any], ...]   # (calendar name, its value when parsed)
    result: P


def digest(data: bytes) -> bytes:
    """The digest a file's bytes are remembered by."""
    return hashlib.blake2b(data, digest_size=20).digest()


class ParseCache:
    """Per-file parse results of the last load(s); ``parses`` / ``hits`` (and the calendar
    twins) count what each lookup did, for tests and the curious."""

    def __init__(self) -> None:
        self._crons: dict[str, _CronEntry] = {}
        self._calendars: dict[str, tuple[bytes, Any]] = {}
        self.parses = 0
        self.hits = 0
        self.calendar_parses = 0
        self.calendar_hits = 0

    def __len__(self) -> int:
        return len(self._crons) + len(self._calendars)

    def cron(self, path: str, data: bytes, folder: str, calendars: Mapping[str, Any],
             parse: Callable[[], P]) -> P:
        """The parse result of the cron file ``path`` with ``data``: remembered, or
        ``parse()`` (then remembered)."""
        key = digest(data)
        entry = self._crons.get(path)
        if entry is not None and entry.digest == key and entry.folder == folder and all(
                calendars.get(name, _MISSING) == value for name, value in entry.depends):
            self.hits += 1
            return entry.result
        result = parse()
        self.parses += 1
        depends = tuple((name, calendars.get(name, _MISSING))
                        for name in dict.fromkeys(result.calendars))
        self._crons[path] = _CronEntry(key, folder, depends, result)
        return result

    def calendar(self, path: str, data: bytes, parse: Callable[[], C]) -> C:
        """The parse result of the calendar file ``path`` with ``data``."""
        key = digest(data)
        entry = self._calendars.get(path)
        if entry is not None and entry[0] == key:
            self.calendar_hits += 1
            return entry[1]
        result = parse()
        self.calendar_parses += 1
        self._calendars[path] = (key, result)
        return result

    def retain(self, crons: Collection[str], calendars: Collection[str]) -> None:
        """Forget every file but these (the files of the latest load)."""
        crons, calendars = set(crons), set(calendars)
        for path in [path for path in self._crons if path not in crons]:
            del self._crons[path]
        for path in [path for path in self._calendars if path not in calendars]:
            del self._calendars[path]
