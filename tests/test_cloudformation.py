"""deploy/cloudformation.yaml: lints clean and declares what `cronctl bootstrap` creates."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode import decode_str

from reconciler.adapters.tables import TTL_ATTRIBUTE, table_definitions
from reconciler.service import bootstrap as bootstrap_service
from reconciler.settings import Settings

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "deploy" / "cloudformation.yaml"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.fixture(scope="module")
def template() -> dict:
    document, problems = decode_str(TEMPLATE_PATH.read_text())
    assert not problems, problems
    return document


def _lint(text: str) -> list:
    return cfnlint_api.lint(text, config=cfnlint_api.ManualArgs(regions=REGIONS))


def test_template_has_no_lint_errors():
    matches = _lint(TEMPLATE_PATH.read_text())
    errors = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches
              if m.rule.id.startswith("E")]
    assert errors == []


def test_the_linter_does_catch_a_broken_template():
    broken = "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Bogus: 1\n"
    assert any(m.rule.id.startswith("E") for m in _lint(broken))


def _of_type(template: dict, kind: str) -> dict:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_template_declares_every_resource_kind(template):
    counts = {kind: len(_of_type(template, kind)) for kind in (
        "AWS::DynamoDB::Table", "AWS::SNS::Topic", "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy",
        "AWS::Events::Rule", "AWS::ECS::Cluster", "AWS::Logs::LogGroup",
        "AWS::Scheduler::ScheduleGroup", "AWS::IAM::Role")}
    assert counts == {
        "AWS::DynamoDB::Table": 3, "AWS::SNS::Topic": 1, "AWS::SNS::TopicPolicy": 1,
        "AWS::SNS::Subscription": 1, "AWS::SQS::Queue": 2, "AWS::SQS::QueuePolicy": 1,
        "AWS::Events::Rule": 1, "AWS::ECS::Cluster": 1, "AWS::Logs::LogGroup": 1,
        "AWS::Scheduler::ScheduleGroup": 1, "AWS::IAM::Role": 4}
    assert set(template["Parameters"]) >= {"Namespace", "ClusterName", "DaemonEndpointUrl",
                                           "SidecarImage", "Subnets", "SecurityGroups"}
    assert template["Resources"]["Cluster"]["Condition"] == "CreateCluster"
    assert template["Resources"]["DaemonSubscription"]["Condition"] == "HasDaemonEndpoint"
    assert set(template["Outputs"]) >= {
        "TopicArn", "QueueUrl", "RegistryTableName", "ExecutionsTableName", "LeasesTableName",
        "SchedulePublishRoleArn", "TaskExecutionRoleArn", "DaemonRoleArn", "DefaultTaskRoleArn"}


def test_tables_match_the_layout_bootstrap_creates(template):
    tables = {r["Properties"]["TableName"]["Fn::Sub"]: r["Properties"]
              for r in _of_type(template, "AWS::DynamoDB::Table").values()}
    for wanted in table_definitions(Settings(namespace="NS")):
        declared = tables[wanted["TableName"].replace("NS", "${Namespace}", 1)]
        for key in ("AttributeDefinitions", "KeySchema", "BillingMode"):
            assert declared[key] == wanted[key]
        assert declared.get("GlobalSecondaryIndexes") == wanted.get("GlobalSecondaryIndexes")
    executions = tables["${Namespace}-executions"]
    assert executions["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE,
                                                     "Enabled": True}


def test_queues_rule_and_logs_match_bootstrap(template):
    resources = template["Resources"]
    queue = resources["EcsEventsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == bootstrap_service.QUEUE_VISIBILITY_TIMEOUT_S
    assert queue["ReceiveMessageWaitTimeSeconds"] == bootstrap_service.QUEUE_WAIT_TIME_S
    assert queue["RedrivePolicy"]["maxReceiveCount"] == bootstrap_service.MAX_RECEIVE_COUNT
    dlq = resources["EcsEventsDeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == bootstrap_service.DLQ_RETENTION_S
    rule = resources["EcsEventsRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["aws.ecs"]
    assert rule["EventPattern"]["detail-type"] == ["ECS Task State Change"]
    assert rule["Targets"][0]["Id"] == bootstrap_service.EVENTS_TARGET_ID
    statement = resources["EcsEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["EcsEventsRule", "Arn"]}
    logs = resources["TaskLogGroup"]["Properties"]
    assert logs["RetentionInDays"] == bootstrap_service.LOG_RETENTION_DAYS
    topic_policy = resources["DispatchTopicPolicy"]["Properties"]["PolicyDocument"]
    publish = topic_policy["Statement"][0]
    assert sorted(publish["Principal"]["Service"]) == ["events.amazonaws.com",
                                                        "scheduler.amazonaws.com"]
    assert "aws:SourceAccount" in publish["Condition"]["StringEquals"]


def test_every_taggable_resource_is_tagged(template):
    for name, resource in template["Resources"].items():
        if resource["Type"] in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy",
                                "AWS::SNS::Subscription"):
            continue
        tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
        assert tags["managed-by"] == "cronctl", name
        assert tags["cronctl:namespace"] == {"Ref": "Namespace"}, name


def _statements(role: dict) -> list[dict]:
    return [s for policy in role["Properties"].get("Policies", [])
            for s in policy["PolicyDocument"]["Statement"]]


def test_daemon_role_is_least_privilege(template):
    statements = _statements(template["Resources"]["DaemonRole"])
    by_sid = {s["Sid"]: s for s in statements}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [
            statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement["Sid"]
    wildcard = {s["Sid"] for s in statements if s["Resource"] == "*"}
    assert wildcard == {"ListRules", "ListSchedules", "TaskDefinitions", "TagOnCreate"}
    assert by_sid["TagOnCreate"]["Condition"]["StringEquals"]["ecs:CreateAction"] == [
        "RunTask", "RegisterTaskDefinition"]
    assert by_sid["NamespaceRules"]["Resource"]["Fn::Sub"].endswith(":rule/${Namespace}-*")
    assert by_sid["NamespaceSchedules"]["Resource"]["Fn::Sub"].endswith(
        ":schedule/${Namespace}/*")
    assert "ecs:cluster" in by_sid["RunTasksInTheCluster"]["Condition"]["ArnEquals"]
    assert by_sid["PassTaskRoles"]["Condition"]["StringEquals"]["iam:PassedToService"] == (
        "ecs-tasks.amazonaws.com")
    assert set(by_sid["EcsEventsQueue"]["Action"]) >= {"sqs:ReceiveMessage", "sqs:DeleteMessage"}
    assert set(by_sid["DispatchTopicSubscription"]["Action"]) >= {"sns:Subscribe",
                                                                 "sns:ConfirmSubscription"}


def test_execution_role_reads_only_the_namespace_secrets(template):
    role = template["Resources"]["TaskExecutionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                          "service-role/AmazonECSTaskExecutionRolePolicy"}]
    by_sid = {s["Sid"]: s for s in _statements(template["Resources"]["TaskExecutionRole"])}
    assert by_sid["SsmParametersUnderNamespace"]["Resource"]["Fn::Sub"].endswith(
        ":parameter/${Namespace}/*")
    assert by_sid["SecretsUnderNamespace"]["Resource"]["Fn::Sub"].endswith(
        ":secret:/${Namespace}/*")


IAM_PREFIX = {"eventbridge": "events"}
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}


def test_daemon_role_allows_every_call_of_reconcile_passes(template, settings, tmp_path):
    """Every AWS operation that create, backend switch, edit and delete passes make (as
    counted against the emulator) is an action the daemon role allows."""
    from reconciler.service.reconcile import run_pass
    from tests.support.reconcile_env import cron_yaml, prepare, write_crons

    clients = prepare(settings)
    # the template creates the schedule group; the daemon only ever finds it
    clients.client("scheduler").create_schedule_group(Name=settings.namespace)
    settings = settings.with_(repo=str(tmp_path))
    called: set[str] = set()
    steps = [({"a": cron_yaml(), "b": cron_yaml("rate(1 hour)", "busybox")}, "rules"),
             ({"a": cron_yaml("cron(0 6 * * ? *)"), "b": cron_yaml("rate(1 hour)")},
              "scheduler"),
             ({"a": cron_yaml("cron(0 6 * * ? *)")}, "rules")]
    for crons, backend in steps:
        write_crons(tmp_path, crons)
        result = run_pass(clients, settings.with_(scheduler=backend), dry_run=False)
        assert result.ok, result
        called |= set(result.api_calls)
    allowed = set()
    for statement in _statements(template["Resources"]["DaemonRole"]):
        actions = statement["Action"]
        allowed |= set(actions if isinstance(actions, list) else [actions])
    needed = {f"{IAM_PREFIX.get(s, s)}:{op}" for s, op in (c.split(".") for c in called)}
    assert {"ecs:RegisterTaskDefinition", "scheduler:CreateSchedule",
            "events:DeleteRule"} <= needed
    assert sorted(needed - allowed - NEEDS_NO_PERMISSION) == []
