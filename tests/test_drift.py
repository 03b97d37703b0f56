"""Drift against the moto server: changes made outside cronctl show in the plan as drift and
the next apply repairs them; our tagged resources are adopted; foreign ones never touched."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from reconciler.core.plan.planner import ADOPTING
from reconciler.service.control.reconcile import run_pass
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons

CRONS = {
    "alpha": cron_yaml("cron(0 5 * * ? *)", "perl"),
    "beta": cron_yaml("rate(5 minutes)", "perl"),
}


@pytest.fixture
def synced(settings, tmp_path):
    clients = prepare(settings)
    settings = settings.with_(repo=str(tmp_path))
    write_crons(tmp_path, CRONS)
    assert run_pass(clients, settings, dry_run=False).ok
    return clients, settings, live_state(clients, settings)


def edit_expression(events):
    events.put_rule(Name="test-alpha", ScheduleExpression="rate(1 day)", State="ENABLED")


def edit_and_strip_tags(events):
    arn = events.describe_rule(Name="test-alpha")["Arn"]
    tags = events.list_tags_for_resource(ResourceARN=arn)["Tags"]
    events.untag_resource(ResourceARN=arn, TagKeys=[t["Key"] for t in tags])
    edit_expression(events)


def disable(events):
    events.disable_rule(Name="test-alpha")


def remove_target(events):
    events.remove_targets(Rule="test-alpha", Ids=["cronctl-dispatch"])


def delete_rule(events):
    remove_target(events)
    events.delete_rule(Name="test-alpha")


@pytest.mark.parametrize("tamper, reason, action", [
    (edit_expression, "drift: rule edited outside cronctl", "update"),
    (disable, "drift: rule disabled outside cronctl", "update"),
    (remove_target, "drift: target removed", "update"),
    (delete_rule, "drift: rule deleted outside cronctl", "create"),
])
def test_rule_drift_is_shown_and_repaired(synced, tamper, reason, action):
    clients, settings, clean = synced
    tamper(clients.client("events"))
    dry = run_pass(clients, settings, dry_run=True)
    assert [(c.cron, c.resource, c.action, c.reason) for c in dry.plan.pending] == [
        ("alpha", "schedule", action, reason)]
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean


def with_aws_put_rule_tagging(clients) -> None:
    """AWS's PutRule assigns tags only when it creates a rule (moto applies them on updates
    too): drop ``Tags`` from a PutRule of an existing rule, as AWS would ignore them."""
    probe = boto3.client("events")

    def ignore_tags_on_update(params, **_kwargs):
        try:
            probe.describe_rule(Name=params["Name"])
        except probe.exceptions.ResourceNotFoundException:
            return
        params.pop("Tags", None)

    clients.client("events").meta.events.register(
        "provide-client-params.events.PutRule", ignore_tags_on_update)


def test_ownership_tags_stripped_outside_are_restored(synced):
    clients, settings, clean = synced
    with_aws_put_rule_tagging(clients)
    edit_and_strip_tags(clients.client("events"))
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean


def test_deregistered_shared_definition_is_registered_again(synced):
    clients, settings, clean = synced
    ecs = clients.client("ecs")
    (arn,) = ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    ecs.deregister_task_definition(taskDefinition=arn)
    dry = run_pass(clients, settings, dry_run=True)
    rows = [(c.resource, c.action, c.reason) for c in dry.plan.pending]
    assert rows[0] == ("task-definition", "create",
                       "drift: task definition deregistered outside cronctl")
    assert rows[1:] == [("registry", "update", "task definition replaced")] * 2
    assert run_pass(clients, settings, dry_run=False).ok
    state = live_state(clients, settings)
    assert state["task_definitions"].keys() == clean["task_definitions"].keys()
    (new_arn,) = ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    assert new_arn != arn
    assert {r["task_definition_arn"] for r in state["registry"].values()} == \
        {new_arn.rsplit(":", 1)[0]}
    assert not run_pass(clients, settings, dry_run=True).plan.has_changes


def test_resources_tagged_ours_but_missing_from_registry_are_adopted(synced):
    clients, settings, clean = synced
    ddb = clients.client("dynamodb")
    for name in CRONS:
        ddb.delete_item(TableName=settings.registry_table, Key={"name": {"S": name}})
    dry = run_pass(clients, settings, dry_run=True)
    assert [(c.cron, c.resource, c.action, c.reason) for c in dry.plan.pending] == [
        (name, "registry", "create", ADOPTING) for name in sorted(CRONS)]
    assert run_pass(clients, settings, dry_run=False).ok
    assert live_state(clients, settings) == clean


def test_foreign_rule_with_our_name_is_never_touched(synced):
    clients, settings, _ = synced
    events = clients.client("events")
    events.put_rule(Name="test-gamma", ScheduleExpression="rate(7 days)", State="ENABLED",
                    Tags=[{"Key": "team", "Value": "billing"}])
    events.put_targets(Rule="test-gamma", Targets=[
        {"Id": "theirs", "Arn": "arn:aws:sqs:us-east-1:123456789012:theirs"}])
    root = settings.repo
    write_crons(Path(root), {
        **CRONS, "gamma": cron_yaml("cron(0 1 * * ? *)"), "delta": cron_yaml()})
    result = run_pass(clients, settings, dry_run=False)
    assert [(e.cron, "not managed by cronctl" in e.message) for e in result.plan.errors] == [
        ("gamma", True)]
    assert not result.ok
    state = live_state(clients, settings)
    gamma = state["rules"]["test-gamma"]
    assert gamma["expression"] == "rate(7 days)" and gamma["tags"] == {"team": "billing"}
    assert [t["Id"] for t in gamma["targets"]] == ["theirs"]
    assert "gamma" not in state["registry"] and "delta" in state["registry"]
    assert "test-delta" in state["rules"]
    write_crons(Path(root), CRONS)
    run_pass(clients, settings, dry_run=False)
    assert live_state(clients, settings)["rules"]["test-gamma"] == gamma
