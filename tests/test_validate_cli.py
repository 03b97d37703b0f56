"""`cronctl validate`: exit codes and the text, json and github outputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest

from reconciler.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
GOOD = 'schedule: "cron(30 7 ? * MON-FRI *)"\ntimezone: Europe/Berlin\ncontainer:\n  image: x\n'
BAD_SCHEDULE = 'schedule: "rate(0 minutes)"\ncontainer:\n  image: x\n'
BAD_TWICE = 'schedule: "rate(1 day)"\ncontainer:\n  image: x\n  env:\n    N: 5\ntimeout: 0\n'
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A temp working directory with two valid and two invalid cron files."""
    monkeypatch.chdir(tmp_path)
    for name in ("CRONCTL_PATH", "CRONCTL_REPO", "CRONCTL_REF"):
        monkeypatch.delenv(name, raising=False)
    write(tmp_path, {"crons.d/good.yaml": GOOD, "crons.d/team/other.yml": GOOD,
                     "crons.d/bad.yaml": BAD_SCHEDULE, "crons.d/worse.yaml": BAD_TWICE,
                     "crons.d/README.md": "not a cron file"})
    return tmp_path


def test_the_repos_own_examples_are_valid(capsys, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.delenv("CRONCTL_PATH", raising=False)
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].endswith("crons valid, no errors")
    assert int(out.strip().splitlines()[-1].split()[0]) >= 4
    assert "pi  (crons.d/pi.yaml)" in out
    assert "every 10 minutes" in out
    assert "Europe/Berlin" in out


