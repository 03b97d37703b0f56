"""One-time ``at()`` schedules and ``active`` windows end to end on the moto server: the
Scheduler backend's schedule carries the ``at()`` expression, ``ActionAfterCompletion:
DELETE`` and the window's ``StartDate``/``EndDate``; a one-time run that ran (its schedule
deleted by AWS after completion, injected here: moto never fires nor deletes) is done, not
re-created; ``at()`` on the rules backend is an error; the rules backend disables a rule
outside its window and enables it inside; dispatch starts nothing outside the window."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reconciler.core.executions import records as ex
from reconciler.core.plan.planner import ONE_TIME_DONE
from reconciler.core.spec import ActiveWindow
from reconciler.service.control import reconcile
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.dispatch import OUTSIDE_WINDOW, Dispatcher
from tests.support.ecs_events import put_cron, tasks_started_by
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons

TODAY = datetime.now(UTC).date()
LAUNCH = datetime.combine(TODAY + timedelta(days=2), datetime.min.time()).replace(hour=18)
AT = f"at({LAUNCH:%Y-%m-%dT%H:%M:%S})"
FROM, UNTIL = TODAY + timedelta(days=2), TODAY + timedelta(days=60)


def windowed(schedule: str = "cron(0 5 * * ? *)", start: date = FROM,
             until: date = UNTIL, **kw) -> str:
    return cron_yaml(schedule, **kw) + f"active:\n  from: {start}\n  until: {until}\n"


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path))


def clock_at(monkeypatch, moment: datetime) -> None:
    """The reconcile pass's clock (``Deployment.now``) set to ``moment``."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return moment.astimezone(tz) if tz else moment.replace(tzinfo=None)

    monkeypatch.setattr(reconcile, "datetime", Clock)


def raw_schedule(clients, name: str) -> dict | None:
    scheduler = clients.client("scheduler")
    try:
        return scheduler.get_schedule(GroupName="test", Name=name)
    except scheduler.exceptions.ResourceNotFoundException:
        return None


def test_scheduler_schedules_carry_the_at_expression_and_the_window(env):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    write_crons(Path(settings.repo), {"launch": cron_yaml(AT, timezone="Europe/Berlin"),
                                      "season": windowed(timezone="Europe/Berlin")})
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    launch = raw_schedule(clients, "launch")
    assert (launch["ScheduleExpression"], launch["ScheduleExpressionTimezone"],
            launch["ActionAfterCompletion"]) == (AT, "Europe/Berlin", "DELETE")
    season = raw_schedule(clients, "season")
    # from: 00:00 of FROM in Berlin; until: inclusive, so 00:00 of the day after UNTIL
    berlin = ZoneInfo("Europe/Berlin")
    assert season["StartDate"].astimezone(UTC) == \
        datetime.combine(FROM, datetime.min.time(), berlin).astimezone(UTC)
    assert season["EndDate"].astimezone(UTC) == datetime.combine(
        UNTIL + timedelta(days=1), datetime.min.time(), berlin).astimezone(UTC)
    assert season.get("ActionAfterCompletion") in (None, "NONE")
    # read back, the live schedules are what the plan wants: nothing to do
    assert not run_pass(clients, settings, dry_run=True).plan.has_changes

    write_crons(Path(settings.repo), {"launch": cron_yaml(AT, timezone="Europe/Berlin"),
                                      "season": windowed(until=UNTIL + timedelta(days=1),
                                                         timezone="Europe/Berlin")})
    result = run_pass(clients, settings, dry_run=False)
    (update,) = [c for c in result.applied if c.resource == "schedule"]
    assert update.cron == "season" and [d[0] for d in update.diff] == ["end_date"]
    assert raw_schedule(clients, "season")["EndDate"].astimezone(UTC) == datetime.combine(
        UNTIL + timedelta(days=2), datetime.min.time(), berlin).astimezone(UTC)


def test_a_one_time_run_done_is_not_re_created(env, monkeypatch):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    write_crons(Path(settings.repo), {"launch": cron_yaml(AT)})
    assert run_pass(clients, settings, dry_run=False).ok
    assert raw_schedule(clients, "launch") is not None
    # AWS runs it, then deletes it (ActionAfterCompletion: DELETE): moto does neither
    clients.client("scheduler").delete_schedule(GroupName="test", Name="launch")
    clock_at(monkeypatch, LAUNCH.replace(tzinfo=UTC) + timedelta(hours=1))
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    assert result.applied == [] or all(c.action == "no-op" for c in result.applied)
    (change,) = [c for c in result.plan.changes if c.resource == "schedule"]
    assert (change.action, change.reason) == ("no-op", ONE_TIME_DONE)
    state = live_state(clients, settings)
    assert state["schedules"] == {} and sorted(state["registry"]) == ["launch"]

    # a new at() already in the past: an error of that cron, nothing created
    past = f"at({LAUNCH - timedelta(hours=2):%Y-%m-%dT%H:%M:%S})"
    write_crons(Path(settings.repo), {"launch": cron_yaml(AT), "late": cron_yaml(past)})
    result = run_pass(clients, settings, dry_run=False)
    (error,) = result.plan.errors
    assert error.cron == "late" and "is in the past" in error.message
    assert raw_schedule(clients, "late") is None


def test_at_on_the_rules_backend_is_an_error(env):
    clients, settings = env
    write_crons(Path(settings.repo), {"launch": cron_yaml(AT), "daily": cron_yaml()})
    result = run_pass(clients, settings, dry_run=False)
    (error,) = result.plan.errors
    assert error.cron == "launch"
    assert "cronctl bootstrap --scheduler scheduler" in error.message
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-daily"] and sorted(state["registry"]) == ["daily"]


def test_the_rules_backend_enables_a_rule_only_inside_its_window(env, monkeypatch):
    clients, settings = env
    write_crons(Path(settings.repo), {"season": windowed()})
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings)["rules"]["test-season"]["state"] == "DISABLED"

    clock_at(monkeypatch, datetime.combine(FROM, datetime.min.time(), UTC) + timedelta(hours=1))
    result = run_pass(clients, settings, dry_run=False)
    (change,) = [c for c in result.applied if c.resource == "schedule"]
    assert ("state", "DISABLED", "ENABLED") in change.diff
    assert change.reason == "active window: inside it, rule enabled"
    assert live_state(clients, settings)["rules"]["test-season"]["state"] == "ENABLED"

    clock_at(monkeypatch, datetime.combine(UNTIL + timedelta(days=1), datetime.min.time(), UTC))
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings)["rules"]["test-season"]["state"] == "DISABLED"


def test_dispatch_starts_nothing_outside_the_window(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "season", td,
             active=ActiveWindow(start="2018-02-01", until="2018-02-28"))
    outside = "2018-03-01T00:00:00Z"
    outcome = Dispatcher(clients, settings).dispatch("season", outside)
    assert (outcome.status, outcome.execution_id) == (OUTSIDE_WINDOW, None)
    assert outcome.reason == "outside the active window (from 2018-02-01 until 2018-02-28, UTC)"
    assert tasks_started_by(clients, settings, ex.execution_id("season", outside)) == []
    assert clients.client("dynamodb").scan(TableName=settings.executions_table)["Items"] == []
    inside = "2018-02-28T23:55:00Z"   # until is inclusive to the end of its day
    assert Dispatcher(clients, settings).dispatch("season", inside).status == "started"
    assert len(tasks_started_by(clients, settings, ex.execution_id("season", inside))) == 1
