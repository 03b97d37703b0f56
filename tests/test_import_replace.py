"""A live rule not named as cronctl names the cron's rule: `cronctl import aws --adopt` writes
the cron with ``replaces: {rule: NAME}`` and tags the rule; the first reconcile hands the rule
over to dispatch, creates the cron's own schedule, then deletes the rule. Against the moto
server: across the switch no scheduled time is missed and none starts twice.

EventBridge does not fire on the emulator, so the test fires the schedules itself
(tests/support/firing.py, as tests/test_import_adopt.py does): after every AWS call of the
reconcile pass, the next scheduled time from every schedule of the cron as it is at that
moment (the old rule, the new rule or Scheduler schedule). An ECS target starts the task
directly (counted); a dispatch target delivers to the dispatcher, which starts at most one
task per cron and scheduled time.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from reconciler.cli import main
from reconciler.service.control import apply
from reconciler.service.control.reconcile import run_pass
from tests.support.firing import Fires, live_rule
from tests.support.moto import REGION
from tests.support.reconcile_env import live_state, prepare, write_crons

OLD = "nightly-invoices"
OLD_ARN = f"arn:aws:events:{REGION}:123456789012:rule/{OLD}"
SERVICES = ("events", "scheduler", "dynamodb", "ecs")


def import_adopt(settings, tmp_path, capsys, backend: str = "rules"):
    """The live rule imported with --adopt; (clients, settings with the repo, report)."""
    settings = settings.with_(scheduler=backend)
    clients = prepare(settings)
    live_rule(settings, clients, OLD, "invoices, by hand")
    code = main(["import", "aws", "--rules-prefix", "nightly-", "--adopt", "--namespace",
                 "test", "--out", str(tmp_path / "crons.d")])
    report = capsys.readouterr().out
    assert code == 0, report
    return clients, settings.with_(repo=str(tmp_path)), report


def firing(settings) -> Fires:
    """The harness firing every schedule cron ``invoices`` may have here: the old rule, rule
    ``test-invoices``, Scheduler schedule ``test/invoices``."""
    return Fires(settings, rules=(OLD, "test-invoices"), group="test")


def test_the_import_writes_replaces_and_tags_the_rule_as_the_crons(settings, tmp_path,
                                                                  monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients, _, report = import_adopt(settings, tmp_path, capsys)
    text = (tmp_path / "crons.d" / "invoices.yaml").read_text()
    assert "schedule: cron(*/5 * * * ? *)" in text
    assert "replaces:\n  rule: nightly-invoices\n" in text
    assert f"adopted rule {OLD} for cron invoices: the cron replaces it" in report
    tags = clients.client("events").list_tags_for_resource(ResourceARN=OLD_ARN)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "managed-by": "cronctl", "cronctl:namespace": "test", "cronctl:cron": "invoices"}
    # the rule itself is untouched until the reconcile
    targets = clients.client("events").list_targets_by_rule(Rule=OLD)["Targets"]
    assert [t["Id"] for t in targets] == ["run"] and "EcsParameters" in targets[0]


@pytest.mark.parametrize("backend, new", [("rules", "test-invoices"),
                                          ("scheduler", "test/invoices")])
def test_the_first_reconcile_replaces_the_rule_without_a_lost_or_double_run(
        settings, tmp_path, monkeypatch, capsys, backend, new):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients, settings, _ = import_adopt(settings, tmp_path, capsys, backend)
    dry = run_pass(clients, settings, dry_run=True)
    assert dry.ok, dry
    mine = [c for c in dry.plan.pending if c.cron == "invoices"]
    [td] = [c.id for c in dry.plan.pending if c.resource == "task-definition"]
    assert [(c.id, set(c.depends_on) - {td}) for c in mine] == [
        ("invoices/registry/create", set()),
        ("invoices/schedule/update", {"invoices/registry/create"}),
        ("invoices/schedule/create", {"invoices/registry/create", "invoices/schedule/update"}),
        ("invoices/schedule/delete", {"invoices/registry/create", "invoices/schedule/create",
                                      "invoices/schedule/update"})]
    assert mine[0].depends_on == (td,)
    assert mine[1].observed.current.name == mine[3].observed.current.name == OLD

    fires = firing(settings)
    result = fires.around(clients, settings, SERVICES)
    assert result.ok, result
    assert [(c.resource, c.action) for c in result.applied if c.cron == "invoices"] == [
        ("registry", "create"), ("schedule", "update"), ("schedule", "create"),
        ("schedule", "delete")]
    assert len(fires.times) > 10
    # every scheduled time fired across the switch started exactly one task
    assert fires.starts() == dict.fromkeys(fires.times, 1)
    first, last = fires.times[0], fires.times[-1]
    assert fires.sources[first] == [f"{OLD} ecs"]
    assert fires.sources[last] == [f"{new} dispatch"]
    # the switch went through the hand-over: the old rule fired through dispatch, and for a
    # while both schedules fired the same time (one task: the execution id)
    assert any(s == [f"{OLD} dispatch"] for s in fires.sources.values())
    assert any(s == [f"{OLD} dispatch", f"{new} dispatch"] for s in fires.sources.values())

    with pytest.raises(ClientError, match="ResourceNotFound"):
        clients.client("events").describe_rule(Name=OLD)
    item = clients.client("dynamodb").get_item(TableName=settings.registry_table,
                                               Key={"name": {"S": "invoices"}})["Item"]
    # the registry item, written first, records when the cron's own schedule started
    assert item["schedule_arn"]["S"].endswith(new) and "schedule_since" in item
    state = live_state(clients, settings)
    if backend == "rules":
        assert [t["Id"] for t in state["rules"]["test-invoices"]["targets"]] == [
            "cronctl-dispatch"]
    else:
        target = clients.client("scheduler").get_schedule(Name="invoices",
                                                          GroupName="test")["Target"]
        assert json.loads(target["Input"])["cron"] == "invoices"
    again = run_pass(clients, settings, dry_run=True)
    assert again.ok and again.plan.has_changes is False


def _moved(order, change_id: str, before_id: str):
    """``order`` with the change ``change_id`` moved just before ``before_id``, and its
    dependency on ``before_id`` turned around (the apply runs changes by their dependencies,
    several at once: the wrong order has to be in them)."""
    from dataclasses import replace

    def turned(change):
        if change.id == change_id:
            return replace(change, depends_on=tuple(d for d in change.depends_on
                                                    if d != before_id),
                           after=tuple(d for d in change.after if d != before_id))
        if change.id == before_id:
            return replace(change, depends_on=(*change.depends_on, change_id))
        return change

    changes = [turned(c) for c in order if c.id != change_id]
    moved = turned(next(c for c in order if c.id == change_id))
    at = next(i for i, c in enumerate(changes) if c.id == before_id)
    return tuple(changes[:at] + [moved] + changes[at:])


@pytest.mark.parametrize("change_id, before_id, wrong", [
    # the new schedule while the old rule still starts its task itself: a time started twice
    ("invoices/schedule/create", "invoices/schedule/update", 2),
    # the old rule deleted before the new schedule exists: a time missed
    ("invoices/schedule/delete", "invoices/schedule/create", 0),
])
def test_the_firing_harness_sees_a_wrong_order(settings, tmp_path, monkeypatch, capsys,
                                               change_id, before_id, wrong):
    """The harness is not blind: applied in a wrong order, the switch misses a run or starts
    one twice, and the count says so."""
    monkeypatch.setenv("AWS_REGION", REGION)
    clients, settings, _ = import_adopt(settings, tmp_path, capsys)
    planned = apply.execution_order
    monkeypatch.setattr(apply, "execution_order",
                        lambda changes: _moved(planned(changes), change_id, before_id))
    fires = firing(settings)
    assert fires.around(clients, settings, SERVICES).ok
    assert wrong in fires.starts().values()


def test_a_rule_not_tagged_ours_is_an_error_and_nothing_of_the_cron_changes(
        settings, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients = prepare(settings)
    live_rule(settings, clients, OLD, "invoices, by hand")
    write_crons(tmp_path, {"invoices": (
        'schedule: "cron(*/5 * * * ? *)"\ncontainer:\n  image: ghcr.io/example/billing:3\n'
        f"replaces:\n  rule: {OLD}\n"), "other": (
        'schedule: "rate(1 hour)"\ncontainer:\n  image: perl\n')})
    settings = settings.with_(repo=str(tmp_path))
    result = run_pass(clients, settings, dry_run=False)
    [error] = result.plan.errors
    assert (error.cron, error.file) == ("invoices", "crons.d/invoices.yaml")
    assert f"rule {OLD} is not tagged as cronctl's for cron invoices" in error.message
    assert "`cronctl import aws --rules-prefix nightly- --adopt --namespace test`" \
        in error.message
    assert f"`aws events tag-resource --resource-arn {OLD_ARN} --tags " in error.message
    assert not result.apply_errors
    assert {c.cron for c in result.applied} - {c.cron for c in result.applied
                                               if c.resource == "task-definition"} == {"other"}
    state = live_state(clients, settings)
    assert set(state["rules"]) == {"test-other"}
    assert set(state["registry"]) == {"other"}
    events = clients.client("events")
    targets = events.list_targets_by_rule(Rule=OLD)["Targets"]
    assert [t["Id"] for t in targets] == ["run"] and "EcsParameters" in targets[0]
    assert events.list_tags_for_resource(ResourceARN=OLD_ARN)["Tags"] == []


def test_a_rule_already_gone_needs_nothing(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients = prepare(settings)
    write_crons(tmp_path, {"invoices": (
        'schedule: "cron(*/5 * * * ? *)"\ncontainer:\n  image: perl\n'
        f"replaces:\n  rule: {OLD}\n")})
    settings = settings.with_(repo=str(tmp_path))
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, result
    assert [(c.resource, c.action, c.reason) for c in result.applied
            if c.cron == "invoices"] == [("schedule", "create", "new cron"),
                                         ("registry", "create", "new cron")]
    assert result.api_calls.get("eventbridge.DescribeRule") == 1
    again = run_pass(clients, settings, dry_run=True)
    assert again.ok and not again.plan.has_changes


def test_a_rule_with_a_dispatch_target_and_its_own_is_still_handed_over(
        settings, tmp_path, monkeypatch, capsys):
    """Its own target (an ECS task started directly) beside a dispatch target would start a
    run twice once the new schedule exists: it is handed over all the same."""
    monkeypatch.setenv("AWS_REGION", REGION)
    clients, settings, _ = import_adopt(settings, tmp_path, capsys)
    clients.client("events").put_targets(Rule=OLD, Targets=[{
        "Id": "cronctl-dispatch", "Arn": f"arn:aws:sns:{REGION}:123456789012:test-dispatch",
        "InputTransformer": {"InputPathsMap": {"time": "$.time"},
                             "InputTemplate": '{"cron": "invoices", "scheduled_at": "<time>"}'}}])
    plan = run_pass(clients, settings, dry_run=True).plan
    assert [(c.resource, c.action) for c in plan.pending if c.cron == "invoices"] == [
        ("registry", "create"), ("schedule", "update"), ("schedule", "create"),
        ("schedule", "delete")]
    assert run_pass(clients, settings, dry_run=False).ok
    assert "test-invoices" in live_state(clients, settings)["rules"]
    with pytest.raises(ClientError, match="ResourceNotFound"):
        clients.client("events").describe_rule(Name=OLD)
