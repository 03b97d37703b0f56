"""The alert decisions (pure): a run folded into its cron's alert state, routing, alert-after,
auto-resolve, missed fires, overlong runs, PagerDuty keys, the Slack warning, what status
shows, and message contents."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.alerts import decide
from reconciler.core.alerts.model import AlertState, Notice, initial_effects
from reconciler.core.alerts.routing import pagerduty_problem, routing_key
from reconciler.core.executions.records import Execution
from reconciler.core.spec import ContainerSpec, CronSpec, Notifications

KEY = "0123456789abcdef0123456789ABCDEF"
NS = "crons"


def spec(name="nightly", schedule="cron(0 * * * ? *)", timezone="UTC", docs=None,
         suspend=False, **notifications) -> CronSpec:
    return CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule=schedule,
                    timezone=timezone, container=ContainerSpec(image="busybox"),
                    suspend=suspend, docs=docs, notifications=Notifications(**notifications))


def run(status, eid="e1", exit_code=None, **kw) -> Execution:
    return Execution(execution_id=eid, cron="nightly", scheduled_at="2026-12-01T13:50:00.000Z",
                     status=status, exit_code=exit_code, task_arn=kw.pop("task_arn", "arn:t"),
                     started_at="2026-12-01T13:50:03.000Z", stopped_at="2026-12-01T13:50:07.000Z",
                     **kw)


def fold(state, runs, cron):
    notices = []
    for r in runs:
        decision = decide.evaluate(state, r, cron, NS)
        state = decision.state
        notices.append([(n.notifier, n.action, n.kind) for n in decision.notices])
    return state, notices


@pytest.mark.parametrize("statuses, alert_after, expected", [
    # one failure pages, the next success resolves
    (["FAILED", "SUCCESS"], 1, [[("pagerduty", "trigger", "failed")],
                                [("pagerduty", "resolve", "failed")]]),
    # alert-after 3: the first two page nobody, the third does, the fourth does not page again
    (["FAILED", "TIMEOUT", "LOST", "FAILED_TO_START", "SUCCESS"], 3,
     [[], [], [("pagerduty", "trigger", "failed")], [], [("pagerduty", "resolve", "failed")]]),
    # two failures then success with alert-after 3: nothing opened, nothing to resolve
    (["FAILED", "FAILED", "SUCCESS", "FAILED"], 3, [[], [], [], []]),
    # a missed run is its own alert; success resolves both
    (["MISSED", "FAILED", "SUCCESS"], 1,
     [[("pagerduty", "trigger", "missed")], [("pagerduty", "trigger", "failed")],
      [("pagerduty", "resolve", "missed"), ("pagerduty", "resolve", "failed")]]),
    # SKIPPED changes nothing; success with nothing open sends nothing
    (["SKIPPED", "SUCCESS"], 1, [[], []]),
])
def test_pagerduty_routing_alert_after_and_resolve(statuses, alert_after, expected):
    cron = spec(pagerduty=KEY, slack="#team", alert_after=alert_after)
    runs = [run(s, eid=f"e{i}", exit_code=2 if s == "FAILED" else None)
            for i, s in enumerate(statuses)]
    _, notices = fold(AlertState("nightly"), runs, cron)
    assert notices == expected


def test_slack_routing_without_a_routing_key_and_recovered_message():
    cron = spec(slack="#team", docs="https://runbooks.example/nightly")
    state, notices = fold(AlertState("nightly"), [run("FAILED", exit_code=2)], cron)
    assert notices == [[("slack", "message", "failed")]]
    assert state.consecutive_failures == 1 and state.open[0].notifier == "slack"
    decision = decide.evaluate(state, run("FAILED", eid="e2", exit_code=2), cron, NS)
    assert decision.notices == () and decision.state.consecutive_failures == 2
    recovered = decide.evaluate(decision.state, run("SUCCESS", eid="e3", exit_code=0), cron, NS)
    [notice] = recovered.notices
    assert (notice.notifier, notice.kind, notice.channel) == ("slack", "recovered", "#team")
    assert "recovered" in notice.text and "2 consecutive failures" in notice.text
    assert recovered.state == AlertState("nightly", last_status="SUCCESS")


def test_a_slack_failure_message_says_everything_needed():
    cron = spec(slack="#team", docs="https://runbooks.example/nightly")
    [notice] = decide.evaluate(AlertState("nightly"), run("FAILED", exit_code=2, reason="boom"),
                               cron, "prod").notices
    for part in ("nightly", "FAILED", "exit code 2", "4s", "2026-Dec-01 13:50:00 UTC",
                 "https://runbooks.example/nightly", "cronctl logs nightly e1 --namespace prod",
                 "boom"):
        assert part in notice.text, part
    [default_ns] = decide.evaluate(AlertState("nightly"), run("FAILED", exit_code=2), cron,
                                   "crons").notices
    assert "cronctl logs nightly e1" in default_ns.text and "--namespace" not in default_ns.text


def test_a_pagerduty_trigger_is_complete():
    cron = spec(pagerduty=f"https://events.pagerduty.com/integration/{KEY}/enqueue",
                docs="https://runbooks.example/nightly")
    [notice] = decide.evaluate(AlertState("nightly"), run("TIMEOUT"), cron, "prod").notices
    assert notice.routing_key == KEY and notice.dedup_key == "prod/nightly/failed"
    assert "timed out" in notice.summary and notice.severity == "error"
    assert dict(notice.details)["status"] == "TIMEOUT"
    assert notice.links == (("https://runbooks.example/nightly", "runbook"),)
    assert Notice.from_json(notice.to_json()) == notice


def test_no_notifier_counts_but_sends_nothing():
    cron = spec()
    state, notices = fold(AlertState("nightly"), [run("FAILED")], cron)
    assert notices == [[]] and state.consecutive_failures == 1 and state.open == ()
    assert not decide.alerting(cron)


@pytest.mark.parametrize("value, key, problem", [
    (KEY, KEY, None),
    (f"https://events.pagerduty.com/integration/{KEY}/enqueue", KEY, None),
    ("https://events.pagerduty.com/v2/enqueue", None, "service URI must be of the form"),
    (f"https://evil.example/integration/{KEY}/enqueue", None, "service URI must be"),
    ("short", None, "32-character"),
    (KEY + "\n", None, "32-character"),
])
def test_pagerduty_keys(value, key, problem):
    assert routing_key(value) == key
    found = pagerduty_problem(value)
    assert (found is None) if problem is None else (problem in found)


T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize("cron, since, now, expected", [
    # hourly, threshold 10 min: at 14:20 the 14:00 fire is due (the window: 13:10-14:10)
    (spec(no_run_threshold_s=600), None, T0 + timedelta(minutes=20), [T0]),
    (spec(no_run_threshold_s=600), None, T0 + timedelta(minutes=70), [T0 + timedelta(hours=1)]),
    (spec(schedule="cron(*/10 * * * ? *)", no_run_threshold_s=600), None,
     T0 + timedelta(minutes=20), [T0 + timedelta(minutes=m) for m in (-40, -30, -20, -10, 0, 10)]),
    # the schedule only exists since 14:00:30: the 14:00 fire is not counted
    (spec(no_run_threshold_s=600), "2026-12-01T14:00:30Z", T0 + timedelta(minutes=20), []),
    # before the threshold has passed: not yet
    (spec(no_run_threshold_s=600), "2026-12-01T13:30:00Z", T0 + timedelta(minutes=5), []),
    # suspended, or without a threshold: nothing
    (spec(no_run_threshold_s=600, suspend=True), None, T0 + timedelta(minutes=20), []),
    (spec(), None, T0 + timedelta(minutes=20), []),
    # rate(): counted from the schedule's start, unknown without it
    (spec(schedule="rate(30 minutes)", no_run_threshold_s=60), "2026-12-01T13:05:00Z",
     T0 + timedelta(minutes=10),
     [datetime(2026, 12, 1, 13, 35, tzinfo=UTC), datetime(2026, 12, 1, 14, 5, tzinfo=UTC)]),
    (spec(schedule="rate(30 minutes)", no_run_threshold_s=60), None, T0, []),
    # in its time zone: 15:00 Berlin is 14:00 UTC
    (spec(schedule="cron(0 15 * * ? *)", timezone="Europe/Berlin", no_run_threshold_s=60),
     None, T0 + timedelta(minutes=2), [T0]),
])
def test_missed_fires(cron, since, now, expected):
    assert decide.missed_fires(cron, since, now) == expected


def test_missed_fires_are_bounded():
    every_minute = spec(schedule="cron(* * * * ? *)", no_run_threshold_s=60)
    fires = decide.missed_fires(every_minute, None, T0)
    assert len(fires) == decide.LOOK_BACK_FIRES and fires[-1] == T0 - timedelta(minutes=1)


@pytest.mark.parametrize("status, started_min_ago, noted, expected", [
    ("RUNNING", 20, None, True),
    ("RUNNING", 5, None, False),
    ("RUNNING", 20, "2026-12-01T14:15:00.000Z", False),   # once per run
    ("SUCCESS", 20, None, False),
])
def test_overlong(status, started_min_ago, noted, expected):
    cron = spec(ran_longer_than_threshold_s=900, slack="#team")
    record = replace(run(status), started_at=(T0 - timedelta(minutes=started_min_ago))
                     .strftime("%Y-%m-%dT%H:%M:%S.000Z"), stopped_at=None, overlong_at=noted)
    assert decide.overlong(record, cron, T0) is expected
    if expected:
        notice = decide.overlong_notice(record, cron, NS, T0)
        assert notice.channel == "#team" and "still running after 20m 0s" in notice.text


def test_slack_warnings_name_what_to_set():
    crons = [spec(name="b", slack="#b"), spec(name="a", slack="#a"), spec(name="c")]
    warnings = decide.slack_warnings(crons, slack_configured=False)
    assert [w.split(":")[0] for w in warnings] == ["cron a", "cron b"]
    assert all("CRONCTL_SLACK_TOKEN" in w and "CRONCTL_SLACK_WEBHOOK_URL" in w for w in warnings)
    assert decide.slack_warnings(crons, slack_configured=True) == []


def test_describe_state():
    cron = spec(pagerduty=KEY, alert_after=3)
    assert decide.describe_state(AlertState("nightly"), cron) is None
    state, _ = fold(AlertState("nightly"), [run("FAILED", eid="1"), run("FAILED", eid="2")], cron)
    assert decide.describe_state(state, cron) == \
        "FAILING since 2026-Dec-01 13:50 UTC (2 consecutive failures, alerts after 3)"
    state, _ = fold(state, [run("FAILED", eid="3")], cron)
    assert decide.describe_state(state, cron) == \
        "FAILING since 2026-Dec-01 13:50 UTC (3 consecutive failures, PagerDuty triggered)"
    assert AlertState.from_json(state.to_json(), state.version) == state


def test_initial_effects():
    assert initial_effects("SKIPPED") == frozenset()
    assert initial_effects("FAILED") == {"finished", "ping", "alert"}
    assert initial_effects("FAILED_TO_START", finished=False) == {"ping", "alert"}
