"""The Git source adapter against real folders and real Git repositories in tmp_path."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from reconciler.adapters.gitsource import reader as gitsource
from reconciler.adapters.gitsource.mirror import mirror_path
from reconciler.adapters.gitsource.reader import read_directory, read_git
from reconciler.core.cronfile.diagnostics import Diagnostic
from reconciler.errors import SourceError

JOB = b'schedule: "rate(5 minutes)"\ncontainer:\n  image: busybox\n'
OUTSIDE = "symlink points outside the repository"


def write(root: Path, relative: str, data: bytes | str = JOB) -> Path:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode() if isinstance(data, str) else data)
    return target


def refusals(snapshot) -> dict[str, str]:
    return {d.file: d.message for d in snapshot.refused}


# --- read_directory ---------------------------------------------------------------------------

def test_directory_walks_subfolders_and_ignores_other_files(tmp_path):
    write(tmp_path, "crons.d/a.yaml", b"a")
    write(tmp_path, "crons.d/team/b.yml", b"b")
    write(tmp_path, "crons.d/team/deep/c.YAML", b"c")
    write(tmp_path, "crons.d/README.md", b"not a cron")
    write(tmp_path, "crons.d/team/notes.txt", b"not a cron")
    write(tmp_path, "crons.d/.hidden/skipped.yaml", b"hidden")
    write(tmp_path, "elsewhere.yaml", b"not under the path")

    snapshot = read_directory(str(tmp_path), ["crons.d"])

    assert snapshot.commit is None
    assert snapshot.files == {
        "crons.d/a.yaml": b"a", "crons.d/team/b.yml": b"b", "crons.d/team/deep/c.YAML": b"c"}
    assert snapshot.refused == ()


def test_directory_accepts_files_absolute_paths_and_the_root(tmp_path):
    write(tmp_path, "crons.d/a.yaml", b"a")
    write(tmp_path, "other/b.yaml", b"b")
    write(tmp_path, "named.txt", b"named explicitly")

    snapshot = read_directory(str(tmp_path), [str(tmp_path / "other"), "crons.d/a.yaml",
                                              "named.txt"])
    assert snapshot.files == {"other/b.yaml": b"b", "crons.d/a.yaml": b"a",
                              "named.txt": b"named explicitly"}

    everything = read_directory(str(tmp_path), ["."])
    assert set(everything.files) == {"crons.d/a.yaml", "other/b.yaml"}


@pytest.mark.parametrize("given", ["missing", "../outside", "/etc"])
def test_directory_rejects_missing_or_outside_paths(tmp_path, given):
    write(tmp_path, "crons.d/a.yaml")
    with pytest.raises(SourceError, match="does not exist|is outside"):
        read_directory(str(tmp_path / "crons.d"), [given])


def test_directory_refuses_symlinks_leaving_the_root_and_follows_inner_ones(tmp_path):
    root = tmp_path / "repo"
    secret = write(tmp_path, "secret.yaml", b"secret")
    write(tmp_path, "outside/dir/x.yaml", b"outside dir")
    write(root, "crons.d/a.yaml", b"a")
    write(root, "shared/common.yaml", b"common")
    write(root, "shared/sub/deep.yaml", b"deep")
    (root / "crons.d/leak.yaml").symlink_to(secret)
    (root / "crons.d/relative-leak.yaml").symlink_to("../../secret.yaml")
    (root / "crons.d/leak-dir").symlink_to(tmp_path / "outside/dir")
    (root / "crons.d/common.yaml").symlink_to("../shared/common.yaml")
    (root / "crons.d/shared").symlink_to("../shared")
    (root / "crons.d/dangling.yaml").symlink_to("nowhere.yaml")
    (root / "crons.d/loop").symlink_to(".")
    (root / "crons.d/self.yaml").symlink_to("self.yaml")

    snapshot = read_directory(str(root), ["crons.d"])

    assert snapshot.files == {
        "crons.d/a.yaml": b"a",
        "crons.d/common.yaml": b"common",
        "crons.d/shared/common.yaml": b"common",
        "crons.d/shared/sub/deep.yaml": b"deep",
    }
    refused = refusals(snapshot)
    assert refused["crons.d/leak.yaml"] == OUTSIDE
    assert refused["crons.d/relative-leak.yaml"] == OUTSIDE
    assert refused["crons.d/leak-dir"] == OUTSIDE
    assert "does not exist" in refused["crons.d/dangling.yaml"]
    assert "loop" in refused["crons.d/loop"]
    assert "loop" in refused["crons.d/self.yaml"]
    assert all(isinstance(d, Diagnostic) and (d.line, d.column, d.field) == (1, 1, "")
               for d in snapshot.refused)
    assert secret.read_bytes() == b"secret"


def test_directory_refuses_a_symlinked_root_path_leaving_it(tmp_path):
    root = tmp_path / "repo"
    write(tmp_path, "outside/x.yaml", b"x")
    root.mkdir()
    (root / "crons.d").symlink_to(tmp_path / "outside")

    snapshot = read_directory(str(root), ["crons.d"])

    assert snapshot.files == {}
    assert refusals(snapshot) == {"crons.d": OUTSIDE}


def test_directory_refuses_oversized_files_and_reads_the_others(tmp_path):
    write(tmp_path, "crons.d/big.yaml", b"#" * (300 * 1024))
    write(tmp_path, "crons.d/edge.yaml", b"#" * (256 * 1024))
    write(tmp_path, "crons.d/small.yaml", b"small")

    snapshot = read_directory(str(tmp_path), ["crons.d"])

    assert set(snapshot.files) == {"crons.d/edge.yaml", "crons.d/small.yaml"}
    assert refusals(snapshot) == {"crons.d/big.yaml": "file is 300 KiB; the limit is 256 KiB"}


def test_directory_refuses_a_fifo_without_blocking(tmp_path):
    write(tmp_path, "crons.d/a.yaml", b"a")
    os.mkfifo(tmp_path / "crons.d/pipe.yaml")

    snapshot = read_directory(str(tmp_path), ["crons.d"])

    assert snapshot.files == {"crons.d/a.yaml": b"a"}
    assert refusals(snapshot) == {"crons.d/pipe.yaml": "not a regular file"}


def test_directory_with_too_many_files_is_refused_whole(tmp_path, monkeypatch):
    one = write(tmp_path, "crons.d/c.yaml", b"x")
    for index in range(gitsource.MAX_FILES):  # hard links: 10,001 entries, fast to make
        os.link(one, tmp_path / f"crons.d/c{index}.yaml")
    with pytest.raises(SourceError, match="more than 10000 cron files"):
        read_directory(str(tmp_path), ["crons.d"])

    monkeypatch.setattr("reconciler.adapters.gitsource.collect.MAX_FILES", 3)
    for index in range(3):
        write(tmp_path, f"few/sub{index}/c.yaml")
    assert len(read_directory(str(tmp_path), ["few"]).files) == 3
    write(tmp_path, "few/c.yml")
    with pytest.raises(SourceError, match="more than 3 cron files"):
        read_directory(str(tmp_path), ["few"])


# --- read_git: helpers ------------------------------------------------------------------------

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=stdin,
                          capture_output=True, check=True)
    return done.stdout.decode().strip()


def new_repo(path: Path, bare: bool = False) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main", *(["--bare"] if bare else []))
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A working copy with two commits, a branch, two tags, and a dirty working tree.

    Shared by the tests of this module, which only read it (and check it stays untouched).
    """
    repo = new_repo(tmp_path_factory.mktemp("history") / "work")
    write(repo, "crons.d/a.yaml", "a: v1\n")
    write(repo, "crons.d/team/b.yaml", "b: v1\n")
    write(repo, "README.md", "readme\n")
    first = commit_all(repo, "first")
    git(repo, "tag", "v1")
    git(repo, "branch", "feature")
    write(repo, "crons.d/a.yaml", "a: v2\n")
    (repo / "crons.d/team/b.yaml").unlink()
    write(repo, "crons.d/c.yaml", "c: v2\n")
    second = commit_all(repo, "second")
    git(repo, "tag", "-a", "v2", "-m", "annotated")
    git(repo, "checkout", "--quiet", "feature")
    write(repo, "crons.d/feature.yaml", "f: feature\n")
    feature = commit_all(repo, "feature")
    git(repo, "checkout", "--quiet", "main")
    # Uncommitted work: staged, modified and untracked; none of it may leak or be touched.
    write(repo, "crons.d/staged.yaml", "staged\n")
    git(repo, "add", "crons.d/staged.yaml")
    write(repo, "crons.d/a.yaml", "a: uncommitted\n")
    write(repo, "crons.d/untracked.yaml", "untracked\n")
    return repo, {"first": first, "second": second, "feature": feature}


