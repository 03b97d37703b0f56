"""Giving memory back to the system between reconcile passes (glibc only; elsewhere a no-op).

A pass that plans a large fleet allocates its desired and observed state on whatever thread
runs it; glibc gives each thread an arena of its own (up to 8 per core) and returns little to
the system after frees, so a long-running daemon's resident size grows with its threads and
fragmentation rather than with what it keeps. ``limit_arenas`` (at start) caps the arenas;
``trim`` (after a pass that planned) returns the free pages. It does not force a garbage
collection: that holds the interpreter lock for as long as it walks every object (a second at
10,000 crons), stalling dispatch and the lease's renewals; reference counting has freed the
pass's state already, and the collector's own generations take the rest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None


_LIBC = _libc()


def limit_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas for the threads created from now on; True when applied."""
    return bool(_LIBC is not None and _LIBC.mallopt(M_ARENA_MAX, count) == 1)


def trim() -> bool:
    """Return free heap pages to the system (ctypes releases the interpreter lock meanwhile);
    True when pages were returned."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0) == 1)
