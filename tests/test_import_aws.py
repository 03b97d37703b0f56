"""`cronctl import aws` against the moto server: live rules / schedules with ECS targets and
their task definitions become cron files; targets that are not ECS tasks are refused."""

from __future__ import annotations

import json

import boto3
import pytest

from reconciler.cli import main
from reconciler.core.cronfile.loader import load_file
from tests.support.moto import REGION

CLUSTER = f"arn:aws:ecs:{REGION}:123456789012:cluster/legacy"
ROLE = "arn:aws:iam::123456789012:role/events-run-task"


@pytest.fixture
def live(aws, monkeypatch):
    monkeypatch.setenv("AWS_REGION", REGION)
    ecs = boto3.client("ecs", region_name=REGION)
    td = ecs.register_task_definition(
        family="billing", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="512", memory="1024", taskRoleArn="arn:aws:iam::123456789012:role/billing",
        containerDefinitions=[{
            "name": "app", "image": "ghcr.io/example/billing:3", "essential": True,
            "command": ["billing", "run"],
            "environment": [{"name": "MODE", "value": "batch"}],
            "secrets": [{"name": "DB_URL", "valueFrom": "/billing/db-url"}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="legacy-invoices", ScheduleExpression="cron(0 6 ? * MON-FRI *)",
                    State="ENABLED")
    events.put_targets(Rule="legacy-invoices", Targets=[{
        "Id": "run", "Arn": CLUSTER, "RoleArn": ROLE,
        "EcsParameters": {"TaskDefinitionArn": td, "TaskCount": 1, "LaunchType": "FARGATE",
                          "NetworkConfiguration": {"awsvpcConfiguration": {
                              "Subnets": ["subnet-1"], "AssignPublicIp": "DISABLED"}}},
        "Input": json.dumps({"containerOverrides": [{
            "name": "app", "command": ["billing", "invoices"],
            "environment": [{"name": "MODE", "value": "invoices"}]}]})}])
    events.put_rule(Name="legacy-notify", ScheduleExpression="rate(1 hour)", State="DISABLED")
    events.put_targets(Rule="legacy-notify", Targets=[{
        "Id": "q", "Arn": f"arn:aws:sqs:{REGION}:123456789012:queue"}])
    scheduler = boto3.client("scheduler", region_name=REGION)
    scheduler.create_schedule_group(Name="jobs")
    scheduler.create_schedule(
        Name="reconcile-ledger", GroupName="jobs", ScheduleExpression="cron(15 3 * * ? *)",
        ScheduleExpressionTimezone="Europe/Berlin", State="ENABLED",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": CLUSTER, "RoleArn": ROLE,
                "EcsParameters": {"TaskDefinitionArn": td, "TaskCount": 1},
                "Input": json.dumps({"cpu": "1024", "memory": "2048"})})
    return td


def loaded(path):
    spec, diagnostics = load_file(path.name, path.read_bytes())
    assert diagnostics == []
    return spec


def test_rules_with_ecs_targets_are_imported_with_their_task_definition(live, tmp_path, capsys):
    out = tmp_path / "crons.d"
    code = main(["import", "aws", "--rules-prefix", "legacy-", "--out", str(out)])
    report = capsys.readouterr().out
    assert code == 1       # legacy-notify targets a queue
    assert [p.name for p in out.iterdir()] == ["invoices.yaml"]
    text = (out / "invoices.yaml").read_text()
    assert text.startswith("# Imported by cronctl import from rule legacy-invoices, "
                           f"arn:aws:events:{REGION}:123456789012:rule/legacy-invoices")
    spec = loaded(out / "invoices.yaml")
    assert spec.schedule == "cron(0 6 ? * MON-FRI *)" and spec.timezone == "UTC"
    assert spec.container.image == "ghcr.io/example/billing:3"
    assert spec.container.arguments == ("billing", "invoices")
    assert dict(spec.container.env) == {"MODE": "invoices"}
    assert dict(spec.container.secrets) == {"DB_URL": "/billing/db-url"}
    assert (spec.container.capacity.cpu, spec.container.capacity.memory) == (512, 1024)
    assert spec.role == "arn:aws:iam::123456789012:role/billing"
    assert spec.concurrency == "allow" and spec.suspend is False
    assert "not carried over: EcsParameters.NetworkConfiguration: tasks are placed" in report
    assert "not carried over: EcsParameters.LaunchType:" in report
    assert "refused: rule legacy-notify: " in report and "does not run an ECS task" in report


def test_scheduler_schedules_keep_their_zone_and_overrides(live, tmp_path, capsys):
    out = tmp_path / "crons.d"
    code = main(["import", "aws", "--schedule-group", "jobs", "--out", str(out),
                 "--output", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert [job["name"] for job in result["imported"]] == ["reconcile-ledger"]
    spec = loaded(out / "reconcile-ledger.yaml")
    assert (spec.schedule, spec.timezone) == ("cron(15 3 * * ? *)", "Europe/Berlin")
    assert (spec.container.capacity.cpu, spec.container.capacity.memory) == (1024, 2048)
    assert spec.container.arguments == ("billing", "run")


def test_nothing_found_is_an_error(live, tmp_path, capsys):
    code = main(["import", "aws", "--rules-prefix", "nothing-", "--out", str(tmp_path)])
    assert code == 1
    assert "no rule named nothing-... was found" in capsys.readouterr().out
