"""File bytes by Git blob id, kept between reads of a source (issue 10).

A tree walk gives each file's blob id without reading its data; a blob's content never
changes, so a new commit reads only the blobs that the previous read did not have. Bounded:
each ``read_git`` keeps only the blobs of the tree it just read (``retain``). Thread-safe (a
daemon's reconcile and a ``validate`` may share one); the bytes are the ones the
``Snapshot`` hands out, so keeping them costs one reference each, not a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Collection


class BlobCache:
    """Blob bytes by binary blob id. ``reads``: blobs read from the object database through
    this cache; ``hits``: blobs answered from memory."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._lock = threading.Lock()
        self.reads = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._data)

    def lookup(self, blob_id: bytes) -> bytes | None:
        """The remembered bytes of blob ``blob_id``, or None (then read it and ``put`` it)."""
        with self._lock:
            data = self._data.get(blob_id)
            if data is not None:
                self.hits += 1
            return data

    def put(self, blob_id: bytes, data: bytes) -> None:
        """Remember the bytes just read of blob ``blob_id``."""
        with self._lock:
            self.reads += 1
            self._data[blob_id] = data

    def retain(self, blob_ids: Collection[bytes]) -> None:
        """Forget every blob but these (those of the latest tree read)."""
        keep = blob_ids if isinstance(blob_ids, set | frozenset | dict) else set(blob_ids)
        with self._lock:
            for blob_id in [blob_id for blob_id in self._data if blob_id not in keep]:
                del self._data[blob_id]
