"""The Git source: cron files read from a commit (or from a plain folder, for ``validate``).

- ``read_directory(root, paths)``: a plain folder, no Git needed (``gitsource.directory``).
- ``read_git(repo, ref, path, cache_dir)``: the files under ``path`` at one commit, read
  straight from the object database (``gitsource.tree``); nobody's working tree or index is
  touched. A remote is kept as a bare mirror in ``cache_dir``, cloned once and fetched on
  every call under a lock (``gitsource.mirror``).

Whole-source failures (a repository form that is not accepted, unreachable remote, unknown
ref, ``path`` missing at the commit, not a repository, too many files) raise ``SourceError``:
a caller must then change nothing. Single files that are refused (symlink leaving the repo or
looping back to a folder that contains it, too large) go to
``Snapshot.refused`` and hold back only their own cron. No YAML is parsed here.
"""

from __future__ import annotations

import os

import git

from reconciler.adapters.gitsource.blobs import BlobCache
from reconciler.adapters.gitsource.collect import MAX_FILE_BYTES, MAX_FILES, SnapshotBuilder
from reconciler.adapters.gitsource.directory import read_directory
from reconciler.adapters.gitsource.mirror import (
    ACCEPTED_FORMS,
    DEFAULT_TIMEOUT,
    check_repo,
    default_cache_dir,
    is_remote,
    locked_mirror,
    redact,
)
from reconciler.adapters.gitsource.tree import read_tree
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.errors import SourceError

__all__ = ["ACCEPTED_FORMS", "MAX_FILES", "MAX_FILE_BYTES", "BlobCache", "check_repo",
           "is_remote",
           "read_directory", "read_git"]


def read_git(repo: str, ref: str | None, path: str, cache_dir: str | None = None, *,
             timeout: float = DEFAULT_TIMEOUT, blobs: BlobCache | None = None) -> Snapshot:
    """The cron files under ``path`` at ``ref`` of ``repo``, with the full commit SHA.

    ``repo`` is a local working copy or bare repository, or a remote URL (https://, ssh://,
    git://, file://, or scp-like user@host:path); any other form (``http://``, ``ext::``,
    ``fd::``...) is refused with ``SourceError`` before git runs (``check_repo``). ``ref`` is
    a branch, tag or commit SHA (full or short); ``None`` is HEAD of a local repo or the
    remote's default branch. ``timeout`` bounds each network operation (clone, fetch) in
    seconds. Keys are relative to the repo root. ``blobs``: file bytes by blob id kept
    between calls (``BlobCache``): a new commit then reads only the blobs that changed.
    """
    check_repo(repo)
    if is_remote(repo):
        cache = cache_dir if cache_dir is not None else default_cache_dir()
        with locked_mirror(repo, cache, timeout=timeout, refresh_head=ref is None) as mirror:
            return _read_commit(mirror, ref, path, label=redact(repo), blobs=blobs)
    return _read_commit(repo, ref, path, label=os.path.abspath(repo), blobs=blobs)


_STATES = (("?", "untracked"), ("U", "unmerged"), ("D", "deleted"), ("R", "renamed"),
           ("C", "copied"), ("A", "added"))


def uncommitted_changes(repo: str, path: str) -> list[tuple[str, str]]:
    """Files under ``path`` of a local working tree that differ from its HEAD commit, as
    ``(state, file)``: ``modified``, ``added``, ``deleted``, ``renamed``, ``untracked``...
    (staged or not; ignored files left out). Empty for a remote, a bare repository, a plain
    folder, or when git cannot tell: reconcile reads commits only, and this is only to warn."""
    if is_remote(repo) or not os.path.exists(os.path.join(repo, ".git")):
        return []
    try:
        with git.Repo(repo) as repository:
            if repository.bare:
                return []
            out = repository.git.status("--porcelain=v1", "-z", "--untracked-files=all",
                                        "--", f":(literal){path}")
    except (git.GitError, OSError, ValueError):
        return []
    changes = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        code, file = entry[:2], entry[3:]
        state = next((name for mark, name in _STATES if mark in code), "modified")
        if code[0] in "RC":
            next(entries, None)  # the source path of a rename or copy
        changes.append((state, file))
    return sorted(changes, key=lambda change: change[1])


def _read_commit(location: str, ref: str | None, path: str, label: str,
                 blobs: BlobCache | None = None) -> Snapshot:
    try:
        repository = git.Repo(location)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SourceError(f"{label} is not a git repository") from None
    with repository:
        try:
            commit = _resolve(repository, ref, label)
            builder = SnapshotBuilder(f"{path} at commit {commit.hexsha[:7]}")
            read_tree(commit.tree, path, commit.hexsha, builder, blobs)
        except git.GitError as exc:
            raise SourceError(f"cannot read {label}: {_one_line(exc)}") from None
    return builder.build(commit.hexsha)


def _resolve(repository: git.Repo, ref: str | None, label: str) -> git.Commit:
    name = "HEAD" if ref is None else ref.strip()
    if not name or name.startswith("-"):
        raise SourceError(f"unknown ref {ref!r} in {label}")
    try:
        return repository.commit(name)
    except (git.BadName, git.BadObject, ValueError, IndexError, KeyError, TypeError):
        if ref is None:
            raise SourceError(f"{label} has no commit at HEAD") from None
        raise SourceError(f"unknown ref {ref!r} in {label}") from None


def _one_line(exc: BaseException) -> str:
    stderr = getattr(exc, "stderr", "") or ""
    text = str(stderr).strip() or str(exc)
    return " ".join(text.split())[:300]
