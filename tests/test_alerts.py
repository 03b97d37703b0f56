"""Alerts end to end against the moto server and local fakes of Slack and PagerDuty: what the
fakes received, what the records say. Failed runs page once and resolve on success;
alert-after; Slack routing (Web API and webhook) and message contents; a missed run with
three replicas; an overlong run; outages that delay and then deliver once; a refusing
notifier given up on; a run that fails to start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconciler.adapters.alert_states import AlertStates
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.core.executions import records as ex
from reconciler.core.spec import Notifications
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.outbox import Outbox
from reconciler.service.execution.watchdog import Watchdog
from reconciler.service.metrics import Metrics
from tests.chaos.tools import in_parallel
from tests.support.ecs_events import lifecycle, put_cron, send_event
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.support.fakes.slack import SlackFake

KEY = "0123456789abcdef0123456789ABCDEF"
TOKEN = "xoxb-test-token"


@pytest.fixture
def pagerduty():
    with PagerDutyFake() as fake:
        yield fake


@pytest.fixture
def slack():
    with SlackFake(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def alerting(settings, pagerduty, slack):
    """Settings whose notifiers are the fakes (Slack through the Web API)."""
    return settings.with_(pagerduty_events_url=pagerduty.events_url,
                          slack_api_url=slack.api_url, slack_token=TOKEN, notify_timeout_s=2)


def drain(consumer: EventConsumer) -> None:
    for _ in range(100):
        if consumer.process_batch() == 0:
            return
    raise AssertionError("queue did not drain")


class Runs:
    """Runs of one cron: dispatched, then ended by ECS events through the consumer."""

    def __init__(self, clients, settings, cron: str, outbox: Outbox | None = None) -> None:
        self.clients, self.settings, self.cron = clients, settings, cron
        self.dispatcher = Dispatcher(clients, settings)
        self.consumer = EventConsumer(clients, settings, wait_time_s=0, outbox=outbox)
        self.store = ExecutionStore(clients, settings)
        self.minute = 0

    def finish(self, exit_code: int) -> ex.Execution:
        at = (datetime(2026, 12, 1, 13, 0, tzinfo=UTC) + timedelta(minutes=self.minute)) \
            .strftime("%Y-%m-%dT%H:%M:%SZ")
        self.minute += 5
        outcome = self.dispatcher.dispatch(self.cron, at)
        assert outcome.status == "started", outcome
        send_event(self.clients.client("sqs"), self.settings,
                   lifecycle(outcome.task_arn, outcome.execution_id, main_exit=exit_code)[-1])
        drain(self.consumer)
        return self.store.get(outcome.execution_id)


def settled(record: ex.Execution, store: ExecutionStore) -> None:
    """The run's outbox is empty and it has left the index of open runs."""
    assert record.outbox is None, record.outbox
    assert record.execution_id not in {r.execution_id for r in store.unfinished()}


def test_a_failed_run_pages_once_and_the_next_success_resolves_once(plane, alerting,
                                                                    pagerduty, slack):
    clients, td = plane
    put_cron(clients, alerting, "nightly", td,
             notifications=Notifications(pagerduty=KEY, slack="#team"),
             docs="https://runbooks.example/nightly")
    runs = Runs(clients, alerting, "nightly")
    failed = runs.finish(2)
    assert (failed.status, failed.exit_code) == ("FAILED", 2)
    settled(failed, runs.store)
    [trigger] = pagerduty.events()
    assert trigger["event_action"] == "trigger" and trigger["routing_key"] == KEY
    assert trigger["dedup_key"] == "test/nightly/failed"
    assert trigger["payload"]["custom_details"]["exit code"] == "2"
    assert trigger["payload"]["source"] == "cronctl/test"
    assert trigger["links"] == [{"href": "https://runbooks.example/nightly", "text": "runbook"}]
    # a redelivered final event changes nothing
    send_event(clients.client("sqs"), alerting,
               lifecycle(failed.task_arn, failed.execution_id, main_exit=2)[-1])
    drain(runs.consumer)
    assert len(pagerduty.events()) == 1
    state = AlertStates(clients, alerting).get("nightly")
    assert (state.consecutive_failures, [a.kind for a in state.open]) == (1, ["failed"])

    success = runs.finish(0)
    settled(success, runs.store)
    assert [(e["event_action"], e["dedup_key"]) for e in pagerduty.events()] == \
        [("trigger", "test/nightly/failed"), ("resolve", "test/nightly/failed")]
    assert slack.received == []         # PagerDuty has it; Slack was not used
    assert AlertStates(clients, alerting).get("nightly").consecutive_failures == 0