def test_text_output_lists_crons_then_errors_then_a_summary(repo, capsys):
    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "good  (crons.d/good.yaml)"
    assert "  runs       at 07:30 Monday through Friday (Europe/Berlin)" in lines
    runs = [line for line in lines if re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", line)]
    assert len(runs) == 6  # 3 per valid cron, UTC then local time
    assert all("+01:00 Europe/Berlin" in line or "+02:00 Europe/Berlin" in line
               for line in runs)
    errors = lines[lines.index("errors:") + 1:-2]
    assert errors == [
        "crons.d/bad.yaml:1:11: schedule: rate(): value must be a positive whole number, "
        "got '0'",
        "crons.d/worse.yaml:5:8: container.env.N: env value of 'N' must be a string, "
        "got integer 5; quote it: N: \"5\"",
        "crons.d/worse.yaml:6:10: timeout: must be more than 0, got 0; a duration is seconds "
        "or a number with a unit: 90s, 15m, 2h, 1d",
    ]
    assert lines[-1] == "2 crons valid, 3 errors in 2 files"


def test_json_output(repo, capsys):
    assert main(["validate", "--output", "json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"crons", "errors", "warnings"}
    assert [c["name"] for c in document["crons"]] == ["good", "other"]
    good = document["crons"][0]
    assert set(good) == {"name", "file", "schedule", "timezone", "description", "next_runs"}
    assert (good["file"], good["schedule"], good["timezone"]) == (
        "crons.d/good.yaml", "cron(30 7 ? * MON-FRI *)", "Europe/Berlin")
    assert good["description"] == "at 07:30 Monday through Friday (Europe/Berlin)"
    assert len(good["next_runs"]) == 3
    assert all(ISO_UTC.match(moment) for moment in good["next_runs"])
    assert all(moment[11:16] in ("05:30", "06:30") for moment in good["next_runs"])
    assert document["errors"][0] == {
        "file": "crons.d/bad.yaml", "line": 1, "column": 11, "field": "schedule",
        "message": "rate(): value must be a positive whole number, got '0'"}
    assert [(e["file"], e["line"]) for e in document["errors"]] == [
        ("crons.d/bad.yaml", 1), ("crons.d/worse.yaml", 5), ("crons.d/worse.yaml", 6)]


def test_github_output_annotates_each_error(repo, capsys):
    assert main(["validate", "--output", "github"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "::error file=crons.d/bad.yaml,line=1,col=11::schedule: rate(): value must be a "
        "positive whole number, got '0'",
        "::error file=crons.d/worse.yaml,line=5,col=8::container.env.N: env value of 'N' "
        "must be a string, got integer 5; quote it: N: \"5\"",
        "::error file=crons.d/worse.yaml,line=6,col=10::timeout: must be more than 0, got 0; "
        "a duration is seconds or a number with a unit: 90s, 15m, 2h, 1d",
    ]
    assert "2 crons valid, 3 errors in 2 files" in captured.err


def test_paths_may_be_files_or_folders(repo, capsys):
    assert main(["validate", "crons.d/good.yaml", "crons.d/team"]) == 0
    out = capsys.readouterr().out
    assert "good  (crons.d/good.yaml)" in out and "other  (crons.d/team/other.yml)" in out
    assert out.splitlines()[-1] == "2 crons valid, no errors"
    assert main(["validate", "--output", "json", "crons.d/bad.yaml"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"][0]["file"] == "crons.d/bad.yaml"


def test_a_path_outside_the_current_directory(repo, tmp_path_factory, capsys):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write(elsewhere, {"jobs/a.yaml": BAD_SCHEDULE})
    assert main(["validate", "--output", "json", str(elsewhere / "jobs")]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert [e["file"] for e in errors] == [str(elsewhere / "jobs" / "a.yaml")]


def test_the_path_flag_chooses_the_folder(repo, capsys):
    write(repo, {"jobs/only.yaml": GOOD})
    assert main(["validate", "--path", "jobs"]) == 0
    assert "only  (jobs/only.yaml)" in capsys.readouterr().out


def test_a_commit_of_a_git_repo(repo, capsys):
    repository = git.Repo.init(repo)
    repository.index.add(["crons.d/good.yaml", "crons.d/bad.yaml"])
    author = git.Actor("Test", "test@example.com")
    first = repository.index.commit("two crons", author=author, committer=author)
    (repo / "crons.d" / "bad.yaml").write_text(GOOD)
    repository.index.add(["crons.d/bad.yaml"])
    repository.index.commit("fix", author=author, committer=author)
    repository.close()
    assert main(["validate", "--repo", str(repo), "--ref", first.hexsha]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "1 cron valid, 1 error in 1 file"
    assert main(["validate", "--repo", str(repo)]) == 0  # HEAD: fixed, untracked files unseen
    assert capsys.readouterr().out.splitlines()[-1] == "2 crons valid, no errors"


def test_an_unreadable_source_is_a_clear_error(repo, capsys):
    assert main(["validate", "missing-folder"]) == 1
    captured = capsys.readouterr()
    assert "cannot read the cron files" in captured.err and "missing-folder" in captured.err
    assert captured.out == ""
    assert main(["validate", "--repo", str(repo), "--ref", "main"]) == 1
    assert "not a git repository" in capsys.readouterr().err


def test_paths_and_a_git_ref_exclude_each_other(repo, capsys):
    assert main(["validate", "crons.d", "--ref", "main"]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_help_explains_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for fragment in ("--output", "{text,json,github}", "--repo", "--ref", "--path", "PATH",
                     "Exit status"):
        assert fragment in out


def test_python_dash_m_reconciler_validate(repo):
    completed = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "--output", "json", "crons.d/good.yaml"],
        cwd=repo, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stderr
    assert [c["name"] for c in json.loads(completed.stdout)["crons"]] == ["good"]


def test_a_schedule_without_future_runs_says_so(repo, capsys):
    write(repo, {"crons.d/past.yaml": 'schedule: "cron(0 0 1 1 ? 2020)"\ncontainer: {image: x}\n'})
    assert main(["validate", "crons.d/past.yaml"]) == 0
    assert "  next runs  none: the schedule has no fire times after now" in \
        capsys.readouterr().out.splitlines()
    assert main(["validate", "--output", "json", "crons.d/past.yaml"]) == 0
    assert json.loads(capsys.readouterr().out)["crons"][0]["next_runs"] == []


def test_refused_files_are_errors_at_their_first_line(repo, capsys):
    (repo / "crons.d" / "leak.yaml").symlink_to("/etc/hostname")
    write(repo, {"crons.d/big.yaml": GOOD + "#" * 300_000 + "\n"})
    assert main(["validate", "crons.d/leak.yaml", "crons.d/big.yaml"]) == 1
    assert capsys.readouterr().out.splitlines()[1:3] == [
        "crons.d/big.yaml:1:1: file is 294 KiB; the limit is 256 KiB",
        "crons.d/leak.yaml:1:1: symlink points outside the repository",
    ]


def test_github_annotations_escape_the_file_and_the_message(repo, capsys):
    write(repo, {"odd/a,b:c.yaml": 'name: x\nschedule: "rate(1 day)"\ncontainer: {image: x}\n'
                                   'timeout: 100%\n'})
    assert main(["validate", "--output", "github", "odd"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "::error file=odd/a%2Cb%3Ac.yaml,line=4,col=10::timeout: '100%25' is not a duration; "
        "a duration is seconds or a number with a unit: 90s, 15m, 2h, 1d"]


def test_a_commit_chosen_by_the_environment(repo, capsys, monkeypatch):
    repository = git.Repo.init(repo)
    repository.index.add(["crons.d/good.yaml"])
    author = git.Actor("Test", "test@example.com")
    commit = repository.index.commit("one cron", author=author, committer=author)
    repository.close()
    monkeypatch.setenv("CRONCTL_REF", commit.hexsha)
    assert main(["validate"]) == 0  # the commit, not the working tree's invalid files
    assert capsys.readouterr().out.splitlines()[-1] == "1 cron valid, no errors"
    monkeypatch.setenv("CRONCTL_REF", "no-such-ref")
    assert main(["validate"]) == 1
    assert f"unknown ref 'no-such-ref' in {repo}" in capsys.readouterr().err
    assert main(["validate", "crons.d/bad.yaml"]) == 1  # PATH arguments: the files themselves
    assert capsys.readouterr().out.splitlines()[-1] == "0 crons valid, 1 error in 1 file"


FORMS = "a local path, an https://, ssh://, git:// or file:// URL, or user@host:path"


@pytest.mark.parametrize("repo_flag", ["fd::17", "http://git.internal/crons.git"])
def test_a_repo_of_another_transport_is_refused_at_once(repo, capsys, repo_flag):
    started = time.monotonic()
    assert main(["validate", "--repo", repo_flag]) == 1
    assert time.monotonic() - started < 5
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"cronctl validate: cannot read the cron files: {repo_flag} "
                                   "is refused: ")
    assert FORMS in captured.err


def test_an_ext_transport_from_the_environment_never_runs_its_command(repo, capsys,
                                                                       monkeypatch):
    marker = repo / "pwned"
    monkeypatch.setenv("CRONCTL_REPO", f"ext::sh -c touch% {marker}")
    started = time.monotonic()
    assert main(["validate"]) == 1
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "the ext:: transport is not accepted" in err and FORMS in err
    assert not marker.exists()


def test_a_symlink_to_an_ancestor_is_one_error_and_every_cron_counts_once(repo, capsys):
    for name in ("bad.yaml", "worse.yaml"):
        (repo / "crons.d" / name).unlink()
    (repo / "crons.d" / "up").symlink_to("..")
    assert main(["validate"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines.count("good  (crons.d/good.yaml)") == 1
    assert lines.count("other  (crons.d/team/other.yml)") == 1
    assert lines[lines.index("errors:") + 1:] == [
        "crons.d/up:1:1: symlink loop: it points to '..', a folder that contains it; "
        "it is not followed", "", "2 crons valid, 1 error in 1 file"]

    repository = git.Repo.init(repo)  # the same tree committed: read from the commit
    repository.index.add(["crons.d/good.yaml", "crons.d/team/other.yml", "crons.d/up"])
    author = git.Actor("Test", "test@example.com")
    repository.index.commit("a link up", author=author, committer=author)
    repository.close()
    assert main(["validate", "--repo", str(repo)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "2 crons valid, 1 error in 1 file"


def test_a_name_with_a_trailing_newline_is_an_error_on_one_line(repo, capsys):
    write(repo, {"crons.d/nl.yaml": 'name: "hello\\n"\n' + GOOD})
    assert main(["validate", "--output", "github", "crons.d/nl.yaml"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "::error file=crons.d/nl.yaml,line=1,col=7::name: name 'hello\\n' is not valid: "
        "lower-case letters, digits and '-', starting and ending with a letter or digit, at "
        "most 64 characters"]


def test_one_time_and_window_crons_in_validate(tmp_path, monkeypatch, capsys):
    """A future at() shows its one run; a past one is an error at the schedule line; an
    active window is shown and next runs fall inside it."""
    from datetime import UTC, datetime, timedelta

    monkeypatch.chdir(tmp_path)
    for name in ("CRONCTL_PATH", "CRONCTL_REPO", "CRONCTL_REF"):
        monkeypatch.delenv(name, raising=False)
    soon = datetime.now(UTC) + timedelta(days=3)
    start = (datetime.now(UTC) + timedelta(days=10)).date()
    write(tmp_path, {
        "crons.d/launch.yaml": f'schedule: "at({soon:%Y-%m-%d}T18:00:00)"\n'
                               "container:\n  image: x\n",
        "crons.d/old.yaml": "container:\n  image: x\n"
                            'schedule: "at(2020-01-01T00:00:00)"\n',
        "crons.d/season.yaml": 'schedule: "cron(0 5 * * ? *)"\ncontainer:\n  image: x\n'
                               f"active:\n  from: {start}\n  until: {start + timedelta(days=1)}\n",
    })
    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    assert f"  runs       once, at 18:00 on {soon:%Y-%m-%d}" in out
    assert f"  next runs  {soon:%Y-%m-%d}T18:00:00Z" in out
    assert re.search(r"^crons\.d/old\.yaml:3:\d+: schedule: at\(2020-01-01T00:00:00\) \(UTC\) "
                     r"is in the past", out, re.M)
    assert f"  active     from {start} until {start + timedelta(days=1)} (UTC)" in out
    assert f"  next runs  {start}T05:00:00Z" in out
    assert f"{start + timedelta(days=1)}T05:00:00Z" in out
    assert f"{start + timedelta(days=2)}T05:00:00Z" not in out   # outside the window