# --- read_git: local repositories -------------------------------------------------------------

AT_FIRST = {"crons.d/a.yaml": b"a: v1\n", "crons.d/team/b.yaml": b"b: v1\n"}
AT_SECOND = {"crons.d/a.yaml": b"a: v2\n", "crons.d/c.yaml": b"c: v2\n"}
AT_FEATURE = {**AT_FIRST, "crons.d/feature.yaml": b"f: feature\n"}


@pytest.mark.parametrize("ref, commit, files", [
    (None, "second", AT_SECOND),
    ("HEAD", "second", AT_SECOND),
    ("main", "second", AT_SECOND),
    ("feature", "feature", AT_FEATURE),
    ("v1", "first", AT_FIRST),
    ("v2", "second", AT_SECOND),
    ("short:first", "first", AT_FIRST),
    ("full:first", "first", AT_FIRST),
    ("HEAD~1", "first", AT_FIRST),
])
def test_local_repo_reads_files_as_of_the_commit(history, ref, commit, files):
    repo, shas = history
    if ref and ":" in ref:
        kind, name = ref.split(":")
        ref = shas[name][:7] if kind == "short" else shas[name]
    status_before = git(repo, "status", "--porcelain")
    index_before = (repo / ".git/index").read_bytes()

    snapshot = read_git(str(repo), ref, "crons.d")

    assert snapshot.commit == shas[commit]
    assert snapshot.files == files
    assert snapshot.refused == ()
    assert git(repo, "status", "--porcelain") == status_before
    assert (repo / ".git/index").read_bytes() == index_before
    assert (repo / "crons.d/a.yaml").read_text() == "a: uncommitted\n"
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_bare_local_repo_and_single_file_and_root_paths(tmp_path, history):
    work, shas = history
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))

    assert read_git(str(bare), None, "crons.d").files == AT_SECOND
    single = read_git(str(bare), "v1", "crons.d/team/b.yaml")
    assert single.files == {"crons.d/team/b.yaml": b"b: v1\n"}
    whole = read_git(str(bare), "v1", ".")
    assert whole.files == AT_FIRST
    assert whole.commit == shas["first"]


