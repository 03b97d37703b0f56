"""Catch-up after an outage on the moto server, with a simulated clock: the daemon was down for
30 minutes (no delivery, no watchdog); a new one's watchdog starts the fires still within
their cron's catch-up window late, oldest first, once each (a late delivery is a duplicate),
and records the older ones MISSED; counted in the metric. The pure decisions as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.executions import catchup
from reconciler.core.executions import records as ex
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.watchdog import Watchdog
from reconciler.service.metrics import Metrics
from tests.support.ecs_events import put_cron, tasks_started_by
from tests.support.specs import make_spec

T0 = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)


def put_spec(clients, settings, name: str, td: str, schedule: str, **changes) -> None:
    put_cron(clients, settings, name, td, schedule=schedule,
             schedule_since=T0.strftime("%Y-%m-%dT%H:%M:%SZ"))
    item = RegistryReader(clients, settings).get(name)
    spec = replace(item.spec, **changes)
    item = replace(item, spec=spec, spec_hash=spec.spec_hash())
    serializer = TypeSerializer()
    clients.client("dynamodb").put_item(TableName=settings.registry_table, Item={
        k: serializer.serialize(v) for k, v in item.to_item().items()})


class Recording(Dispatcher):
    """The dispatcher, noting the order of what it was asked to start."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, str]] = []

    def dispatch(self, cron, scheduled_at, trigger="schedule", force=False):
        self.asked.append((cron, ex.normalize_scheduled_at(scheduled_at)))
        return super().dispatch(cron, scheduled_at, trigger, force)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_after_a_30_minute_outage_recent_fires_start_late_and_older_ones_are_missed(
        plane, settings):
    clients, td = plane
    # every 10 minutes, catch-up 10m; every 5 minutes from :02, the default window (5m).
    put_spec(clients, settings, "ten", td, "cron(*/10 * * * ? *)", catch_up_s=600)
    put_spec(clients, settings, "five", td, "cron(2/5 * * * ? *)")
    put_spec(clients, settings, "later", td, "cron(*/10 * * * ? *)", suspend=True)
    metrics = Metrics(process=False)
    now = lambda: T0 + timedelta(minutes=34)   # noqa: E731 - back after a 30-minute outage
    dispatcher = Recording(clients, settings)
    watchdog = Watchdog(clients, settings, dispatcher, now=now, metrics=metrics,
                        missed_interval_s=0)
    done = watchdog.sweep()
    # Started late, oldest first: ten@13:30 (4 min late), five@13:32 (2 min late).
    assert dispatcher.asked == [("ten", at(30)), ("five", at(32))]
    store = ExecutionStore(clients, settings)
    for cron, minute in (("ten", 30), ("five", 32)):
        eid = ex.execution_id(cron, at(minute))
        [task] = tasks_started_by(clients, settings, eid)
        assert store.get(eid).task_arn == task["taskArn"]
    # Older fires (after the schedule began, at 13:00) are MISSED, with the reason.
    missed_ten = [at(m) for m in (10, 20)]
    missed_five = [at(m) for m in (2, 7, 12, 17, 22, 27)]
    for cron, fires in (("ten", missed_ten), ("five", missed_five)):
        for fire in fires:
            record = store.get(ex.execution_id(cron, fire))
            assert record.status == "MISSED", (cron, fire)
            assert tasks_started_by(clients, settings, record.execution_id) == []
    assert "catch-up window (600 s)" in store.get(ex.execution_id("ten", at(10))).reason
    assert store.get(ex.execution_id("ten", at(0))) is None
    assert done["missed"] == len(missed_ten) + len(missed_five)
    assert metrics.catch_up.labels("started")._value.get() == 2
    assert metrics.catch_up.labels("missed")._value.get() == 8
    # A suspended cron catches nothing up.
    assert store.recent("later") == []
    # Once each: the next check, another replica, and a late delivery start nothing more.
    watchdog.sweep()
    Watchdog(clients, settings, Dispatcher(clients, settings), now=now,
             missed_interval_s=0).sweep()
    assert Dispatcher(clients, settings).dispatch("ten", at(30)).status == "duplicate"
    assert Dispatcher(clients, settings).dispatch("ten", at(20)).status == "duplicate"
    for cron, minute in (("ten", 30), ("five", 32)):
        assert len(tasks_started_by(clients, settings,
                                    ex.execution_id(cron, at(minute)))) == 1
    assert metrics.catch_up.labels("started")._value.get() == 2


def test_catch_up_obeys_the_concurrency_policy(plane, settings):
    clients, td = plane
    put_spec(clients, settings, "ten", td, "cron(*/10 * * * ? *)", catch_up_s=600)
    running = Dispatcher(clients, settings).dispatch("ten", at(20))   # still running
    assert running.status == "started"
    now = lambda: T0 + timedelta(minutes=34)   # noqa: E731
    Watchdog(clients, settings, Dispatcher(clients, settings), now=now,
             missed_interval_s=0).sweep()
    late = ExecutionStore(clients, settings).get(ex.execution_id("ten", at(30)))
    assert late.status == "SKIPPED" and running.execution_id in late.reason


# -- the decisions, as tables ------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "window"), [
    ({"schedule": "cron(0 * * * ? *)"}, 300),                                 # default 5m
    ({"schedule": "cron(0 * * * ? *)",
      "notifications": {"no_run_threshold_s": 900}}, 900),          # the threshold
    ({"schedule": "cron(0 * * * ? *)", "catch_up_s": 600,
      "notifications": {"no_run_threshold_s": 900}}, 600),          # catch-up wins
    ({"schedule": "rate(2 minutes)"}, 120),                                   # capped: gap
    ({"schedule": "cron(0 9,17 ? * MON-FRI *)", "catch_up_s": 3600}, 3600),
])
def test_window(fields, window):
    assert catchup.window_s(make_spec("c", **fields)) == window


@pytest.mark.parametrize(("late_s", "window", "action"), [
    (0, 300, catchup.Action.WAIT),        # the delivery is normally under way
    (29, 300, catchup.Action.WAIT),
    (30, 300, catchup.Action.START),
    (299, 300, catchup.Action.START),
    (300, 300, catchup.Action.MISSED),
    (3600, 300, catchup.Action.MISSED),
    (10, 20, catchup.Action.START),       # a short window: after half of it
    (9, 20, catchup.Action.WAIT),
])
def test_decide(late_s, window, action):
    assert catchup.decide(T0, T0 + timedelta(seconds=late_s), window) is action


def test_fires_of_unknown_age_only_for_crons_that_ask():
    spec = make_spec("c", schedule="cron(*/10 * * * ? *)")
    now = T0 + timedelta(minutes=34)
    assert catchup.fires(spec, None, now) == []
    fires = catchup.fires(spec, T0, now)
    assert [(f.at, f.action) for f in fires][-2:] == [
        (T0 + timedelta(minutes=20), catchup.Action.MISSED),
        (T0 + timedelta(minutes=30), catchup.Action.START)]
    assert fires[0].at == T0 + timedelta(minutes=10)        # after the schedule began
    asking = replace(spec, catch_up_s=600)
    # The look-back (1 h) before the window (10 min): 12:30 ... 13:30.
    assert [f.at.strftime("%H:%M") for f in catchup.fires(asking, None, now)] == \
        ["12:30", "12:40", "12:50", "13:00", "13:10", "13:20", "13:30"]
