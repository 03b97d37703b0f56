"""Calendar exclusions and pause after failures end to end on the moto server: runs driven
through the Dispatcher and the consumer with ECS events; what the records say, which tasks
were started, what `status`, `list`, `resume` and `validate` print and exit with."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import cli
from reconciler.adapters.alert_states import AlertStates
from reconciler.core.spec import Exclusion, Notifications
from reconciler.service.control.reconcile import run_pass
from tests.support.ecs_events import lifecycle, put_cron, send_event, tasks_started_by
from tests.support.fakes.slack import SlackFake
from tests.support.reconcile_env import cron_yaml, prepare, write_crons
from tests.test_alerts import TOKEN, Runs, drain
from tests.test_status_cli import registry_item, rewrite

NS = ["--namespace", "test"]
HOLIDAYS = Exclusion("holidays-de", "Europe/Berlin", (("2026-12-24", "2026-12-26"),))


def with_spec(clients, settings, name: str, **fields) -> None:
    """The cron's registry item with these spec fields, as a reconcile would write it."""
    item = registry_item(clients, settings, name)
    spec = replace(item.spec, **fields)
    rewrite(clients, settings, replace(item, spec=spec, spec_hash=spec.spec_hash()))


# -- calendar exclusions ----------------------------------------------------------------------

def test_a_run_on_an_excluded_date_is_skipped_with_the_calendar_and_starts_nothing(
        plane, settings):
    clients, td = plane
    put_cron(clients, settings, "report", td, schedule="cron(0 9 * * ? *)", concurrency="allow")
    with_spec(clients, settings, "report", exclude=(HOLIDAYS,))
    runs = Runs(clients, settings, "report")
    # 23:30 UTC on Dec 23 is 00:30 on Dec 24 in Berlin: excluded
    outcome = runs.dispatcher.dispatch("report", "2026-12-23T23:30:00Z")
    assert (outcome.status, outcome.reason) == (
        "skipped", "excluded by calendar holidays-de (2026-12-24)")
    record = runs.store.get(outcome.execution_id)
    assert (record.status, record.reason) == (
        "SKIPPED", "excluded by calendar holidays-de (2026-12-24)")
    assert record.outbox is None
    assert tasks_started_by(clients, settings, outcome.execution_id) == []
    assert outcome.execution_id not in {r.execution_id for r in runs.store.unfinished()}
    # a redelivery finds the record and starts nothing either
    assert runs.dispatcher.dispatch("report", "2026-12-23T23:30:00Z").status == "duplicate"
    # the day after the calendar's range runs as usual
    after = runs.dispatcher.dispatch("report", "2026-12-27T09:00:00Z")
    assert after.status == "started"
    assert len(tasks_started_by(clients, settings, after.execution_id)) == 1
    # a manual run is not a scheduled one: calendars do not hold it
    assert runs.dispatcher.dispatch("report", "2026-12-25T09:00:00Z",
                                    trigger="manual").status == "started"


CALENDAR = "timezone: Europe/Berlin\ndates:\n  - 2026-12-25\n"


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


def test_a_calendar_edit_changes_the_registry_spec_of_the_crons_that_use_it(env):
    clients, settings, root = env
    uses = cron_yaml("cron(0 9 * * ? *)", "busybox") + "exclude: [holidays-de]\n"
    write_crons(root, {"uses": uses, "other": cron_yaml("cron(0 9 * * ? *)", "busybox")})
    (root / "crons.d" / "calendars").mkdir()
    calendar = root / "crons.d" / "calendars" / "holidays-de.yaml"
    calendar.write_text(CALENDAR)
    assert run_pass(clients, settings, dry_run=False).ok
    before = {n: registry_item(clients, settings, n) for n in ("uses", "other")}
    assert before["uses"].spec.exclude == (
        Exclusion("holidays-de", "Europe/Berlin", (("2026-12-25", "2026-12-25"),)),)
    assert before["other"].spec.exclude == ()

    calendar.write_text(CALENDAR + "  - 2026-12-31..2027-01-01\n")
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    changed = [(c.cron, c.resource.value, c.action.value) for c in result.plan.changes
               if c.action.value != "no-op"]
    assert changed == [("uses", "registry", "update")]
    after = {n: registry_item(clients, settings, n) for n in ("uses", "other")}
    assert after["uses"].spec.exclude[0].ranges == (("2026-12-25", "2026-12-25"),
                                                     ("2026-12-31", "2027-01-01"))
    assert after["uses"].spec_hash != before["uses"].spec_hash
    assert after["other"].spec_hash == before["other"].spec_hash


