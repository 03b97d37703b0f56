"""What the process remembers of the Git source between passes (issue 10): file bytes by Git
blob id (``adapters.gitsource.blobs.BlobCache``), so a pass at a new commit reads only the
blobs it has not read yet. Bounded by the latest tree read; a read is the same without it.
(Parse results are kept by the reconcile loop: ``core.cronfile.parse_cache.ParseCache``.)
"""

from __future__ import annotations

from reconciler.adapters.gitsource import reader
from reconciler.adapters.gitsource.blobs import BlobCache
from reconciler.core.cronfile.snapshot import Snapshot

BLOBS = BlobCache()


def read_git(repo: str, ref: str | None, path: str, cache_dir: str | None = None) -> Snapshot:
    """``reader.read_git`` reading only the blobs this process has not read yet."""
    return reader.read_git(repo, ref, path, cache_dir, blobs=BLOBS)