def test_path_missing_at_the_commit_is_a_source_error(history):
    repo, shas = history
    with pytest.raises(SourceError) as raised:
        read_git(str(repo), "v1", "crons.d/nothing")
    assert str(raised.value) == f"crons.d/nothing does not exist at commit {shas['first'][:7]}"
    with pytest.raises(SourceError, match="does not exist at commit"):
        read_git(str(repo), "v1", "README.md/sub")


@pytest.mark.parametrize("ref", ["no-such-branch", "deadbeef", "v9", "-p", "main..feature"])
def test_unknown_ref_is_named(history, ref):
    repo, _ = history
    with pytest.raises(SourceError, match="unknown ref") as raised:
        read_git(str(repo), ref, "crons.d")
    assert repr(ref) in str(raised.value)


def test_errors_name_a_relative_repo_by_its_absolute_path(history, monkeypatch):
    repo, _ = history
    monkeypatch.chdir(repo)
    with pytest.raises(SourceError) as raised:
        read_git(".", "no-such-branch", "crons.d")
    assert str(raised.value) == f"unknown ref 'no-such-branch' in {repo}"


def test_a_folder_that_is_not_a_repository(tmp_path):
    write(tmp_path, "plain/crons.d/a.yaml")
    for path in (tmp_path / "plain", tmp_path / "missing"):
        with pytest.raises(SourceError, match="is not a git repository"):
            read_git(str(path), None, "crons.d")


