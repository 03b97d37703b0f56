"""What people see of alerts: `cronctl status` (text and JSON), `cronctl list`, the status
page; the Slack warning in `cronctl validate` and in the plan; PagerDuty URIs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.core.spec import Notifications
from reconciler.service.control.reconcile import run_pass
from reconciler.service.http.status_page import StatusPages
from tests.support.ecs_events import put_cron
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.support.reconcile_env import prepare, write_crons
from tests.test_alerts import KEY, Runs

NS = ["--namespace", "test"]
SLACK_CRON = ('schedule: "cron(0 5 * * ? *)"\ncontainer:\n  image: perl\n'
              'notifications:\n  slack: "#team"\n')


@pytest.fixture
def failing(plane, settings):
    """Cron ``flaky`` (alert-after 3) with three failed runs, paged to the PagerDuty fake."""
    clients, td = plane
    with PagerDutyFake() as pagerduty:
        paged = settings.with_(pagerduty_events_url=pagerduty.events_url, notify_timeout_s=2)
        put_cron(clients, paged, "flaky", td,
                 notifications=Notifications(pagerduty=KEY, alert_after=3))
        put_cron(clients, paged, "fine", td)
        runs = Runs(clients, paged, "flaky")
        for _ in range(3):
            runs.finish(1)
        assert len(pagerduty.events("trigger")) == 1
        yield clients, paged


def test_status_shows_the_alert_state(failing, capsys):
    capsys.readouterr()
    assert cli.main(["status", "flaky", *NS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[4] == ("Alert    = FAILING since 2018-Feb-26 13:50 UTC (3 consecutive failures, "
                        "PagerDuty triggered)")
    assert cli.main(["status", "flaky", "--output", "json", *NS]) == 0
    alert = json.loads(capsys.readouterr().out)["alert"]
    assert (alert["state"], alert["consecutive_failures"]) == ("FAILING", 3)
    assert alert["open"] == [{"kind": "failed", "notifier": "pagerduty",
                              "since": alert["open"][0]["since"],
                              "dedup_key": "test/flaky/failed", "channel": None}]
    assert cli.main(["status", "fine", *NS]) == 0
    assert "Alert" not in capsys.readouterr().out


def test_list_marks_alerting_crons(failing, capsys):
    capsys.readouterr()
    assert cli.main(["list", *NS]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "Alert"
    assert [r.split()[0] for r in rows] == ["fine", "flaky"]
    assert rows[1].endswith("FAILING x3 (alerted)") and not rows[0].endswith(")")
    assert cli.main(["list", "--output", "json", *NS]) == 0
    data = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert data["flaky"]["alert"]["consecutive_failures"] == 3 and "alert" not in data["fine"]


def test_the_status_page_fills_its_alert_slot(failing):
    clients, settings = failing
    pages = StatusPages(clients, settings)
    overview = pages.answer("GET", "/").text
    assert "FAILING since 2018-Feb-26 13:50 UTC (3 consecutive failures" in overview
    page = pages.answer("GET", "/crons/flaky").text
    assert 'class="alert-box"' in page and "PagerDuty triggered" in page


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("CRONCTL_PATH", "CRONCTL_REPO", "CRONCTL_REF", "CRONCTL_SLACK_TOKEN",
                 "CRONCTL_SLACK_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    write(tmp_path, {"crons.d/report.yaml": SLACK_CRON})
    return tmp_path


def test_validate_warns_when_slack_cannot_be_reached(folder, capsys, monkeypatch):
    assert cli.main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "warnings:" in out and "cron report: names a Slack channel (#team)" in out
    assert "set CRONCTL_SLACK_TOKEN or CRONCTL_SLACK_WEBHOOK_URL" in out
    assert cli.main(["validate", "--output", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["warnings"]) == 1
    assert cli.main(["validate", "--output", "github"]) == 0
    out = capsys.readouterr().out
    assert "::warning file=crons.d/report.yaml,line=" in out
    assert "::notifications.slack: cron report: names a Slack channel (#team)" in out
    monkeypatch.setenv("CRONCTL_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    assert cli.main(["validate"]) == 0
    assert "warnings:" not in capsys.readouterr().out


@pytest.mark.parametrize("value, ok", [
    (KEY, True),
    (f"https://events.pagerduty.com/integration/{KEY}/enqueue", True),
    ("https://events.pagerduty.com/v2/enqueue", False),
    (f"https://example.com/integration/{KEY}/enqueue", False),
])
def test_validate_accepts_only_the_documented_pagerduty_uri(folder, capsys, value, ok):
    write(folder, {"crons.d/report.yaml": SLACK_CRON.replace('slack: "#team"',
                                                             f'pagerduty: "{value}"')})
    assert cli.main(["validate"]) == (0 if ok else 1)
    out = capsys.readouterr().out
    if not ok:
        assert "notifications.pagerduty" in out and \
            "https://events.pagerduty.com/integration/<32-character routing key>/enqueue" in out


def test_the_plan_warns_about_slack_without_a_token(settings, tmp_path):
    clients = prepare(settings)
    write_crons(tmp_path, {"report": SLACK_CRON})
    plain = settings.with_(repo=str(tmp_path))
    warnings = run_pass(clients, plain, dry_run=True).plan.warnings
    assert any("CRONCTL_SLACK_TOKEN" in w and "report" in w for w in warnings)
    configured = plain.with_(slack_token="xoxb-x")
    warnings = run_pass(clients, configured, dry_run=True).plan.warnings
    assert not any("Slack" in w for w in warnings)


def test_the_daemon_says_at_start_which_crons_cannot_reach_slack(plane, settings):
    from reconciler.service.wiring import _notifier_summary

    clients, td = plane
    put_cron(clients, settings, "report", td, notifications=Notifications(slack="#team"))
    put_cron(clients, settings, "quiet", td)
    lines = _notifier_summary(clients, settings)
    assert lines[0].startswith("alerts: Slack not configured; PagerDuty Events API v2 at ")
    assert lines[1:] == ["warning: cron report: names a Slack channel (#team) but this process "
                         "has no Slack token or webhook: set CRONCTL_SLACK_TOKEN or "
                         "CRONCTL_SLACK_WEBHOOK_URL, or its Slack alerts are dropped"]
    assert _notifier_summary(clients, settings.with_(slack_token="xoxb-x")) == [
        "alerts: Slack Web API (token); PagerDuty Events API v2 at "
        "https://events.pagerduty.com/v2/enqueue"]
