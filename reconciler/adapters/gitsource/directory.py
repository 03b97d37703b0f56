"""Read cron files from a plain folder (no Git): what ``cronctl validate PATH...`` reads.

Every file is checked by its real path: anything that resolves outside ``root`` (through a
symlink anywhere on the way) is refused, never read. Symlinks inside ``root`` are followed;
a symlink to a folder being walked or to one containing it (``up -> ..``, a cycle) is
refused alone, and the walk goes on. Only regular files are opened, so a FIFO named
``x.yaml`` cannot block the reader.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from reconciler.adapters.gitsource.collect import (
    DANGLING,
    LOOP,
    MAX_FILE_BYTES,
    NOT_REGULAR,
    OUTSIDE,
    SnapshotBuilder,
    ancestor_loop,
    is_cron_name,
    is_hidden,
    join_key,
    size_refusal,
)
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.errors import SourceError


def read_directory(root: str, paths: Sequence[str]) -> Snapshot:
    """Read the cron files named by ``paths`` (files or folders) under ``root``.

    ``paths`` are relative to ``root`` or absolute inside it; folders are walked recursively
    for ``*.yaml``/``*.yml`` (hidden folders skipped); a file named explicitly is read
    whatever its suffix. Keys are relative to ``root`` with forward slashes; ``commit=None``.
    """
    walker = _DirectoryWalker(root)
    for given in paths:
        walker.read_given(given)
    for real, key, size in walker.found:
        walker.read_file(real, key, size)
    return walker.builder.build(None)


class _DirectoryWalker:
    def __init__(self, root: str) -> None:
        self.root = root
        self.abs_root = os.path.abspath(root)
        self.real_root = os.path.realpath(root)
        if not os.path.isdir(self.real_root):
            raise SourceError(f"{root} is not a directory")
        self.builder = SnapshotBuilder(root)
        self.found: list[tuple[str, str, int]] = []

    def read_given(self, given: str) -> None:
        key = self._key_of(given)
        full = os.path.join(self.abs_root, key) if key else self.abs_root
        if not os.path.lexists(full):
            raise SourceError(f"{given} does not exist")
        self._visit(full, key, ancestors=frozenset(), explicit=True)

    def _key_of(self, given: str) -> str:
        """The forward-slash key of a given path, relative to root ("" for root itself)."""
        absolute = os.path.normpath(os.path.join(self.abs_root, given))
        for base, candidate in ((self.abs_root, absolute),
                                (self.real_root, os.path.realpath(absolute))):
            rel = os.path.relpath(candidate, base)
            if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                return "" if rel == os.curdir else rel.replace(os.sep, "/")
        raise SourceError(f"{given} is outside {self.root}")

    def _inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root.rstrip(os.sep) + os.sep)

    def _visit(self, full: str, key: str, ancestors: frozenset[str], explicit: bool) -> None:
        name = os.path.basename(full)
        counts = explicit or is_cron_name(name)
        real = os.path.realpath(full)
        if not self._inside(real):
            if counts or os.path.isdir(full):
                self._refuse(key, OUTSIDE, counts)
            return
        try:
            st = os.stat(full)
        except OSError as exc:
            if counts or os.path.islink(full):
                self._refuse(key, LOOP if exc.errno == errno.ELOOP else DANGLING, counts)
            return
        if stat.S_ISDIR(st.st_mode):
            if any(_contains(real, folder) for folder in ancestors):
                target = os.readlink(full) if os.path.islink(full) else full
                self._refuse(key, ancestor_loop(target), counts)
                return
            self._walk(full, key, ancestors | {real})
        elif counts:
            self.builder.count(key)
            if stat.S_ISREG(st.st_mode):
                self.found.append((real, key, st.st_size))  # read once the walk is done
            else:
                self.builder.refuse(key, NOT_REGULAR)

    def _walk(self, folder: str, key: str, ancestors: frozenset[str]) -> None:
        """Walk ``folder``; ``ancestors``: the real paths of the folders being walked."""
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            full = os.path.join(folder, name)
            if os.path.isdir(full):
                if not is_hidden(name):
                    self._visit(full, join_key(key, name), ancestors, explicit=False)
            elif is_cron_name(name) or os.path.islink(full):
                self._visit(full, join_key(key, name), ancestors, explicit=False)

    def _refuse(self, key: str, message: str, counted: bool) -> None:
        if counted:
            self.builder.count(key)
        self.builder.refuse(key, message)

    def read_file(self, real: str, key: str, size: int) -> None:
        refusal = size_refusal(size)
        if refusal is None:
            with open(real, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
            refusal = size_refusal(len(data))
        if refusal is None:
            self.builder.add(key, data)
        else:
            self.builder.refuse(key, refusal)


def _contains(outer: str, inner: str) -> bool:
    """Whether the real path ``outer`` is ``inner`` or one of its parents."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)
