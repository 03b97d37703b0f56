"""The EventBridge Scheduler backend end to end, time zones included, and switching backends
in both directions (exactly one schedule per cron afterwards)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons

CRONS = {
    "berlin": cron_yaml("cron(0 5 * * ? *)", timezone="Europe/Berlin"),
    "often": cron_yaml("rate(5 minutes)", suspend=True),
}


@pytest.fixture
def env(settings, tmp_path):
    clients = prepare(settings)
    write_crons(tmp_path, CRONS)
    return clients, settings.with_(repo=str(tmp_path))


def test_scheduler_backend_creates_schedules_with_time_zones(env):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    state = live_state(clients, settings)
    assert state["rules"] == {}
    berlin = state["schedules"]["berlin"]
    assert berlin["ScheduleExpression"] == "cron(0 5 * * ? *)"
    assert berlin["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert berlin["State"] == "ENABLED" and berlin["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert berlin["Target"]["Arn"] == "arn:aws:sns:us-east-1:123456789012:test-dispatch"
    assert berlin["Target"]["RoleArn"] == "arn:aws:iam::123456789012:role/test-scheduler"
    assert json.loads(berlin["Target"]["Input"]) == {
        "cron": "berlin", "scheduled_at": "<aws.scheduler.scheduled-time>"}
    assert state["schedules"]["often"]["State"] == "DISABLED"
    group_arn = clients.client("scheduler").get_schedule_group(Name="test")["Arn"]
    tags = clients.client("scheduler").list_tags_for_resource(ResourceArn=group_arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"managed-by": "cronctl",
                                                    "cronctl:namespace": "test"}
    assert state["registry"]["berlin"]["schedule_backend"] == "scheduler"
    assert not run_pass(clients, settings, dry_run=True).plan.has_changes

    write_crons(Path(settings.repo), {
        **CRONS, "berlin": cron_yaml("cron(0 6 * * ? *)", timezone="America/New_York")})
    result = run_pass(clients, settings, dry_run=False)
    assert [(c.cron, c.resource, c.action) for c in result.applied] == [
        ("berlin", "schedule", "update"), ("berlin", "registry", "update")]
    berlin = live_state(clients, settings)["schedules"]["berlin"]
    assert (berlin["ScheduleExpression"], berlin["ScheduleExpressionTimezone"]) == \
        ("cron(0 6 * * ? *)", "America/New_York")


def test_time_zone_on_rules_is_an_error_for_that_cron(env):
    clients, settings = env
    result = run_pass(clients, settings, dry_run=False)
    assert not result.ok
    (error,) = result.plan.errors
    assert error.cron == "berlin"
    assert error.message.startswith("timezone Europe/Berlin needs --scheduler scheduler")
    state = live_state(clients, settings)
    assert sorted(state["rules"]) == ["test-often"] and sorted(state["registry"]) == ["often"]


def test_switching_backend_leaves_exactly_one_schedule_per_cron(env):
    clients, settings = env
    write_crons(Path(settings.repo), {
        "one": cron_yaml("cron(0 5 * * ? *)"), "two": cron_yaml("rate(1 hour)")})
    assert run_pass(clients, settings, dry_run=False).ok
    rules_state = live_state(clients, settings)
    assert sorted(rules_state["rules"]) == ["test-one", "test-two"]

    to_scheduler = settings.with_(scheduler="scheduler")
    result = run_pass(clients, to_scheduler, dry_run=False)
    assert result.ok, result
    assert [(c.cron, c.action, c.reason) for c in result.applied if c.cron == "one"] == [
        ("one", "create", "backend switch rules -> scheduler"),
        ("one", "delete", "backend switch rules -> scheduler"),
        ("one", "update", "backend switch rules -> scheduler")]
    state = live_state(clients, settings)
    assert state["rules"] == {} and sorted(state["schedules"]) == ["one", "two"]
    assert {r["schedule_backend"] for r in state["registry"].values()} == {"scheduler"}
    assert not run_pass(clients, to_scheduler, dry_run=True).plan.has_changes

    assert run_pass(clients, settings, dry_run=False).ok
    back = live_state(clients, settings)
    assert back["schedules"] == {} and back["rules"] == rules_state["rules"]
    assert back["registry"] == rules_state["registry"]


def test_scheduler_schedules_missing_from_the_registry_are_adopted(env):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    assert run_pass(clients, settings, dry_run=False).ok
    clean = live_state(clients, settings)
    for name in CRONS:
        clients.client("dynamodb").delete_item(TableName=settings.registry_table,
                                               Key={"name": {"S": name}})
    dry = run_pass(clients, settings, dry_run=True)
    assert [(c.cron, c.resource, c.action) for c in dry.plan.pending] == [
        ("berlin", "registry", "create"), ("often", "registry", "create")]
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean


def test_schedule_in_a_group_not_ours_is_never_touched(env):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    scheduler = clients.client("scheduler")
    scheduler.create_schedule_group(Name="test")  # someone else's group, no tags
    scheduler.create_schedule(
        Name="often", GroupName="test", ScheduleExpression="rate(9 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": "arn:aws:sqs:us-east-1:123456789012:theirs",
                "RoleArn": "arn:aws:iam::123456789012:role/theirs"})
    result = run_pass(clients, settings, dry_run=False)
    assert [e.cron for e in result.plan.errors] == ["often"]
    state = live_state(clients, settings)
    assert state["schedules"]["often"]["ScheduleExpression"] == "rate(9 minutes)"
    assert sorted(state["registry"]) == ["berlin"]


def _edit_schedule(scheduler, **changes):
    raw = scheduler.get_schedule(GroupName="test", Name="berlin")
    args = {k: raw[k] for k in ("Name", "GroupName", "ScheduleExpression",
                                "ScheduleExpressionTimezone", "State", "Target",
                                "FlexibleTimeWindow")}
    scheduler.update_schedule(**{**args, **changes})


@pytest.mark.parametrize("tamper, reason, action", [
    (lambda s: _edit_schedule(s, ScheduleExpressionTimezone="Asia/Tokyo"),
     "drift: schedule edited outside cronctl", "update"),
    (lambda s: _edit_schedule(s, State="DISABLED"),
     "drift: schedule disabled outside cronctl", "update"),
    (lambda s: _edit_schedule(s, Target={
        "Arn": "arn:aws:sqs:us-east-1:123456789012:elsewhere",
        "RoleArn": "arn:aws:iam::123456789012:role/test-scheduler", "Input": "{}"}),
     "drift: schedule edited outside cronctl", "update"),
    (lambda s: s.delete_schedule(GroupName="test", Name="berlin"),
     "drift: schedule deleted outside cronctl", "create"),
])
def test_scheduler_drift_is_shown_and_repaired(env, tamper, reason, action):
    clients, settings = env
    settings = settings.with_(scheduler="scheduler")
    assert run_pass(clients, settings, dry_run=False).ok
    clean = live_state(clients, settings)
    tamper(clients.client("scheduler"))
    dry = run_pass(clients, settings, dry_run=True)
    assert [(c.cron, c.resource, c.action, c.reason) for c in dry.plan.pending] == [
        ("berlin", "schedule", action, reason)]
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean
    assert not run_pass(clients, settings, dry_run=True).plan.has_changes