def test_alert_after_three_pages_on_the_third_consecutive_failure(plane, alerting, pagerduty):
    clients, td = plane
    put_cron(clients, alerting, "flaky", td,
             notifications=Notifications(pagerduty=KEY, alert_after=3))
    runs = Runs(clients, alerting, "flaky")
    runs.finish(1)
    runs.finish(1)
    assert pagerduty.events() == []
    runs.finish(1)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
    assert "3 consecutive failures" in pagerduty.events()[0]["payload"]["summary"]
    runs.finish(1)                      # still open: nobody paged again
    assert len(pagerduty.events()) == 1
    runs.finish(0)
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger", "resolve"]


def test_without_a_routing_key_failures_go_to_slack_with_everything_needed(
        plane, alerting, slack, pagerduty):
    clients, td = plane
    put_cron(clients, alerting, "report", td, notifications=Notifications(slack="#data"),
             docs="https://runbooks.example/report")
    runs = Runs(clients, alerting, "report")
    failed = runs.finish(3)
    [message] = slack.messages()
    assert message["channel"] == "#data"
    for part in ("report", "FAILED", "exit code 3", "2026-Dec-01 13:00:00 UTC",
                 "https://runbooks.example/report",
                 f"cronctl logs report {failed.execution_id} --namespace test"):
        assert part in message["text"], part
    runs.finish(0)
    assert len(slack.messages()) == 2 and "recovered" in slack.messages()[1]["text"]
    assert pagerduty.received == []


def test_the_incoming_webhook_is_used_without_a_token(plane, settings, slack):
    clients, td = plane
    hooked = settings.with_(slack_webhook_url=slack.webhook_url, notify_timeout_s=2)
    put_cron(clients, hooked, "report", td, notifications=Notifications(slack="#data"))
    Runs(clients, hooked, "report").finish(3)
    assert slack.messages() == []
    [message] = slack.webhook_messages()
    assert message["text"].startswith("[#data] ") and "report" in message["text"]


def test_an_outage_delays_the_alert_then_delivers_it_once(plane, alerting, pagerduty):
    clients, td = plane
    put_cron(clients, alerting, "nightly", td, notifications=Notifications(pagerduty=KEY))
    metrics = Metrics(process=False)
    outbox = Outbox(clients, alerting, metrics=metrics, backoff_s=0)
    runs = Runs(clients, alerting, "nightly", outbox=outbox)
    pagerduty.fail(500)
    failed = runs.finish(2)
    assert failed.outbox == {"notify:pagerduty-trigger-failed"}
    assert failed.outbox_attempts == 1
    assert failed.execution_id in {r.execution_id for r in runs.store.unfinished()}
    watchdog = Watchdog(clients, alerting, runs.dispatcher, outbox=outbox,
                        missed_interval_s=3600)
    watchdog.sweep()                    # still down: retried, kept
    assert pagerduty.events() == [] and len(pagerduty.refused) == 2
    pagerduty.recover()
    assert watchdog.sweep()["outbox"] == 1
    assert [e["event_action"] for e in pagerduty.events()] == ["trigger"]
    settled(runs.store.get(failed.execution_id), runs.store)
    watchdog.sweep()
    assert len(pagerduty.events()) == 1
    assert metrics.outbox_retries._value.get() == 2


def test_connection_refused_and_429_are_retried(plane, alerting, slack):
    clients, td = plane
    put_cron(clients, alerting, "report", td, notifications=Notifications(slack="#data"))
    outbox = Outbox(clients, alerting, backoff_s=0)
    runs = Runs(clients, alerting, "report", outbox=outbox)
    slack.fail(429, times=1)
    failed = runs.finish(1)
    assert failed.outbox == {"notify:slack-message-failed"}
    slack.down()
    watchdog = Watchdog(clients, alerting, runs.dispatcher, outbox=outbox,
                        missed_interval_s=3600)
    watchdog.sweep()
    assert slack.messages() == []
    slack.recover()
    watchdog.sweep()
    assert len(slack.messages()) == 1
    settled(runs.store.get(failed.execution_id), runs.store)


def test_a_refusing_notifier_is_given_up_on_after_a_few_attempts(plane, settings, slack):
    clients, td = plane
    wrong = settings.with_(slack_api_url=slack.api_url, slack_token="xoxb-wrong",
                           notify_timeout_s=2)
    put_cron(clients, wrong, "report", td, notifications=Notifications(slack="#data"))
    metrics = Metrics(process=False)
    outbox = Outbox(clients, wrong, metrics=metrics, backoff_s=0, permanent_attempts=3)
    runs = Runs(clients, wrong, "report", outbox=outbox)
    failed = runs.finish(1)
    watchdog = Watchdog(clients, wrong, runs.dispatcher, outbox=outbox, missed_interval_s=3600)
    for _ in range(4):
        watchdog.sweep()
    assert len(slack.received) == 3     # three attempts, then dropped
    assert slack.messages() == []
    settled(runs.store.get(failed.execution_id), runs.store)
    assert metrics.alerts.labels("failed", "slack", "dropped")._value.get() == 1