def test_empty_repository_has_no_head(tmp_path):
    repo = new_repo(tmp_path / "empty")
    with pytest.raises(SourceError, match="no commit at HEAD"):
        read_git(str(repo), None, "crons.d")


# --- read_git: symlinks, sizes, counts --------------------------------------------------------

def test_git_symlinks_leaving_the_repo_are_refused_and_inner_ones_followed(tmp_path):
    repo = new_repo(tmp_path / "repo")
    write(tmp_path, "secret.yaml", b"secret")
    write(repo, "crons.d/a.yaml", b"a")
    write(repo, "shared/common.yaml", b"common")
    write(repo, "shared/sub/deep.yaml", b"deep")
    links = {
        "crons.d/leak.yaml": "/etc/passwd",
        "crons.d/relative-leak.yaml": "../../secret.yaml",
        "crons.d/leak-dir": "../..",
        "crons.d/common.yaml": "../shared/common.yaml",
        "crons.d/shared": "../shared",
        "crons.d/chain.yaml": "shared/sub/deep.yaml",
        "crons.d/notes": "../shared/common.yaml",
        "crons.d/dangling.yaml": "nowhere.yaml",
        "crons.d/loop": ".",
        "crons.d/self.yaml": "self.yaml",
    }
    for link, target in links.items():
        os.symlink(target, repo / link)
    sha = commit_all(repo, "links")
    assert git(repo, "ls-files", "-s", "crons.d/leak.yaml").startswith("120000")

    snapshot = read_git(str(repo), None, "crons.d")

    assert snapshot.commit == sha
    assert snapshot.files == {
        "crons.d/a.yaml": b"a",
        "crons.d/common.yaml": b"common",
        "crons.d/chain.yaml": b"deep",
        "crons.d/shared/common.yaml": b"common",
        "crons.d/shared/sub/deep.yaml": b"deep",
    }
    refused = refusals(snapshot)
    assert refused["crons.d/leak.yaml"] == OUTSIDE
    assert refused["crons.d/relative-leak.yaml"] == OUTSIDE
    assert refused["crons.d/leak-dir"] == OUTSIDE
    assert "does not exist" in refused["crons.d/dangling.yaml"]
    assert "loop" in refused["crons.d/loop"]
    assert "loop" in refused["crons.d/self.yaml"]
    assert set(refused) == {"crons.d/leak.yaml", "crons.d/relative-leak.yaml", "crons.d/leak-dir",
                            "crons.d/dangling.yaml", "crons.d/loop", "crons.d/self.yaml"}


def test_git_cron_path_itself_a_symlink_leaving_the_repo_is_missing(tmp_path):
    repo = new_repo(tmp_path / "repo")
    write(tmp_path, "outside/x.yaml")
    os.symlink(str(tmp_path / "outside"), repo / "crons.d")
    sha = commit_all(repo, "link")
    with pytest.raises(SourceError, match=f"crons.d does not exist at commit {sha[:7]}"):
        read_git(str(repo), None, "crons.d")


def test_git_oversized_file_is_refused_and_the_others_read(tmp_path):
    repo = new_repo(tmp_path / "repo")
    write(repo, "crons.d/big.yaml", b"#" * (300 * 1024))
    write(repo, "crons.d/edge.yaml", b"#" * (256 * 1024))
    write(repo, "crons.d/small.yaml", b"small")
    commit_all(repo, "sizes")

    snapshot = read_git(str(repo), None, "crons.d")

    assert set(snapshot.files) == {"crons.d/edge.yaml", "crons.d/small.yaml"}
    assert snapshot.files["crons.d/small.yaml"] == b"small"
    assert refusals(snapshot) == {"crons.d/big.yaml": "file is 300 KiB; the limit is 256 KiB"}


