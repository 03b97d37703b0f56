"""The notifiers against local fakes of Slack and PagerDuty: what each sends, and how each
answer becomes success, a TransientError or a PermanentError with what to fix."""

from __future__ import annotations

import pytest

from reconciler.adapters.notifiers import Notifiers
from reconciler.core.alerts.model import Notice
from reconciler.errors import PermanentError, TransientError
from reconciler.settings import Settings
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.support.fakes.slack import SlackFake

KEY = "0123456789abcdef0123456789ABCDEF"
TOKEN = "xoxb-test-token"
SLACK = Notice("slack", "message", "failed", "nightly", "crons", execution_id="e1",
               channel="#team", summary="cron nightly failed", text="cron nightly failed")
TRIGGER = Notice("pagerduty", "trigger", "failed", "nightly", "crons", execution_id="e1",
                 routing_key=KEY, dedup_key="crons/nightly/failed", summary="cron nightly failed",
                 details=(("status", "FAILED"),), links=(("https://runbooks.example", "runbook"),))


@pytest.fixture
def slack():
    with SlackFake(token=TOKEN, channels=("#team",)) as fake:
        yield fake


@pytest.fixture
def pagerduty():
    with PagerDutyFake() as fake:
        yield fake


def notifiers(**settings) -> Notifiers:
    return Notifiers(Settings(notify_timeout_s=2, **settings))


def test_slack_web_api(slack):
    notifiers(slack_token=TOKEN, slack_api_url=slack.api_url).deliver(SLACK)
    [request] = slack.received
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json()["channel"] == "#team" and request.json()["text"] == SLACK.text


@pytest.mark.parametrize("token, notice, error, fix", [
    ("xoxb-wrong", SLACK, "invalid_auth", "CRONCTL_SLACK_TOKEN"),
    (TOKEN, Notice("slack", "message", "failed", "n", "crons", channel="#nowhere", text="x"),
     "channel_not_found", "notifications.slack"),
])
def test_slack_refusals_are_permanent_and_say_what_to_fix(slack, token, notice, error, fix):
    with pytest.raises(PermanentError) as raised:
        notifiers(slack_token=token, slack_api_url=slack.api_url).deliver(notice)
    assert error in str(raised.value) and fix in str(raised.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_slack_overload_is_transient(slack, status):
    slack.fail(status, times=1)
    with pytest.raises(TransientError):
        notifiers(slack_token=TOKEN, slack_api_url=slack.api_url).deliver(SLACK)


def test_slack_down_is_transient(slack):
    slack.down()
    with pytest.raises(TransientError, match="cannot connect|no answer"):
        notifiers(slack_token=TOKEN, slack_api_url=slack.api_url).deliver(SLACK)


def test_slack_webhook_names_the_channel(slack):
    notifiers(slack_webhook_url=slack.webhook_url).deliver(SLACK)
    assert slack.webhook_messages() == [{"text": "[#team] cron nightly failed"}]
    with pytest.raises(PermanentError, match="HTTP 404"):
        notifiers(slack_webhook_url=slack.url + "/services/T1/B1/wrong").deliver(SLACK)


def test_slack_without_token_or_webhook_says_what_to_set():
    with pytest.raises(PermanentError, match="CRONCTL_SLACK_TOKEN or CRONCTL_SLACK_WEBHOOK_URL"):
        notifiers().deliver(SLACK)


def test_pagerduty_trigger_and_resolve(pagerduty):
    sender = notifiers(pagerduty_events_url=pagerduty.events_url)
    sender.deliver(TRIGGER)
    sender.deliver(Notice("pagerduty", "resolve", "failed", "nightly", "crons", routing_key=KEY,
                          dedup_key="crons/nightly/failed"))
    trigger, resolve = pagerduty.events()
    assert trigger == {"routing_key": KEY, "event_action": "trigger",
                       "dedup_key": "crons/nightly/failed",
                       "payload": {"summary": "cron nightly failed", "source": "cronctl/crons",
                                   "severity": "error", "component": "nightly",
                                   "custom_details": {"status": "FAILED"}},
                       "links": [{"href": "https://runbooks.example", "text": "runbook"}]}
    assert resolve == {"routing_key": KEY, "event_action": "resolve",
                       "dedup_key": "crons/nightly/failed"}


def test_pagerduty_answers(pagerduty):
    sender = notifiers(pagerduty_events_url=pagerduty.events_url)
    with pytest.raises(PermanentError, match="HTTP 400"):
        sender.deliver(Notice("pagerduty", "trigger", "failed", "n", "crons",
                              routing_key="short", dedup_key="crons/n/failed", summary="x"))
    pagerduty.fail(429, times=1)
    with pytest.raises(TransientError, match="rate limited"):
        sender.deliver(TRIGGER)
    pagerduty.fail(502, times=1)
    with pytest.raises(TransientError):
        sender.deliver(TRIGGER)
    sender.deliver(TRIGGER)
    assert len(pagerduty.events("trigger")) == 1