T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def test_a_missed_run_alerts_exactly_once_with_three_replicas(plane, alerting, pagerduty):
    clients, td = plane
    put_cron(clients, alerting, "hourly", td, schedule="cron(0 * * * ? *)",
             notifications=Notifications(pagerduty=KEY, no_run_threshold_s=300),
             schedule_since="2026-12-01T13:30:00Z")
    now = lambda: T0 + timedelta(minutes=6)  # noqa: E731 - 14:00 + threshold has passed
    replicas = [Watchdog(AwsClients(alerting), alerting, Dispatcher(clients, alerting),
                         now=now, missed_interval_s=0) for _ in range(3)]
    results = in_parallel([(w.sweep, ()) for w in replicas])
    assert sum(r.get("missed", 0) for r in results) == 1
    [trigger] = pagerduty.events()
    assert trigger["dedup_key"] == "test/hourly/missed"
    assert "did not run" in trigger["payload"]["summary"]
    eid = ex.execution_id("hourly", "2026-12-01T14:00:00Z")
    record = ExecutionStore(clients, alerting).get(eid)
    assert record.status == "MISSED" and "no-run-threshold" in record.reason
    for watchdog in replicas:
        watchdog.sweep()
    assert len(pagerduty.events()) == 1
    # the delivery that comes after all starts nothing
    assert Dispatcher(clients, alerting).dispatch("hourly", "2026-12-01T14:00:00Z").status \
        == "duplicate"


def test_a_run_that_came_is_not_missed_and_a_suspended_cron_misses_nothing(plane, alerting,
                                                                          pagerduty):
    clients, td = plane
    put_cron(clients, alerting, "hourly", td, schedule="cron(0 * * * ? *)",
             notifications=Notifications(pagerduty=KEY, no_run_threshold_s=300),
             schedule_since="2026-12-01T13:30:00Z")
    put_cron(clients, alerting, "paused", td, schedule="cron(0 * * * ? *)", suspend=True,
             notifications=Notifications(pagerduty=KEY, no_run_threshold_s=300))
    assert Dispatcher(clients, alerting).dispatch("hourly", "2026-12-01T14:00:00Z").status \
        == "started"
    watchdog = Watchdog(clients, alerting, Dispatcher(clients, alerting),
                        now=lambda: T0 + timedelta(minutes=6), missed_interval_s=0)
    assert "missed" not in watchdog.sweep()
    assert pagerduty.events() == []


def test_an_overlong_run_alerts_once(plane, alerting, slack):
    clients, td = plane
    put_cron(clients, alerting, "slow", td,
             notifications=Notifications(slack="#ops", ran_longer_than_threshold_s=600))
    outcome = Dispatcher(clients, alerting).dispatch("slow", "2026-12-01T14:00:00Z")
    send_event(clients.client("sqs"), alerting,
               lifecycle(outcome.task_arn, outcome.execution_id)[1])      # RUNNING
    drain(EventConsumer(clients, alerting, wait_time_s=0))
    later = lambda: datetime.now(UTC) + timedelta(minutes=30)  # noqa: E731
    replicas = [Watchdog(AwsClients(alerting), alerting, Dispatcher(clients, alerting),
                         now=later, missed_interval_s=3600) for _ in range(3)]
    results = in_parallel([(w.sweep, ()) for w in replicas])
    assert sum(r.get("overlong", 0) for r in results) == 1
    [message] = slack.messages()
    assert message["channel"] == "#ops" and "still running after" in message["text"]
    for watchdog in replicas:
        watchdog.sweep()
    assert len(slack.messages()) == 1
    record = ExecutionStore(clients, alerting).get(outcome.execution_id)
    assert record.overlong_at and record.outbox is None   # (the emulator's task ends meanwhile)


def test_a_run_that_fails_to_start_alerts(plane, alerting, pagerduty):
    clients, _ = plane
    put_cron(clients, alerting, "broken", None, notifications=Notifications(pagerduty=KEY))
    outcome = Dispatcher(clients, alerting).dispatch("broken", "2026-12-01T14:00:00Z")
    assert outcome.status == "failed_to_start"
    [trigger] = pagerduty.events()
    assert "failed to start" in trigger["payload"]["summary"]
    settled(ExecutionStore(clients, alerting).get(outcome.execution_id),
            ExecutionStore(clients, alerting))
