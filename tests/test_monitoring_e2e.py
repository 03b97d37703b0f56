"""Monitoring and alerts together, as the daemon wires them: a cron with a Healthchecks.io
monitor and a PagerDuty routing key. A run that fails with exit 2 gives a start ping and a
fail ping with code 2 paired by run id, and one PagerDuty trigger; the next successful run
gives its own start and success pings and one resolve. Everything asserted is what the fakes
received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.adapters.notifiers import Notifiers
from reconciler.core.spec import Notifications
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.outbox import Outbox
from reconciler.service.metrics import Metrics
from reconciler.service.monitoring.pings import Pinger
from tests.support.ecs_events import lifecycle, put_cron, send_event
from tests.support.fakes.healthchecks import FakeHealthchecks
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.support.waiting import wait_for
from tests.test_monitors_pings import give_monitor

KEY = "0123456789abcdef0123456789ABCDEF"


@pytest.fixture
def services():
    healthchecks = FakeHealthchecks()
    with PagerDutyFake() as pagerduty:
        yield healthchecks, pagerduty
    healthchecks.stop()


@pytest.fixture
def daemon_parts(plane, settings, services):
    """Dispatcher, consumer and outbox sharing one pinger, as ``wiring.build_daemon`` builds
    them; the cron ``nightly`` has a monitor at the Healthchecks fake."""
    clients, td = plane
    healthchecks, pagerduty = services
    settings = settings.with_(monitor="healthchecks", monitor_url=healthchecks.url,
                              monitor_ping_url=healthchecks.url, monitor_api_key="hc-key",
                              pagerduty_events_url=pagerduty.events_url, notify_timeout_s=2)
    put_cron(clients, settings, "nightly", td, notifications=Notifications(pagerduty=KEY))
    check = healthchecks.add_check(slug="test-nightly", tags="cronctl cronctl-ns-test")
    give_monitor(clients, settings, "nightly", "healthchecks", check,
                 f"{healthchecks.url}/{check}")
    metrics = Metrics(process=False)
    pinger = Pinger(settings, metrics)
    pinger.sender.start()
    outbox = Outbox(clients, settings, pinger=pinger, notifiers=Notifiers(settings),
                    metrics=metrics)
    dispatcher = Dispatcher(clients, settings, metrics, pinger=pinger, outbox=outbox)
    consumer = EventConsumer(clients, settings, wait_time_s=0, outbox=outbox, metrics=metrics)
    yield clients, settings, dispatcher, consumer, check
    assert pinger.sender.stop(5)


def run_once(clients, settings, dispatcher, consumer, minute: int, exit_code: int) -> str:
    at = (datetime(2026, 12, 1, 13, 0, tzinfo=UTC) + timedelta(minutes=minute)) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")
    outcome = dispatcher.dispatch("nightly", at)
    assert outcome.status == "started", outcome
    send_event(clients.client("sqs"), settings,
               lifecycle(outcome.task_arn, outcome.execution_id, main_exit=exit_code)[-1])
    for _ in range(100):
        if consumer.process_batch() == 0:
            return outcome.execution_id
    raise AssertionError("the queue did not drain")


def test_a_failed_run_pings_and_pages_and_the_next_success_resolves(daemon_parts, services):
    clients, settings, dispatcher, consumer, check = daemon_parts
    healthchecks, pagerduty = services

    failed = run_once(clients, settings, dispatcher, consumer, 0, exit_code=2)
    start, finish = wait_for(lambda: len(healthchecks.pings(check)) == 2
                             and healthchecks.pings(check), message="the start and fail pings")
    assert (start.path, start.query["rid"]) == (f"/{check}/start", [failed])
    assert (finish.method, finish.path, finish.query["rid"]) == ("POST", f"/{check}/2", [failed])
    assert b"status=FAILED exit_code=2" in finish.body and b"duration=" in finish.body
    [trigger] = pagerduty.events()
    assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", "test/nightly/failed")

    succeeded = run_once(clients, settings, dispatcher, consumer, 5, exit_code=0)
    pings = wait_for(lambda: len(healthchecks.pings(check)) == 4 and healthchecks.pings(check),
                     message="the second run's pings")
    assert [(p.path, p.query["rid"]) for p in pings[2:]] == [
        (f"/{check}/start", [succeeded]), (f"/{check}", [succeeded])]
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events()] == [
        ("trigger", "test/nightly/failed"), ("resolve", "test/nightly/failed")]