def fast_import_commit(repo: Path, count: int, branch: str) -> None:
    """One commit on ``branch`` with ``count`` cron files (one shared blob), via fast-import."""
    lines = [b"blob", b"mark :1", b"data 2", b"x", b"",
             f"commit refs/heads/{branch}".encode(), b"mark :2",
             b"committer Test <test@example.com> 1700000000 +0000", b"data 4", b"many"]
    lines += [f"M 100644 :1 crons.d/c{index:05}.yaml".encode() for index in range(count)]
    lines += [b"", b""]
    git(repo, "fast-import", "--quiet", stdin=b"\n".join(lines))


def test_git_more_than_ten_thousand_cron_files_refuse_the_source(tmp_path, monkeypatch):
    repo = new_repo(tmp_path / "repo", bare=True)
    fast_import_commit(repo, gitsource.MAX_FILES + 1, "many")
    with pytest.raises(SourceError, match="more than 10000 cron files"):
        read_git(str(repo), "many", "crons.d")

    fast_import_commit(repo, 20, "some")
    monkeypatch.setattr("reconciler.adapters.gitsource.collect.MAX_FILES", 20)
    assert len(read_git(str(repo), "some", "crons.d").files) == 20
    monkeypatch.setattr("reconciler.adapters.gitsource.collect.MAX_FILES", 19)
    with pytest.raises(SourceError, match="more than 19 cron files"):
        read_git(str(repo), "some", "crons.d")


# --- read_git: remotes ------------------------------------------------------------------------

@pytest.fixture
def remote(tmp_path):
    """A bare origin reached by file:// URL, and a working clone that pushes to it."""
    origin = new_repo(tmp_path / "origin.git", bare=True)
    work = tmp_path / "pusher"
    git(tmp_path, "clone", "--quiet", str(origin), str(work))
    git(work, "checkout", "--quiet", "-b", "main")
    return origin, work, origin.as_uri()


def push(work: Path, relative: str, data: str, message: str, branch: str = "main") -> str:
    write(work, relative, data)
    sha = commit_all(work, message)
    git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
    return sha


def test_remote_is_mirrored_then_fetched_on_every_call(tmp_path, remote):
    origin, work, url = remote
    cache = tmp_path / "cache"
    first = push(work, "crons.d/a.yaml", "a: v1\n", "first")
    git(work, "push", "--quiet", "origin", "HEAD:refs/tags/v1")

    snapshot = read_git(url, None, "crons.d", cache_dir=str(cache))

    assert snapshot.commit == first
    assert snapshot.files == {"crons.d/a.yaml": b"a: v1\n"}
    mirror = Path(mirror_path(url, str(cache)))
    assert mirror.parent == cache and len(mirror.name) == 64
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"

    second = push(work, "crons.d/b.yaml", "b: v2\n", "second")
    snapshot = read_git(url, None, "crons.d", cache_dir=str(cache))
    assert snapshot.commit == second
    assert snapshot.files == {"crons.d/a.yaml": b"a: v1\n", "crons.d/b.yaml": b"b: v2\n"}
    assert read_git(url, "v1", "crons.d", cache_dir=str(cache)).commit == first
    assert read_git(url, first[:8], "crons.d", cache_dir=str(cache)).files == {
        "crons.d/a.yaml": b"a: v1\n"}
    assert sorted(path.name for path in cache.iterdir()) == [mirror.name, mirror.name + ".lock"]


