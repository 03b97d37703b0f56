"""What the process remembers of the cron files between passes (issue 10): file bytes by Git
blob id (``adapters.gitsource.blobs.BlobCache``) and parse results by file
(``core.cronfile.parse_cache.ParseCache``), so a pass at a new commit reads and parses only
the files that changed. Both are bounded by the latest read; a load is the same with or
without them.

``read_git`` and ``load`` are ``read_git`` and ``load_snapshot`` with this process's caches;
loads are serialised (the core's cache does not lock).
"""

from __future__ import annotations

import threading

from reconciler.adapters.gitsource import reader
from reconciler.adapters.gitsource.blobs import BlobCache
from reconciler.core.cronfile.loader import LoadResult, load_snapshot
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.cronfile.snapshot import Snapshot

BLOBS = BlobCache()
PARSED = ParseCache()
_LOCK = threading.Lock()


def read_git(repo: str, ref: str | None, path: str, cache_dir: str | None = None) -> Snapshot:
    """``reader.read_git`` reading only the blobs this process has not read yet."""
    return reader.read_git(repo, ref, path, cache_dir, blobs=BLOBS)


def load(snapshot: Snapshot, cron_path: str = "crons.d",
         calendar_dir: str | None = None) -> LoadResult:
    """``load_snapshot`` parsing only the files that changed since the previous load."""
    with _LOCK:
        return load_snapshot(snapshot, cron_path, calendar_dir, cache=PARSED)
