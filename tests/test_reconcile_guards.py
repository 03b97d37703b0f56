"""Guards: mass deletes need a flag, an unreadable source deletes nothing, an invalid file
holds back only its own cron. Sources are real Git repositories built with gitpython."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from reconciler.cli import main
from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import (
    cron_yaml,
    live_state,
    prepare,
    write_crons,
)

FIVE = {f"job{i}": cron_yaml(f"cron({i} 5 * * ? *)") for i in range(5)}


def commit(repo: git.Repo, crons: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    write_crons(root, crons)
    (root / "crons.d" / "README.md").write_text("cron files\n")  # the folder stays in Git
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo.head.commit.hexsha


@pytest.fixture
def repo_env(settings, tmp_path):
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "t@example.com")
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path / "repo")), repo


def test_mass_delete_is_refused_without_the_flag(repo_env, capsys):
    clients, settings, repo = repo_env
    first = commit(repo, FIVE, "five crons")
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok and result.commit == first
    before = live_state(clients, settings)
    commit(repo, {"job0": FIVE["job0"]}, "drop four")
    args = ["reconcile", "--repo", settings.repo, "--namespace", "test"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "refusing to delete 4 crons (more than the limit of 3)" in out
    assert "--allow-mass-delete" in out
    assert live_state(clients, settings) == before
    assert main([*args, "--max-deletes", "4"]) == 0
    state = live_state(clients, settings)
    assert sorted(state["registry"]) == ["job0"] and sorted(state["rules"]) == ["test-job0"]


def test_allow_mass_delete_flag(repo_env):
    clients, settings, repo = repo_env
    commit(repo, FIVE, "five crons")
    assert run_pass(clients, settings, dry_run=False).ok
    commit(repo, {}, "drop all")
    assert main(["reconcile", "--repo", settings.repo, "--namespace", "test",
                 "--allow-mass-delete"]) == 0
    assert live_state(clients, settings)["rules"] == {}


@pytest.mark.parametrize("change", ["unknown-ref", "path-missing", "not-a-repo"])
def test_unreadable_source_deletes_nothing(repo_env, tmp_path, change, capsys):
    clients, settings, repo = repo_env
    commit(repo, FIVE, "five crons")
    assert run_pass(clients, settings, dry_run=False).ok
    before = live_state(clients, settings)
    if change == "unknown-ref":
        settings = settings.with_(ref="no-such-branch")
    elif change == "path-missing":
        settings = settings.with_(path="elsewhere.d")
    else:
        settings = settings.with_(repo=str(tmp_path / "missing"))
    result = run_pass(clients, settings, dry_run=False)
    assert not result.ok and result.plan is None
    assert result.errors[0].startswith("source unreadable, nothing changed")
    assert live_state(clients, settings) == before
    args = ["reconcile", "--repo", settings.repo, "--namespace", "test", "--path",
            settings.path, "--detailed-exitcode"]
    if settings.ref:
        args += ["--ref", settings.ref]
    assert main(args) == 1
    assert "source unreadable" in capsys.readouterr().err
    assert live_state(clients, settings) == before
    assert main([*args, "--output", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["changes"] == []
    assert [e["message"].startswith("source unreadable, nothing changed")
            for e in data["errors"]] == [True]
    assert live_state(clients, settings) == before


def test_invalid_file_holds_back_only_its_cron(repo_env):
    clients, settings, repo = repo_env
    commit(repo, FIVE, "five crons")
    assert run_pass(clients, settings, dry_run=False).ok
    before = live_state(clients, settings)
    broken = {**FIVE, "job1": "schedule: 'cron(0 5 * * ? *)'\nbogus: 1\ncontainer: {}\n",
              "job2": cron_yaml("rate(1 hour)"), "new9": "schedule: 'rate(1 hour)'\n"}
    commit(repo, broken, "break job1, edit job2, add an invalid new9")
    result = run_pass(clients, settings, dry_run=False)
    assert not result.ok
    assert [(e.cron, e.file, e.message) for e in result.plan.errors] == [
        ("job1", "crons.d/job1.yaml",
         "file invalid: kept as is; crons.d/job1.yaml:2:1: bogus: unknown field 'bogus'; "
         "crons.d/job1.yaml:3:1: container: missing required field 'image'"),
        ("new9", "crons.d/new9.yaml", "file invalid: kept as is; "
         "crons.d/new9.yaml:1:1: missing the container: add 'container:' with at least 'image:'")]
    assert [(c.cron, c.resource) for c in result.applied] == [
        ("job2", "schedule"), ("job2", "registry")]
    state = live_state(clients, settings)
    assert state["rules"]["test-job1"] == before["rules"]["test-job1"]
    assert state["registry"]["job1"] == before["registry"]["job1"]
    assert state["rules"]["test-job2"]["expression"] == "rate(1 hour)"
    assert "new9" not in state["registry"] and "test-new9" not in state["rules"]
