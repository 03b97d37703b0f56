"""Remote repositories kept as bare mirrors in a cache folder.

Only the accepted forms reach git (``check_repo``): https://, ssh://, git://, file:// URLs and
scp-like ``user@host:path``; git is also told to use no other protocol (``GIT_ALLOW_PROTOCOL``).
A remote URL maps to ``<cache_dir>/<sha256 of url>``: cloned the first time into a side
folder then renamed into place, so a failed clone never leaves a half mirror; fetched
(``--prune``) on every use. Branches and tags are mirrored, not the host's other refs (such
as ``refs/pull/*``). Every clone/fetch runs with a timeout and without prompting for
credentials. An exclusive ``flock`` on ``<mirror>.lock`` is held while the
mirror is updated and read, so threads and processes sharing a cache never corrupt it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.errors import SourceError

DEFAULT_TIMEOUT = 120.0
ACCEPTED_SCHEMES = ("https", "ssh", "git", "file")
ACCEPTED_FORMS = ("a local path, an https://, ssh://, git:// or file:// URL, "
                  "or user@host:path")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)
_INSTEAD = {"http": "https://", "git+ssh": "ssh://", "ssh+git": "ssh://"}
# scp-like: [user@]host:path, the host a name or [IPv6]. ``name::address`` (a path starting
# with ':') is git's syntax for a remote helper: ``ext::`` runs a command, ``fd::`` reads a
# file descriptor.
_SCP = re.compile(r"(?:[A-Za-z0-9._~+%][A-Za-z0-9._~+%-]*@)?"
                  r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\]):[^:].*", re.DOTALL)
_HELPER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FETCH_HEADS = "+refs/heads/*:refs/heads/*"
_FETCH_TAGS = "+refs/tags/*:refs/tags/*"
_CREDENTIALS = re.compile(r"(?<=://)([^/@:]+):[^/@]*@")
# What git itself may use, whatever a URL, a redirect or a config says.
_GIT_ALLOW_PROTOCOL = ":".join(ACCEPTED_SCHEMES)


def is_remote(repo: str) -> bool:
    """Whether ``repo`` is a URL to mirror rather than a local path.

    Git's own rule: a URL scheme, or scp-like ``[user@]host:path`` (a colon with no slash
    before it); anything else is a local path. Whether the URL is accepted is
    ``check_repo``'s answer.
    """
    if _SCHEME.match(repo):
        return True
    host, colon, _ = repo.partition(":")
    return bool(colon and host and "/" not in host)


def check_repo(repo: str) -> None:
    """Refuse, before git runs, any repository but the accepted forms: a local path,
    ``https://``, ``ssh://``, ``git://`` or ``file://`` URLs, or scp-like ``user@host:path``.

    Git itself would also run other transports: ``ext::<command>`` runs a command,
    ``fd::<n>`` talks over a file descriptor (and waits forever on one nobody writes), other
    ``<name>::`` and ``<name>://`` start a ``git-remote-<name>`` program, and plain ``http://``
    is neither encrypted nor authenticated. Raises ``SourceError`` naming the accepted forms.
    """
    shown = _shown(repo)
    if _CONTROL.search(repo):
        raise SourceError(f"{shown} is refused: it contains a control character "
                          f"(use {ACCEPTED_FORMS})")
    if not is_remote(repo):
        return
    scheme = _SCHEME.match(repo)
    if scheme:
        name, rest = scheme.group(1), scheme.group(2)
        if name not in ACCEPTED_SCHEMES:
            instead = f"use {_INSTEAD[name]} instead; " if name in _INSTEAD else ""
            raise SourceError(f"{shown} is refused: the {name}:// transport is not accepted "
                              f"({instead}accepted: {ACCEPTED_FORMS})")
        host = rest.split("/", 1)[0].rpartition("@")[2]
        if host.startswith("-") or (name != "file" and not host):
            raise SourceError(f"{shown} is refused: no valid host (use {ACCEPTED_FORMS})")
        return
    helper, double_colon, _ = repo.partition("::")
    if double_colon and _HELPER.fullmatch(helper):
        raise SourceError(f"{shown} is refused: the {helper}:: transport is not accepted "
                          f"(use {ACCEPTED_FORMS})")
    if not _SCP.fullmatch(repo):
        raise SourceError(f"{shown} is refused: not a repository form cronctl accepts (use "
                          f"{ACCEPTED_FORMS}; start a local path containing ':' with ./)")


def _shown(repo: str) -> str:
    """``repo`` fit for a message: credentials hidden, control characters escaped."""
    text = redact(repo)
    return repr(text) if _CONTROL.search(text) else text


def redact(url: str) -> str:
    """The URL with any password/token replaced, fit for messages and logs."""
    return _CREDENTIALS.sub(r"\1:***@", url)


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/cronctl/repos``, else ``~/.cache/cronctl/repos``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cronctl", "repos")


def mirror_path(url: str, cache_dir: str) -> str:
    """Where the mirror of ``url`` lives."""
    return os.path.join(cache_dir, hashlib.sha256(url.encode("utf-8")).hexdigest())


@contextmanager
def locked_mirror(url: str, cache_dir: str, *, timeout: float = DEFAULT_TIMEOUT,
                  refresh_head: bool = False) -> Iterator[str]:
    """Yield the path of an up-to-date bare mirror of ``url``, holding its lock meanwhile.

    ``refresh_head`` also points the mirror's HEAD at the remote's current default branch.
    Raises ``SourceError`` naming the URL with git's reason when the remote cannot be reached.
    """
    check_repo(url)
    mirror = mirror_path(url, cache_dir)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        lock = open(mirror + ".lock", "a")  # closed by the with below
    except OSError as exc:
        raise SourceError(f"cannot use the cache folder {cache_dir}: {exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.path.isfile(os.path.join(mirror, "HEAD")):
                _git(url, timeout, "-C", mirror, "fetch", "--prune", "--quiet", "origin")
                if refresh_head:
                    _refresh_head(url, mirror, timeout)
            else:
                _clone(url, mirror, timeout)
            yield mirror
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _clone(url: str, mirror: str, timeout: float) -> None:
    """A bare repository whose branches and tags mirror the remote's (not ``refs/pull/*``)."""
    partial = mirror + ".partial"
    for leftover in (partial, mirror):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        _git(url, timeout, "init", "--quiet", "--bare", partial)
        _git(url, timeout, "-C", partial, "remote", "add", "origin", url)
        _git(url, timeout, "-C", partial, "config", "remote.origin.fetch", _FETCH_HEADS)
        _git(url, timeout, "-C", partial, "config", "--add", "remote.origin.fetch", _FETCH_TAGS)
        _git(url, timeout, "-C", partial, "fetch", "--prune", "--quiet", "origin")
        _refresh_head(url, partial, timeout)
        os.rename(partial, mirror)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _refresh_head(url: str, mirror: str, timeout: float) -> None:
    listing = _git(url, timeout, "-C", mirror, "ls-remote", "--symref", "origin", "HEAD")
    for line in listing.splitlines():
        if line.startswith("ref: ") and line.endswith("\tHEAD"):
            branch = line[len("ref: "):-len("\tHEAD")]
            _git(url, timeout, "-C", mirror, "symbolic-ref", "HEAD", branch)
            return


def _git(url: str, timeout: float, *args: str) -> str:
    # No prompt can block: no terminal (new session, stdin closed), no password prompt.
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="true", LC_ALL="C",
               GIT_ALLOW_PROTOCOL=_GIT_ALLOW_PROTOCOL)
    verb = args[2] if args[0] == "-C" else args[0]
    try:
        process = subprocess.Popen(["git", *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=env, start_new_session=True)
    except OSError as exc:
        raise SourceError(f"cannot reach {redact(url)}: cannot run git: {exc}") from None
    with process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The whole group: git's helpers (ssh, git-remote-https) hold the pipes too.
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise SourceError(
                f"cannot reach {redact(url)}: git {verb} timed out after {timeout:g}s") from None
    if process.returncode != 0:
        raise SourceError(f"cannot reach {redact(url)}: {_reason(stderr)}")
    return stdout


def _reason(stderr: str) -> str:
    """Git's reason in one line: the first ``fatal:``/``error:`` line, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        for prefix in ("fatal: ", "error: "):
            if line.startswith(prefix):
                return redact(line[len(prefix):])
    return redact(lines[-1]) if lines else "git failed without a message"