def test_a_cron_naming_a_missing_calendar_is_held_back(env):
    clients, settings, root = env
    ok = cron_yaml("cron(0 9 * * ? *)", "busybox")
    write_crons(root, {"job": ok})
    assert run_pass(clients, settings, dry_run=False).ok
    write_crons(root, {"job": cron_yaml("cron(0 10 * * ? *)", "busybox")
                       + "exclude: [nope]\n"})
    result = run_pass(clients, settings, dry_run=False)
    # its live resources stay as they were, and the pass says why
    assert registry_item(clients, settings, "job").spec.schedule == "cron(0 9 * * ? *)"
    assert result.plan.held_back == {"job"}
    assert any("no calendar 'nope'" in e.message for e in result.plan.errors), result.plan.errors


def test_validate_reports_bad_calendars_at_their_lines_and_leaves_excluded_dates_out(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "crons.d" / "calendars").mkdir(parents=True)
    (tmp_path / "crons.d" / "calendars" / "bad.yaml").write_text(
        "dates:\n  - 2026-02-30\n  - 2026-12-31..2026-12-01\n  - soon\n")
    (tmp_path / "crons.d" / "calendars" / "every-day.yaml").write_text(
        "dates:\n  - 2000-01-01..2999-12-31\n")
    (tmp_path / "crons.d" / "calendars" / "weekdays.yaml").write_text("dates: []\n")
    (tmp_path / "crons.d" / "a.yaml").write_text(
        'schedule: "cron(0 9 * * ? *)"\nexclude: [bad, missing]\ncontainer: {image: x}\n')
    assert cli.main(["validate"]) == 1
    out = capsys.readouterr().out
    assert "crons.d/a.yaml:2:11: exclude[0]: calendar 'bad' is invalid" in out
    assert ("crons.d/a.yaml:2:16: exclude[1]: no calendar 'missing': expected the file "
            "crons.d/calendars/missing.yaml") in out
    assert "crons.d/calendars/bad.yaml:2:5: dates[0]: not a date: '2026-02-30'" in out
    assert ("crons.d/calendars/bad.yaml:3:5: dates[1]: the range '2026-12-31..2026-12-01' "
            "ends before it starts") in out
    assert "crons.d/calendars/bad.yaml:4:5: dates[2]: must be a date YYYY-MM-DD" in out

    (tmp_path / "crons.d" / "calendars" / "bad.yaml").unlink()
    (tmp_path / "crons.d" / "a.yaml").write_text(
        'schedule: "cron(0 9 * * ? *)"\nexclude: [every-day]\ncontainer: {image: x}\n')
    assert cli.main(["validate", "--output", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [cron] = data["crons"]
    assert cron["next_runs"] == [] and len(cron["excluded_runs"]) > 3
    assert cron["excluded_runs"][0]["calendar"] == "every-day"
    # a file named on the command line finds the --path folder's calendars
    assert cli.main(["validate", "crons.d/a.yaml"]) == 0
    text = capsys.readouterr().out
    assert "exclude    dates of calendar every-day:" in text and "runs left out" in text


# -- pause after failures ---------------------------------------------------------------------

def test_two_failures_pause_the_cron_until_resume(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "flaky", td, concurrency="allow")
    with_spec(clients, settings, "flaky", suspend_after_failures=2)
    runs = Runs(clients, settings, "flaky")
    first = runs.finish(1)
    # a redelivered final event does not count twice
    send_event(clients.client("sqs"), settings,
               lifecycle(first.task_arn, first.execution_id, main_exit=1)[-1])
    drain(runs.consumer)
    state = AlertStates(clients, settings).get("flaky")
    assert (state.run_failures, state.paused_at) == (1, None)
    runs.finish(1)
    state = AlertStates(clients, settings).get("flaky")
    assert state.run_failures == 2 and state.paused_after == 2 and state.paused_at

    third = runs.dispatcher.dispatch("flaky", "2026-12-01T14:00:00Z")
    assert third.status == "skipped"
    # since the run that paused it stopped (the test's ECS events say 2018-Feb-26 13:50:13)
    assert third.reason == ("paused after 2 consecutive failures since 2018-Feb-26 13:50 UTC; "
                            "cronctl resume flaky")
    assert runs.store.get(third.execution_id).status == "SKIPPED"
    assert tasks_started_by(clients, settings, third.execution_id) == []

    capsys.readouterr()
    assert cli.main(["status", "flaky", *NS]) == 0
    status = capsys.readouterr().out
    [line] = [ln for ln in status.splitlines() if ln.startswith("State")]
    assert line == ("State    = PAUSED since 2018-Feb-26 13:50 UTC after 2 consecutive "
                    "failures; resume: cronctl resume flaky")
    assert cli.main(["list", *NS]) == 0
    assert "SKIPPED (PAUSED)" in capsys.readouterr().out
    assert cli.main(["list", "--output", "json", *NS]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "PAUSED"

    assert cli.main(["resume", "flaky", *NS]) == 0
    assert "flaky: resumed" in capsys.readouterr().out
    assert cli.main(["resume", "flaky", *NS]) == 1
    assert "cron 'flaky' is not paused" in capsys.readouterr().err
    fourth = runs.dispatcher.dispatch("flaky", "2026-12-01T14:05:00Z")
    assert fourth.status == "started"
    assert len(tasks_started_by(clients, settings, fourth.execution_id)) == 1
    assert cli.main(["status", "flaky", *NS]) == 0
    assert "PAUSED" not in capsys.readouterr().out


def test_a_new_spec_ends_the_pause(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "flaky", td, concurrency="allow")
    with_spec(clients, settings, "flaky", suspend_after_failures=1)
    runs = Runs(clients, settings, "flaky")
    runs.finish(1)
    assert runs.dispatcher.dispatch("flaky", "2026-12-01T14:00:00Z").status == "skipped"
    # the next commit that changes the file writes a new spec (hash) to the registry
    with_spec(clients, settings, "flaky", schedule="cron(*/10 * * * ? *)")
    assert runs.dispatcher.dispatch("flaky", "2026-12-01T14:10:00Z").status == "started"
    assert runs.finish(1).status == "FAILED"    # counts afresh, and pauses again
    assert runs.dispatcher.dispatch("flaky", "2026-12-01T15:00:00Z").status == "skipped"


def test_resume_refuses_an_unknown_cron_and_one_without_the_field(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "plain", td)
    assert cli.main(["resume", "nope", *NS]) == 1
    assert "no cron named 'nope'" in capsys.readouterr().err
    assert cli.main(["resume", "plain", *NS]) == 1
    assert "is not paused (it has no suspend-after-failures)" in capsys.readouterr().err


@pytest.fixture
def slack():
    with SlackFake(token=TOKEN) as fake:
        yield fake


def test_a_cron_with_slack_is_told_once_that_it_paused(plane, settings, slack):
    clients, td = plane
    alerting = settings.with_(slack_api_url=slack.api_url, slack_token=TOKEN,
                              notify_timeout_s=2)
    put_cron(clients, alerting, "flaky", td, concurrency="allow",
             notifications=Notifications(slack="#team", alert_after=5))
    with_spec(clients, alerting, "flaky", suspend_after_failures=2)
    runs = Runs(clients, alerting, "flaky")
    runs.finish(1)
    assert slack.messages() == []             # alert-after 5: no failure alert yet
    second = runs.finish(1)
    assert second.outbox is None
    [message] = slack.messages()
    assert message["channel"] == "#team"
    assert "paused after 2 consecutive failures" in message["text"]
    assert "cronctl resume flaky" in message["text"]
    assert runs.dispatcher.dispatch("flaky", "2026-12-01T15:00:00Z").status == "skipped"
    assert len(slack.messages()) == 1         # a skipped run tells nobody again


def test_embedded_the_local_clock_fires_on_an_excluded_date_and_dispatch_skips(plane, settings):
    from reconciler.service.embedded.clock import LocalClock
    from reconciler.service.execution.dispatch import Dispatcher

    clients, td = plane
    put_cron(clients, settings, "report", td, schedule="cron(0 9 * * ? *)", concurrency="allow")
    with_spec(clients, settings, "report", exclude=(HOLIDAYS,))
    dispatcher = Dispatcher(clients, settings)
    answers: list[dict] = []

    def publish(message: str) -> None:
        status, body = dispatcher.handle_sns_message({"Type": "Notification",
                                                      "Message": message})
        answers.append({"http": status, **json.loads(body)})

    now = [datetime(2026, 12, 26, 8, 59, 50, tzinfo=UTC)]
    clock = LocalClock(lambda: [registry_item(clients, settings, "report")], publish,
                       now=lambda: now[0])
    clock._anchor = now[0]       # what start() records, without the thread
    for day in (26, 27):         # the 26th is in the calendar (Berlin), the 27th is not
        now[0] = datetime(2026, 12, day, 8, 59, 50, tzinfo=UTC)
        for _ in range(20):
            clock.tick()
            now[0] += timedelta(seconds=1)
    assert [(a["http"], a["status"], a.get("reason")) for a in answers] == [
        (200, "skipped", "excluded by calendar holidays-de (2026-12-26)"),
        (200, "started", None)]
    assert tasks_started_by(clients, settings, answers[0]["execution_id"]) == []
    assert len(tasks_started_by(clients, settings, answers[1]["execution_id"])) == 1
