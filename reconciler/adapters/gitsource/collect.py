"""What the Git and directory readers share: the limits, the refusal messages, and the
builder that turns what a reader found into a ``Snapshot``.

Invariants kept by ``SnapshotBuilder``:
- a path is either in ``files`` or in ``refused``, never both;
- more than ``MAX_FILES`` cron files refuse the whole source (``SourceError``), so a reader
  stops walking as soon as the limit is crossed instead of reading an unbounded tree.
"""

from __future__ import annotations

from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.errors import SourceError

MAX_FILES = 10_000
MAX_FILE_BYTES = 256 * 1024
MAX_SYMLINK_HOPS = 40
CRON_SUFFIXES = (".yaml", ".yml")

OUTSIDE = "symlink points outside the repository"
DANGLING = "symlink target does not exist"
LOOP = "symlink loop (too many levels of symbolic links)"
NOT_REGULAR = "not a regular file"


def ancestor_loop(target: str) -> str:
    """The refusal of a symlink to a folder that contains it (``up -> ..``): following it
    would walk every file again, and again."""
    return (f"symlink loop: it points to {target!r}, a folder that contains it; "
            "it is not followed")


def is_cron_name(name: str) -> bool:
    """Whether a file name is one the walkers pick up (``*.yaml`` / ``*.yml``)."""
    return name.lower().endswith(CRON_SUFFIXES)


def is_hidden(name: str) -> bool:
    """Hidden folders (``.git``, ``.github``, ``.venv``...) are not walked into."""
    return name.startswith(".")


def join_key(prefix: str, name: str) -> str:
    """Join a forward-slash key and a name; ``""`` is the root."""
    return f"{prefix}/{name}" if prefix else name


def size_refusal(size: int) -> str | None:
    """The refusal message for a file of ``size`` bytes, or None when it is within the limit."""
    if size <= MAX_FILE_BYTES:
        return None
    kib = -(-size // 1024)
    return f"file is {kib} KiB; the limit is {MAX_FILE_BYTES // 1024} KiB"


class SnapshotBuilder:
    """Collects files and refusals of one source read; ``label`` names the source in errors."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._files: dict[str, bytes] = {}
        self._refused: dict[str, Diagnostic] = {}
        self._seen: set[str] = set()

    def count(self, key: str) -> None:
        """Count one cron file found; refuse the whole source past ``MAX_FILES``."""
        self._seen.add(key)
        if len(self._seen) > MAX_FILES:
            raise SourceError(
                f"{self.label} holds more than {MAX_FILES} cron files; the source is refused")

    def add(self, key: str, data: bytes) -> None:
        self._refused.pop(key, None)
        self._files[key] = data

    def refuse(self, key: str, message: str) -> None:
        """Refuse one file; the error points at its start (1:1), like any whole-file error."""
        if key not in self._files:
            self._refused[key] = Diagnostic(key, 1, 1, "", message)

    def build(self, commit: str | None) -> Snapshot:
        files = dict(sorted(self._files.items()))
        return Snapshot(commit=commit, files=files, refused=tuple(sorted(self._refused.values())))
