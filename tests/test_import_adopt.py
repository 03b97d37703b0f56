"""`cronctl import aws --adopt` then the first reconcile, against the moto server: the live
rule is taken over in place, and across the switch no scheduled time is missed and none
starts twice.

EventBridge does not fire on the emulator, so the test fires the rule itself: after every
AWS call the reconcile pass makes, it fires the next scheduled time from the rule as it is at
that moment. An ECS target would start the task directly (counted); a dispatch target
delivers to the dispatcher, which starts at most one task per cron and scheduled time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.adapters.aws import AwsClients
from reconciler.cli import main
from reconciler.core.executions.records import execution_id
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.dispatch import Dispatcher
from tests.support.ecs_events import tasks_started_by
from tests.support.moto import REGION
from tests.support.reconcile_env import live_state, prepare

ROLE = "arn:aws:iam::123456789012:role/events-run-task"
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


@pytest.fixture
def adopted(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_REGION", REGION)
    clients = prepare(settings)
    ecs = clients.client("ecs")
    td = ecs.register_task_definition(
        family="invoices", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": "ghcr.io/example/billing:3",
                               "command": ["billing", "invoices"]}],
    )["taskDefinition"]["taskDefinitionArn"]
    events = clients.client("events")
    events.put_rule(Name="test-invoices", ScheduleExpression="cron(*/5 * * * ? *)",
                    State="ENABLED")
    events.put_targets(Rule="test-invoices", Targets=[{
        "Id": "run", "Arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{settings.cluster_name}",
        "RoleArn": ROLE, "EcsParameters": {"TaskDefinitionArn": td, "TaskCount": 1}}])
    code = main(["import", "aws", "--rules-prefix", "test-", "--adopt", "--namespace", "test",
                 "--out", str(tmp_path / "crons.d")])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "adopted rule test-invoices for cron invoices" in report
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


class Fires:
    """Fire the rule's next scheduled time as the rule is now; count starts per time."""

    def __init__(self, settings) -> None:
        self.clients = AwsClients(settings)
        self.settings = settings
        self.dispatcher = Dispatcher(self.clients, settings)
        self.direct: dict[str, int] = {}
        self.times: list[str] = []

    def fire(self, *_args, **_kwargs) -> None:
        at = (START + timedelta(minutes=5 * len(self.times))).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.times.append(at)
        targets = self.clients.client("events").list_targets_by_rule(
            Rule="test-invoices")["Targets"]
        for target in targets:
            if "EcsParameters" in target:
                self.direct[at] = self.direct.get(at, 0) + 1
            else:
                template = target["InputTransformer"]["InputTemplate"]
                cron = json.loads(template.replace('"<time>"', '""'))["cron"]
                self.dispatcher.dispatch(cron, at)

    def starts(self, at: str) -> int:
        dispatched = tasks_started_by(self.clients, self.settings, execution_id("invoices", at))
        return self.direct.get(at, 0) + len(dispatched)


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
    fires = Fires(settings)
    fires.fire()                                       # before: the rule starts the task
    for service in ("events", "dynamodb", "ecs"):
        clients.client(service).meta.events.register(f"after-call.{service}.*", fires.fire)
    result = run_pass(clients, settings, dry_run=False)
    for service in ("events", "dynamodb", "ecs"):
        clients.client(service).meta.events.unregister(f"after-call.{service}.*", fires.fire)
    assert result.ok, result
    fires.fire()                                       # after: through dispatch
    assert len(fires.times) > 10
    assert {at: fires.starts(at) for at in fires.times} == dict.fromkeys(fires.times, 1)
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