def test_remote_default_branch_and_deleted_branches_follow_the_remote(tmp_path, remote):
    origin, work, url = remote
    cache = str(tmp_path / "cache")
    push(work, "crons.d/a.yaml", "on main\n", "main")
    other = push(work, "crons.d/a.yaml", "on other\n", "other", branch="other")
    assert read_git(url, "other", "crons.d", cache_dir=cache).commit == other

    git(origin, "symbolic-ref", "HEAD", "refs/heads/other")
    assert read_git(url, None, "crons.d", cache_dir=cache).files == {
        "crons.d/a.yaml": b"on other\n"}

    git(work, "push", "--quiet", "origin", "--delete", "main")
    with pytest.raises(SourceError, match="unknown ref 'main'"):
        read_git(url, "main", "crons.d", cache_dir=cache)


def test_unreachable_remotes_name_the_url_and_git_reason(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as raised:
        read_git("file:///nonexistent", None, "crons.d", cache_dir=str(cache))
    message = str(raised.value)
    assert message.startswith("cannot reach file:///nonexistent: ")
    assert "does not appear to be a git repository" in message
    assert "\n" not in message
    assert [path.name for path in cache.iterdir()] == [mirror_path("file:///nonexistent",
                                                                   str(cache))[-64:] + ".lock"]

    with pytest.raises(SourceError) as raised:
        read_git("https://deploy:s3cret@127.0.0.1:1/repo.git", None, "crons.d",
                 cache_dir=str(cache))
    assert "cannot reach https://deploy:***@127.0.0.1:1/repo.git: " in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_remote_that_vanishes_after_mirroring_is_an_error_not_stale_data(tmp_path, remote):
    origin, work, url = remote
    cache = str(tmp_path / "cache")
    push(work, "crons.d/a.yaml", "a\n", "first")
    assert read_git(url, None, "crons.d", cache_dir=cache).files
    origin.rename(tmp_path / "moved.git")
    with pytest.raises(SourceError, match="cannot reach file://"):
        read_git(url, None, "crons.d", cache_dir=cache)


def test_a_remote_that_never_answers_times_out(tmp_path):
    import socket
    with socket.socket() as listener:  # accepts connections in the backlog, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with pytest.raises(SourceError, match="timed out after 0.5s"):
            read_git(f"git://127.0.0.1:{port}/repo.git", "main", "crons.d",
                     cache_dir=str(tmp_path / "cache"), timeout=0.5)


def test_concurrent_readers_of_one_remote_share_the_mirror_safely(tmp_path, remote):
    origin, work, url = remote
    cache = str(tmp_path / "cache")
    sha = push(work, "crons.d/a.yaml", "a\n", "first")
    stop = threading.Event()
    results: list[object] = []

    def reader() -> None:
        for _ in range(3):
            if stop.is_set():
                return
            try:
                results.append(read_git(url, None, "crons.d", cache_dir=cache).commit)
            except Exception as exc:  # recorded and asserted on below
                results.append(exc)

    threads = [threading.Thread(target=reader, name=f"cronctl-test-reader-{index}")
               for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    stop.set()
    assert not any(thread.is_alive() for thread in threads)
    assert results == [sha] * 12


@pytest.mark.parametrize("repo, remote_", [
    ("https://github.com/org/repo.git", True),
    ("http://git.internal/repo", True),
    ("ssh://git@github.com/org/repo.git", True),
    ("git@github.com:org/repo.git", True),
    ("github.com:org/repo.git", True),
    ("file:///srv/git/repo.git", True),
    (".", False),
    ("/srv/git/repo.git", False),
    ("relative/repo", False),
    ("./git@host:weird", False),
])
def test_which_repos_are_remote(repo, remote_):
    assert gitsource.is_remote(repo) is remote_


def test_an_unusable_cache_folder_is_a_source_error(tmp_path, remote):
    origin, work, url = remote
    blocker = write(tmp_path, "not-a-folder", b"")
    with pytest.raises(SourceError, match="cannot use the cache folder"):
        read_git(url, None, "crons.d", cache_dir=str(blocker / "cache"))


# --- which repositories are accepted ----------------------------------------------------------

FORMS = "a local path, an https://, ssh://, git:// or file:// URL, or user@host:path"


@pytest.mark.parametrize("repo, reason", [
    ("fd::17", "the fd:: transport is not accepted"),
    ("ext::sh -c touch% /tmp/cronctl-pwned", "the ext:: transport is not accepted"),
    ("transport::address", "the transport:: transport is not accepted"),
    ("http://git.internal/repo.git", "the http:// transport is not accepted (use https:// "
                                     "instead"),
    ("git+ssh://git@github.com/org/repo.git", "use ssh:// instead"),
    ("gopher://example.com/repo", "the gopher:// transport is not accepted"),
    ("HTTPS://github.com/org/repo.git", "the HTTPS:// transport is not accepted"),
    ("ssh://-oProxyCommand=touch%20x/repo", "no valid host"),
    ("-oProxyCommand=x@host:repo", "not a repository form cronctl accepts"),
    ("git@host:", "not a repository form cronctl accepts"),
    ("https://github.com/org/repo\n.git", "control character"),
])
def test_other_transports_are_refused_before_git_runs(tmp_path, monkeypatch, repo, reason):
    def no_git(*_args, **_kwargs):
        raise AssertionError("git ran")

    monkeypatch.setattr("reconciler.adapters.gitsource.mirror._git", no_git)
    monkeypatch.setattr("reconciler.adapters.gitsource.reader.git.Repo", no_git)
    cache = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(SourceError) as raised:
        read_git(repo, None, "crons.d", cache_dir=str(cache))
    assert time.monotonic() - started < 2
    message = str(raised.value)
    assert reason in message
    assert FORMS in message
    assert "\n" not in message
    assert not cache.exists()  # no mirror was even prepared


@pytest.mark.parametrize("repo", [
    "https://github.com/org/repo.git", "https://deploy:token@git.example.com:8443/repo.git",
    "ssh://git@github.com:22/org/repo.git", "git://git.example.com/repo.git",
    "file:///srv/git/repo.git", "git@github.com:org/repo.git", "github.com:org/repo.git",
    "deploy@[2001:db8::1]:repo.git", ".", "/srv/git/repo.git", "relative/repo",
    "./weird:name",
])
def test_the_accepted_forms_pass_the_check(repo):
    gitsource.check_repo(repo)


def test_an_accepted_remote_still_runs_git_without_prompting_and_with_a_timeout(tmp_path):
    """git is run with no terminal prompt, only the accepted protocols, and a timeout."""
    seen: dict[str, str] = {}
    real_popen = subprocess.Popen

    def spy(args, **kwargs):
        seen.update({k: v for k, v in kwargs["env"].items() if k.startswith("GIT_")})
        return real_popen(args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("reconciler.adapters.gitsource.mirror.subprocess.Popen", spy)
        with pytest.raises(SourceError, match="cannot reach file:///nonexistent"):
            read_git("file:///nonexistent", None, "crons.d", cache_dir=str(tmp_path / "c"),
                     timeout=30)
    assert seen["GIT_TERMINAL_PROMPT"] == "0"
    assert seen["GIT_ALLOW_PROTOCOL"] == "https:ssh:git:file"


# --- symlinks to a folder that contains them --------------------------------------------------

def _ancestor_links(root: Path) -> None:
    write(root, "crons.d/a.yaml")
    write(root, "crons.d/team/b.yaml")
    write(root, "docker-compose.yaml", b"services: {}\n")  # not a cron: outside crons.d
    os.symlink("..", root / "crons.d/up")
    os.symlink("../..", root / "crons.d/team/top")
    os.symlink(".", root / "crons.d/team/here.yaml")


def _assert_only_the_links_are_refused(snapshot) -> None:
    from reconciler.core.cronfile.loader import load_snapshot

    assert snapshot.files == {"crons.d/a.yaml": JOB, "crons.d/team/b.yaml": JOB}
    refused = refusals(snapshot)
    assert set(refused) == {"crons.d/up", "crons.d/team/top", "crons.d/team/here.yaml"}
    assert refused["crons.d/up"] == (
        "symlink loop: it points to '..', a folder that contains it; it is not followed")
    assert "'../..'" in refused["crons.d/team/top"]
    assert "loop" in refused["crons.d/team/here.yaml"]
    loaded = load_snapshot(snapshot, "crons.d")
    assert [spec.name for spec in loaded.specs] == ["a", "b"]  # once each
    assert loaded.held_back == {"here"}  # the link named like a cron file, nothing else
    assert {d.file for d in loaded.diagnostics} == set(refused)


def test_git_a_symlink_to_an_ancestor_folder_is_refused_alone(tmp_path):
    repo = new_repo(tmp_path / "repo")
    _ancestor_links(repo)
    commit_all(repo, "links up")
    _assert_only_the_links_are_refused(read_git(str(repo), None, "crons.d"))
    whole = read_git(str(repo), None, ".")  # walking from the root: the same links loop
    assert set(refusals(whole)) == {"crons.d/up", "crons.d/team/top", "crons.d/team/here.yaml"}
    assert set(whole.files) == {"crons.d/a.yaml", "crons.d/team/b.yaml", "docker-compose.yaml"}


def test_directory_a_symlink_to_an_ancestor_folder_is_refused_alone(tmp_path):
    _ancestor_links(tmp_path)
    _assert_only_the_links_are_refused(read_directory(str(tmp_path), ["crons.d"]))
    whole = read_directory(str(tmp_path), ["."])
    assert set(refusals(whole)) == {"crons.d/up", "crons.d/team/top", "crons.d/team/here.yaml"}
    assert set(whole.files) == {"crons.d/a.yaml", "crons.d/team/b.yaml", "docker-compose.yaml"}


def test_a_link_into_a_sibling_folder_is_still_followed(tmp_path):
    """Only links to a folder being walked (or one containing it) loop; others are walked."""
    repo = new_repo(tmp_path / "repo")
    write(repo, "crons.d/a.yaml")
    write(repo, "shared/s.yaml")
    os.symlink("../shared", repo / "crons.d/shared")
    os.symlink("../crons.d", repo / "shared/back")  # leads back into crons.d: a loop
    commit_all(repo, "sibling")
    for snapshot in (read_git(str(repo), None, "crons.d"),
                     read_directory(str(repo), ["crons.d"])):
        assert set(snapshot.files) == {"crons.d/a.yaml", "crons.d/shared/s.yaml"}
        assert set(refusals(snapshot)) == {"crons.d/shared/back"}


# --- blobs read once (issue 10) ---------------------------------------------------------------

def test_a_new_commit_reads_only_the_blobs_that_changed(tmp_path):
    from reconciler.adapters.gitsource.blobs import BlobCache

    repo = new_repo(tmp_path / "work")
    for i in range(20):
        write(repo, f"crons.d/team{i % 3}/job{i}.yaml", f"name: job{i}\n")
    write(repo, "crons.d/same-as-job0.yaml", "name: job0\n")   # one blob, two files
    first = commit_all(repo, "first")
    write(repo, "crons.d/team1/job1.yaml", "name: job1 changed\n")
    second = commit_all(repo, "second")
    blobs = BlobCache()

    snapshot = read_git(str(repo), first, "crons.d", blobs=blobs)
    assert (blobs.reads, blobs.hits, len(blobs)) == (20, 1, 20)
    again = read_git(str(repo), second, "crons.d", blobs=blobs)
    assert (blobs.reads, blobs.hits) == (21, 1 + 20)   # job1 read; 20 files remembered
    assert again == read_git(str(repo), second, "crons.d")
    assert again.files["crons.d/team1/job1.yaml"] == b"name: job1 changed\n"
    assert len(blobs) == 20                       # the old job1 blob is forgotten
    assert read_git(str(repo), first, "crons.d", blobs=blobs) == snapshot
