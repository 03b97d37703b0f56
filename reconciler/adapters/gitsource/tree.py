"""Walk one commit's tree and read the cron files from blobs (never a working tree).

Symlinks are resolved inside the tree the way POSIX resolves paths: component by component,
a symlink's target replacing it relative to its own (physical) folder, ``..`` going up.
A target that is absolute or climbs above the repo root is refused; so are dangling links
and chains longer than ``MAX_SYMLINK_HOPS`` (cycles). A symlinked folder inside the repo is
walked under the symlink's own path, unless it is or contains a folder being walked (such as
``up -> ..``): that link alone is refused as a loop, and the walk goes on.
Submodules are skipped: their content is not in this repository.
"""

from __future__ import annotations

from dataclasses import dataclass

import git

from reconciler.adapters.gitsource.blobs import BlobCache
from reconciler.adapters.gitsource.collect import (
    DANGLING,
    LOOP,
    MAX_SYMLINK_HOPS,
    OUTSIDE,
    SnapshotBuilder,
    ancestor_loop,
    is_cron_name,
    is_hidden,
    join_key,
    size_refusal,
)
from reconciler.errors import SourceError

_LINK_MODE = 0o120000
_TYPE_MASK = 0o170000


class _Unresolvable(Exception):
    """A path that cannot be resolved in the tree; the message is the refusal."""


@dataclass(frozen=True)
class _Resolved:
    obj: git.Object
    physical: tuple[str, ...]


def _is_link(obj: git.Object) -> bool:
    return obj.type == "blob" and (obj.mode & _TYPE_MASK) == _LINK_MODE


def _split(path: str) -> list[str]:
    return [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]


_Index = dict[bytes, dict[str, git.Object]]


def _lookup(root: git.Tree, parts: list[str], index: _Index) -> git.Object | None:
    """The object at ``parts`` below ``root``; ``index`` caches each tree's entries by name."""
    current: git.Object = root
    for part in parts:
        if current.type != "tree":
            return None
        entries = index.get(current.binsha)
        if entries is None:
            entries = index[current.binsha] = {item.name: item for item in current}
        found = entries.get(part)
        if found is None:
            return None
        current = found
    return current


def _link_text(link: git.Blob) -> str:
    return link.data_stream.read().decode("utf-8", "surrogateescape")


def _link_target(link: git.Blob) -> list[str]:
    target = _link_text(link)
    if not target:
        raise _Unresolvable(DANGLING)
    if target.startswith(("/", "\\")) or target[1:3] in (":/", ":\\"):  # absolute
        raise _Unresolvable(OUTSIDE)
    return target.replace("\\", "/").split("/")


def resolve(root: git.Tree, base: tuple[str, ...], parts: list[str],
            index: _Index | None = None) -> _Resolved:
    """Resolve ``parts`` relative to the folder ``base`` (physical components) in ``root``."""
    index = {} if index is None else index
    pending = list(reversed(parts))
    current = list(base)
    hops = 0
    obj: git.Object = _lookup(root, current, index) or root
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            if not current:
                raise _Unresolvable(OUTSIDE)
            current.pop()
            obj = _lookup(root, current, index) or root
            continue
        found = _lookup(root, [*current, name], index)
        if found is None:
            raise _Unresolvable(DANGLING)
        if _is_link(found):
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise _Unresolvable(LOOP)
            pending.extend(reversed(_link_target(found)))
            continue
        current.append(name)
        obj = found
    return _Resolved(obj, tuple(current))


def read_tree(root: git.Tree, path: str, commit: str, builder: SnapshotBuilder,
              blobs: BlobCache | None = None) -> None:
    """Add the cron files under ``path`` of the commit whose tree is ``root`` to ``builder``.
    ``blobs``: bytes of blobs read before, by blob id: only the others are read, and only
    the blobs of this tree are kept in it afterwards.

    Raises ``SourceError`` when ``path`` does not exist at that commit (the caller must then
    delete nothing).
    """
    parts = _split(path)
    if ".." in parts:
        raise SourceError(f"{path} must stay inside the repository")
    try:
        start = resolve(root, (), parts)
    except _Unresolvable:
        start = None
    if start is None or start.obj.type not in ("tree", "blob"):
        raise SourceError(f"{path} does not exist at commit {commit[:7]}")
    key = "/".join(parts)
    walker = _TreeWalker(root, builder)
    if start.obj.type == "tree":
        walker.walk(start, key, ())
    else:
        walker.take(start.obj, key)
    for blob, blob_key in walker.found:
        _read_blob(blob, blob_key, builder, blobs)
    if blobs is not None:
        blobs.retain({blob.binsha for blob, _ in walker.found})


class _TreeWalker:
    def __init__(self, root: git.Tree, builder: SnapshotBuilder) -> None:
        self.root = root
        self.builder = builder
        self.found: list[tuple[git.Blob, str]] = []
        self.index: _Index = {}

    def take(self, blob: git.Blob, key: str) -> None:
        """Count a cron file now (the limit stops the walk early); read it after the walk."""
        self.builder.count(key)
        self.found.append((blob, key))

    def walk(self, folder: _Resolved, key: str,
             ancestors: tuple[tuple[str, ...], ...]) -> None:
        """Walk ``folder``; ``ancestors``: the physical paths of the folders being walked."""
        ancestors = (*ancestors, folder.physical)
        for item in folder.obj:
            item_key = join_key(key, item.name)
            physical = (*folder.physical, item.name)
            if item.type == "tree":
                if not is_hidden(item.name):
                    self.walk(_Resolved(item, physical), item_key, ancestors)
            elif _is_link(item):
                self._follow(item, folder.physical, item_key, ancestors)
            elif item.type == "blob" and is_cron_name(item.name):
                self.take(item, item_key)

    def _follow(self, link: git.Blob, base: tuple[str, ...], key: str,
                ancestors: tuple[tuple[str, ...], ...]) -> None:
        cron = is_cron_name(link.name)
        try:
            target = resolve(self.root, base, [link.name], self.index)
        except _Unresolvable as refusal:
            self._refuse(key, str(refusal), cron)
            return
        if target.obj.type == "tree":
            where = target.physical
            if any(folder[:len(where)] == where for folder in ancestors):
                self._refuse(key, ancestor_loop(_link_text(link)), cron)
            elif not is_hidden(link.name):
                self.walk(target, key, ancestors)
        elif target.obj.type == "blob" and cron:
            self.take(target.obj, key)

    def _refuse(self, key: str, message: str, counted: bool) -> None:
        if counted:
            self.builder.count(key)
        self.builder.refuse(key, message)


def _read_blob(blob: git.Blob, key: str, builder: SnapshotBuilder,
               blobs: BlobCache | None) -> None:
    # A remembered blob was within the size limit when it was read (the limit is fixed).
    data = blobs.lookup(blob.binsha) if blobs is not None else None
    if data is not None:
        builder.add(key, data)
        return
    refusal = size_refusal(blob.size)
    if refusal is None:
        data = blob.data_stream.read()
        builder.add(key, data)
        if blobs is not None:
            blobs.put(blob.binsha, data)
    else:
        builder.refuse(key, refusal)
