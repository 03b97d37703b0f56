"""`cronctl reconcile` as a new user reads it, against the moto server: the summary counts the
changes listed (a backend switch of four crons is 4 creates, 4 updates and 4 deletes), errors
are `Error:` blocks with the file and the way out, JSON says the same, progress is reported
per change (and drawn only on a terminal), and uncommitted edits are pointed out."""

from __future__ import annotations

import io
import json
import re
import subprocess

import pytest

from reconciler.cli import main
from reconciler.service.control.apply import PROGRESS
from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import cron_yaml, prepare, record_settings, write_crons

FOUR = {name: cron_yaml(f"cron({minute} 5 * * ? *)", "busybox")
        for minute, name in enumerate(("a", "b", "c", "d"))}
BAD = 'schedule: "cron(0 5 * * ?)"\ncontainer:\n  image: busybox\n'


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


def _listed(text: str) -> dict[str, int]:
    listed = re.findall(r"^[+~-] (create|update|delete) ", text, re.MULTILINE)
    return {action: listed.count(action) for action in ("create", "update", "delete")}


def test_a_backend_switch_with_an_invalid_file_as_text_and_json(env, capsys):
    clients, settings, root = env
    args = ["reconcile", "--repo", str(root), "--namespace", "test"]
    write_crons(root, FOUR)
    assert main(args) == 0
    capsys.readouterr()

    write_crons(root, {**FOUR, "bad": BAD})
    record_settings(clients, settings.with_(scheduler="scheduler"))  # bootstrap --scheduler
    switch = [*args, "--dry-run"]
    assert main(switch) == 1
    out = capsys.readouterr().out
    assert _listed(out) == {"create": 4, "update": 4, "delete": 4}
    lines = out.splitlines()
    assert lines[-1] == "Plan: 4 to create, 4 to update, 4 to delete. 1 error."
    block = lines[lines.index("Error: crons.d/bad.yaml is invalid: cron bad is held back"):]
    assert block[1].startswith("  crons.d/bad.yaml:1:")
    assert block[2] == ("  To fix: correct the file and commit it (`cronctl validate "
                        "crons.d/bad.yaml` lists every error); until then its resources on AWS "
                        "stay as they are.")
    assert "No changes." not in out and "! error" not in out

    assert main([*switch, "--output", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    summary = {k: data["summary"][k] for k in ("create", "update", "delete", "errors")}
    assert summary == {"create": 4, "update": 4, "delete": 4, "errors": 1}
    assert data["errors"][0]["file"] == "crons.d/bad.yaml"
    assert data["errors"][0]["way_out"].startswith("correct the file and commit it")


def test_errors_and_no_changes_never_say_no_changes(env, capsys):
    _, _, root = env
    write_crons(root, {"bad": BAD})
    assert main(["reconcile", "--repo", str(root), "--namespace", "test", "--dry-run",
                 "--detailed-exitcode"]) == 1
    out = capsys.readouterr().out
    assert "No changes." not in out
    assert out.splitlines()[-1] == "Plan: 0 to create, 0 to update, 0 to delete. 1 error."


def test_a_pass_error_names_no_exception_class(settings, tmp_path, capsys):
    write_crons(tmp_path, FOUR)  # the namespace is not bootstrapped
    assert main(["reconcile", "--repo", str(tmp_path), "--namespace", "test", "--dry-run"]) == 1
    said = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("cronctl reconcile:")]     # the rest is the JSON log line
    assert said == ["cronctl reconcile: registry table test-registry not found: namespace "
                    "'test' is not set up; run `cronctl bootstrap --namespace test` (or deploy "
                    "deploy/cloudformation.yaml) first"]


def test_a_secret_outside_the_namespace_under_the_stacks_role_is_a_warning(env, capsys):
    clients, settings, root = env
    role = "arn:aws:iam::123456789012:role/crons-TaskExecutionRole-AbC123"
    record_settings(clients, settings.with_(execution_role_arn=role))  # the stack's outputs
    write_crons(root, {"vault": "schedule: \"rate(1 hour)\"\ncontainer:\n  image: perl\n"
                                "  secrets:\n    DB: /shared/db\n    API: /test/api\n"})
    args = ["reconcile", "--repo", str(root), "--namespace", "test", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    warning = ("cron vault: container.secrets DB (/shared/db) is outside /test/, which the task "
               f"execution role {role} may not read")
    assert f"Warning: {warning}" in out
    assert main([*args, "--output", "json"]) == 0
    [said] = json.loads(capsys.readouterr().out)["warnings"]
    assert said.startswith(warning) and said.endswith(f"let {role} read it")


def test_apply_reports_progress_per_change_and_draws_nothing_off_a_terminal(env, capsys):
    clients, settings, root = env
    write_crons(root, FOUR)
    calls: list[tuple[int, int]] = []
    token = PROGRESS.set(lambda done, total: calls.append((done, total)))
    try:
        result = run_pass(clients, settings, dry_run=False)
    finally:
        PROGRESS.reset(token)
    assert result.ok
    total = len(result.plan.pending)
    assert calls == [(n, total) for n in range(1, total + 1)]

    write_crons(root, {"d": FOUR["d"]})
    assert main(["reconcile", "--repo", str(root), "--namespace", "test"]) == 0
    captured = capsys.readouterr()
    assert "Applying" not in captured.err and "\x1b[" not in captured.err + captured.out
    assert captured.out.rstrip().endswith("Plan: 0 to create, 0 to update, 6 to delete.\n"
                                          "Applied 6 of 6 changes.")


def test_progress_on_a_terminal_shows_n_of_m_and_is_gone_after():
    from reconciler.commands.reconcile import ApplyProgress

    stream = io.StringIO()
    progress = ApplyProgress(stream=stream, force_terminal=True, width=120)
    with progress:
        for done in range(1, 5):
            progress.report(done, 4)
    text = stream.getvalue()
    assert "Applying changes" in text and "4/4" in text
    assert "\x1b[" in text                  # drawn in place, with terminal control codes


# --- uncommitted edits ----------------------------------------------------------------------

def _git(root, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    write_crons(root, {"keep": FOUR["a"], "edit": FOUR["b"], "gone": FOUR["c"],
                       "staged-gone": FOUR["d"]})
    (root / "README").write_text("outside the cron path\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "crons")
    return root


def test_uncommitted_changes_under_the_cron_path_are_listed(repo):
    from reconciler.adapters.gitsource.reader import uncommitted_changes

    assert uncommitted_changes(str(repo), "crons.d") == []
    (repo / "crons.d" / "edit.yaml").write_text(cron_yaml("cron(9 9 * * ? *)"))
    (repo / "crons.d" / "gone.yaml").unlink()
    _git(repo, "rm", "-q", "crons.d/staged-gone.yaml")
    (repo / "crons.d" / "new.yaml").write_text(FOUR["a"])
    (repo / "crons.d" / "staged.yaml").write_text(FOUR["a"])
    _git(repo, "add", "crons.d/staged.yaml")
    (repo / "README").write_text("changed, but not under crons.d\n")
    assert uncommitted_changes(str(repo), "crons.d") == [
        ("modified", "crons.d/edit.yaml"), ("deleted", "crons.d/gone.yaml"),
        ("untracked", "crons.d/new.yaml"), ("deleted", "crons.d/staged-gone.yaml"),
        ("added", "crons.d/staged.yaml")]
    assert uncommitted_changes(str(repo / "crons.d"), ".") == []   # not a work tree's root
    assert uncommitted_changes("https://example.com/repo.git", "crons.d") == []


def test_reconcile_warns_that_uncommitted_edits_are_not_applied(settings, repo, capsys):
    from reconciler.service.control.uncommitted import UncommittedWatcher

    prepare(settings)
    (repo / "crons.d" / "new.yaml").write_text(FOUR["a"])
    args = ["reconcile", "--repo", str(repo), "--namespace", "test", "--dry-run"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert ("cronctl reconcile: warning: uncommitted changes under crons.d are not applied: "
            "crons.d/new.yaml (untracked). cronctl reads the committed HEAD, not the working "
            "tree: commit them to apply them") in captured.err
    assert "new" not in re.findall(r"^\+ create schedule (\S+):", captured.out, re.MULTILINE)
    assert main([*args, "--output", "json"]) == 0
    assert "crons.d/new.yaml (untracked)" in json.loads(capsys.readouterr().out)["warnings"][0]

    # The daemon's check: said once per change of the set, not at every look.
    watcher = UncommittedWatcher(settings.with_(repo=str(repo)))
    assert "crons.d/new.yaml (untracked)" in watcher.check()
    assert watcher.check() is None
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "new")
    assert watcher.check() is None
    (repo / "crons.d" / "keep.yaml").write_text(FOUR["b"])
    assert "crons.d/keep.yaml (modified)" in watcher.check()
