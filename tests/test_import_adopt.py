"""`cronctl import aws --adopt` then the first reconcile, against the moto server: the live
rule is taken over in place, and across the switch no scheduled time is missed and none
starts twice.

EventBridge does not fire on the emulator, so the test fires the rule itself
(tests/support/firing.py): after every AWS call the reconcile pass makes, it fires the next
scheduled time from the rule as it is at that moment. An ECS target would start the task
directly (counted); a dispatch target delivers to the dispatcher, which starts at most one
task per cron and scheduled time.
"""

from __future__ import annotations

import json

import pytest

from reconciler.cli import main
from reconciler.service.control.reconcile import run_pass
from tests.support.firing import ROLE, Fires, live_rule
from tests.support.moto import REGION
from tests.support.reconcile_env import live_state, prepare


@pytest.fixture
def adopted(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients = prepare(settings)
    live_rule(settings, clients, "test-invoices")
    code = main(["import", "aws", "--rules-prefix", "test-", "--adopt", "--namespace", "test",
                 "--out", str(tmp_path / "crons.d")])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "adopted rule test-invoices for cron invoices" in report
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


def test_the_imported_file_and_the_tags(adopted):
    clients, settings, root = adopted
    text = (root / "crons.d" / "invoices.yaml").read_text()
    assert "schedule: cron(*/5 * * * ? *)" in text
    tags = clients.client("events").list_tags_for_resource(
        ResourceARN=f"arn:aws:events:{REGION}:123456789012:rule/test-invoices")["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "managed-by": "cronctl", "cronctl:namespace": "test", "cronctl:cron": "invoices"}


def test_the_first_reconcile_takes_the_rule_over_without_a_lost_or_double_run(adopted):
    clients, settings, _ = adopted
    dry = run_pass(clients, settings, dry_run=True)
    assert dry.ok, dry
    mine = [(c.resource, c.action, c.reason) for c in dry.plan.pending if c.cron == "invoices"]
    assert [m[:2] for m in mine] == [("registry", "create"), ("schedule", "update")]
    assert mine[1][2].startswith("adopting")
    fires = Fires(settings, rules=("test-invoices",))
    # fired before the pass (the rule starts the task), after each of its calls, and after
    # it (through dispatch)
    result = fires.around(clients, settings, ("events", "dynamodb", "ecs"))
    assert result.ok, result
    assert len(fires.times) > 10
    assert fires.starts() == dict.fromkeys(fires.times, 1)
    assert fires.direct.get(fires.times[0]) == 1 and fires.times[-1] not in fires.direct
    rule = live_state(clients, settings)["rules"]["test-invoices"]
    assert [t["Id"] for t in rule["targets"]] == ["cronctl-dispatch"]
    assert run_pass(clients, settings, dry_run=True).plan.has_changes is False


def test_schedules_of_the_namespaces_group_are_taken_over_in_place(settings, tmp_path,
                                                                   monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", REGION)
    settings = settings.with_(scheduler="scheduler")
    clients = prepare(settings)
    td = clients.client("ecs").register_task_definition(
        family="x", containerDefinitions=[{"name": "app", "image": "app:1", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    scheduler = clients.client("scheduler")
    scheduler.create_schedule_group(Name="test")
    scheduler.create_schedule(
        Name="ledger", GroupName="test", ScheduleExpression="cron(15 3 * * ? *)",
        ScheduleExpressionTimezone="Europe/Berlin", FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/c", "RoleArn": ROLE,
                "EcsParameters": {"TaskDefinitionArn": td}})
    code = main(["import", "aws", "--schedule-group", "test", "--adopt", "--namespace",
                 "test", "--out", str(tmp_path / "crons.d")])
    assert code == 0, capsys.readouterr().out
    settings = settings.with_(repo=str(tmp_path))
    plan = run_pass(clients, settings, dry_run=True).plan
    assert [(c.resource, c.action) for c in plan.pending if c.cron == "ledger"] == [
        ("registry", "create"), ("schedule", "update")]
    assert run_pass(clients, settings, dry_run=False).ok
    target = scheduler.get_schedule(Name="ledger", GroupName="test")["Target"]
    assert target["Arn"].endswith(":test-dispatch") and "EcsParameters" not in target
    assert json.loads(target["Input"])["cron"] == "ledger"
