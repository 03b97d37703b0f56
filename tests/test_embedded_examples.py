"""The repo's `crons.d/` examples in embedded mode, as `make run` runs them (local processes, no
Docker), with a fast clock (61 s per tick of the local clock): each reaches the outcome its
comment promises - SUCCESS, FAILED, TIMEOUT, SKIPPED, and a run stopped by the next one."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.cli import main
from reconciler.service.embedded import runner as runner_module
from reconciler.service.embedded.runner import LocalTaskRunner
from reconciler.service.wiring import build_daemon
from reconciler.settings import Settings
from tests.support.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parent.parent / "crons.d"


def _promise(comment_word: str, file: str) -> None:
    """The example's comment states the outcome this test holds it to."""
    head = "".join(line for line in (EXAMPLES / file).read_text().splitlines(keepends=True)
                   if line.startswith("#"))
    assert "Promise:" in head and comment_word in head, (file, head)


@pytest.fixture
def embedded(aws, tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, os.environ.get(key, "testing"))
    monkeypatch.setattr(runner_module, "docker_available", lambda: False)
    shutil.copytree(EXAMPLES, tmp_path / "crons.d")
    ticks = itertools.count()
    start = datetime.now(UTC).replace(second=30, microsecond=0)

    def fast_clock() -> datetime:
        return start + timedelta(seconds=61 * next(ticks))

    settings = Settings(repo=str(tmp_path), listen="127.0.0.1:0", namespace="demo",
                        sqs_wait_s=1, scheduler="scheduler")
    built = build_daemon(settings, embedded=True, clock_now=fast_clock)
    built.daemon.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", built.settings.endpoint_url)
        yield built
    finally:
        assert built.daemon.stop(budget_s=30)


def test_each_example_reaches_its_promised_outcome(embedded, capsys):
    built = embedded
    [runner] = [c for c in built.daemon.components if isinstance(c, LocalTaskRunner)]
    assert runner.mode == "local-process"
    store = ExecutionStore(AwsClients(built.settings), built.settings)

    def found(cron: str, check) -> list:
        return [e for e in store.recent(cron, 200) if check(e)]

    promises = {
        "tick": ("SUCCESS", lambda e: e.status == "SUCCESS" and e.exit_code == 0),
        "always-fails": ("FAILED", lambda e: e.status == "FAILED" and e.exit_code == 3),
        "slow": ("TIMEOUT", lambda e: e.status == "TIMEOUT" and e.exit_code == 143),
        "overlap-forbid": ("SKIPPED", lambda e: e.status == "SKIPPED"),
        "overlap-replace": ("replaced by", lambda e: e.status == "FAILED"
                            and e.exit_code == 143 and (e.reason or "").startswith("replaced by")),
        "heartbeat": ("SUCCESS", lambda e: e.status == "SUCCESS"),
        "pi": ("SUCCESS", lambda e: e.status == "SUCCESS" and e.exit_code == 0),
    }
    for cron, (word, _) in promises.items():
        _promise(word, f"{cron}.yaml")

    # nightly-report runs at 07:30 Berlin on weekdays: its promise is a manual run now.
    wait_for(lambda: built.loop.last_result is not None, timeout=30, message="the first pass")
    assert built.loop.last_result.ok, built.loop.last_result
    _promise("SUCCESS", "nightly-report.yaml")
    assert main(["trigger", "nightly-report", "--namespace", "demo"]) == 0

    def all_kept() -> bool | list[str]:
        missing = [cron for cron, (_, check) in promises.items() if not found(cron, check)]
        return not missing or missing

    wait_for(lambda: all_kept() is True, timeout=50, interval=0.5,
             message="every example's promised outcome")
    report = wait_for(lambda: found("nightly-report", lambda e: e.status == "SUCCESS"),
                      timeout=20, message="the manual nightly-report run")
    capsys.readouterr()
    assert main(["logs", "nightly-report", report[0].execution_id, "--namespace", "demo"]) == 0
    assert "report for eu-central sent" in capsys.readouterr().out

    # The replaced run was stopped by the run that replaced it, and that one started.
    replaced = found("overlap-replace", promises["overlap-replace"][1])[0]
    by = replaced.reason.removeprefix("replaced by ")
    assert store.get(by) is not None and store.get(by).task_arn


def test_serve_says_where_to_look_first(embedded):
    from reconciler.commands.serve import WhereToLook, _status_page_line

    built = embedded
    lines = WhereToLook(built).lines()
    assert lines[0] == "Where to look first:"
    assert f"  status page:   {built.http.url}/" in lines
    assert any(line.startswith(f"  endpoint:      {built.http.url} ") for line in lines)
    assert f"  AWS emulator:  {built.settings.endpoint_url}" in lines
    assert any(f"export AWS_ENDPOINT_URL={built.settings.endpoint_url}" in line for line in lines)
    assert _status_page_line("0.0.0.0:8080") == "status page: http://0.0.0.0:8080/"
    assert _status_page_line("127.0.0.1:0") is None


def test_a_second_terminal_plans_no_changes_against_the_embedded_daemon(embedded, capsys):
    """`make run` records its flags (`--scheduler scheduler`) in the namespace: the CLI, given
    no --scheduler, reads them and agrees with the daemon."""
    built = embedded
    wait_for(lambda: built.loop.last_result is not None, timeout=30, message="the first pass")
    assert built.loop.last_result.ok, built.loop.last_result
    capsys.readouterr()
    assert main(["reconcile", "--repo", built.settings.repo, "--namespace", "demo",
                 "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "No changes."
