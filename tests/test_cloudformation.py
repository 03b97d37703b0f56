"""deploy/cloudformation.yaml: lints clean and declares what `cronctl bootstrap` creates;
deploy/daemon.yaml: lints clean and runs the daemon with the namespace stack's outputs.
(tests/test_deploy_stack.py deploys both into the emulator and runs a cron through them.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode import decode_str

from reconciler.adapters import sns as sns_adapter
from reconciler.adapters.tables import TTL_ATTRIBUTE, table_definitions
from reconciler.service import bootstrap as bootstrap_service
from reconciler.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
TEMPLATE_PATH = DEPLOY / "cloudformation.yaml"
DAEMON_TEMPLATE_PATH = DEPLOY / "daemon.yaml"
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.fixture(scope="module")
def template() -> dict:
    document, problems = decode_str(TEMPLATE_PATH.read_text())
    assert not problems, problems
    return document


@pytest.fixture(scope="module")
def daemon_template() -> dict:
    document, problems = decode_str(DAEMON_TEMPLATE_PATH.read_text())
    assert not problems, problems
    return document


def _lint(text: str) -> list:
    return cfnlint_api.lint(text, config=cfnlint_api.ManualArgs(regions=REGIONS))


@pytest.mark.parametrize("path", [TEMPLATE_PATH, DAEMON_TEMPLATE_PATH], ids=lambda p: p.name)
def test_template_has_no_lint_errors(path):
    matches = _lint(path.read_text())
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
    assert set(template["Parameters"]) >= {"Namespace", "Scheduler", "ClusterName",
                                           "DaemonEndpointUrl", "SidecarImage", "Subnets",
                                           "SecurityGroups", "AssignPublicIp"}
    assert template["Resources"]["Cluster"]["Condition"] == "CreateCluster"
    assert template["Resources"]["DaemonSubscription"]["Condition"] == "HasDaemonEndpoint"


# The settings every command needs, as outputs named after their variables (the README's
# export turns `SecurityGroups` into CRONCTL_SECURITY_GROUPS).
SETTING_OUTPUTS = {"Namespace", "Scheduler", "Cluster", "Subnets", "SecurityGroups",
                   "AssignPublicIp", "ExecutionRoleArn", "TaskRoleArn",
                   "SchedulerRoleArn", "LogGroup", "SidecarImage", "TopicArn", "QueueUrl"}


def test_outputs_are_exactly_the_settings(template, daemon_template):
    outputs = template["Outputs"]
    assert set(outputs) == SETTING_OUTPUTS
    assert outputs["ExecutionRoleArn"]["Value"] == {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}
    assert outputs["TaskRoleArn"]["Value"] == {"Fn::GetAtt": ["DefaultTaskRole", "Arn"]}
    assert outputs["SchedulerRoleArn"]["Value"] == {"Fn::GetAtt": ["SchedulePublishRole", "Arn"]}
    assert outputs["LogGroup"]["Value"] == {"Ref": "TaskLogGroup"}
    assert outputs["TopicArn"]["Value"] == {"Ref": "DispatchTopic"}
    assert outputs["QueueUrl"]["Value"] == {"Ref": "EcsEventsQueue"}
    assert set(daemon_template["Outputs"]) == {"EndpointUrl", "LoadBalancerDnsName"}
    assert daemon_template["Outputs"]["LoadBalancerDnsName"]["Condition"] == "NoHostedZone"


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


def variable(output: str) -> str:
    """``SecurityGroups`` -> ``CRONCTL_SECURITY_GROUPS`` (README: exporting the outputs)."""
    return "CRONCTL_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", output).upper()


def test_every_setting_output_is_a_variable_settings_reads(template):
    read = _variables_read_by_settings()
    assert {o for o in template["Outputs"] if variable(o) not in read} == {"TopicArn",
                                                                          "QueueUrl"}


def test_roles_are_not_bootstraps_defaults(template):
    """`cronctl bootstrap` given the stack's outputs records their role ARNs and makes (or
    changes) only the roles <ns>-task-execution and <ns>-scheduler, which are not these."""
    for name in ("TaskExecutionRole", "DefaultTaskRole", "SchedulePublishRole"):
        role_name = template["Resources"][name]["Properties"].get("RoleName")
        assert role_name is None, name


def test_daemon_role_may_pass_every_role_output(template):
    resources = template["Resources"]
    by_sid = {s["Sid"]: s for s in _statements(resources["DaemonRole"])}
    tasks, schedules = by_sid["PassTaskRoles"], by_sid["PassSchedulePublishRole"]
    assert tasks["Action"] == schedules["Action"] == "iam:PassRole"
    # ExecutionRoleArn; TaskRoleArn, by its path (as the crons' own roles)
    assert {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]} in tasks["Resource"]
    assert resources["DefaultTaskRole"]["Properties"]["Path"] == {"Fn::Sub": "/${Namespace}/"}
    assert {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}/*"} in \
        tasks["Resource"]
    assert template["Outputs"]["TaskRoleArn"]["Value"] == {"Fn::GetAtt": ["DefaultTaskRole",
                                                                          "Arn"]}
    # SchedulerRoleArn, to EventBridge and Scheduler only
    assert schedules["Resource"] == {"Fn::GetAtt": ["SchedulePublishRole", "Arn"]}
    assert sorted(schedules["Condition"]["StringEquals"]["iam:PassedToService"]) == [
        "events.amazonaws.com", "scheduler.amazonaws.com"]


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
    assert wildcard == {"ListRules", "ListSchedules", "TaskDefinitions", "TagOnCreate",
                        "ListTasksOfTheCluster"}
    # ListTasks names no task: AWS scopes it by the cluster condition only.
    assert by_sid["ListTasksOfTheCluster"]["Action"] == "ecs:ListTasks"
    assert "ecs:cluster" in by_sid["ListTasksOfTheCluster"]["Condition"]["ArnEquals"]
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


def allowed_actions(template: dict) -> set[str]:
    """Every action the daemon role of ``template`` (deploy/cloudformation.yaml) allows."""
    allowed: set[str] = set()
    for statement in _statements(template["Resources"]["DaemonRole"]):
        actions = statement["Action"]
        allowed |= set(actions if isinstance(actions, list) else [actions])
    return allowed


# Operations that IAM authorizes as other actions: a transaction by the actions of its items
# (ConditionCheck as dynamodb:ConditionCheckItem), an SQS batch by its single-message action.
ACTIONS_OF_OPERATION = {
    "dynamodb:TransactWriteItems": {"dynamodb:PutItem", "dynamodb:UpdateItem",
                                    "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"},
    "dynamodb:TransactGetItems": {"dynamodb:GetItem"},
    "sqs:DeleteMessageBatch": {"sqs:DeleteMessage"},
    "sqs:ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
    "sqs:SendMessageBatch": {"sqs:SendMessage"},
}


def needed_actions(calls) -> set[str]:
    """The IAM actions of counted ``service.Operation`` calls, less those needing none."""
    needed: set[str] = set()
    for service, operation in (c.split(".") for c in calls):
        action = f"{IAM_PREFIX.get(service, service)}:{operation}"
        needed |= ACTIONS_OF_OPERATION.get(action, {action})
    return needed - NEEDS_NO_PERMISSION


def test_daemon_role_allows_every_call_of_reconcile_passes(template, settings, tmp_path):
    """Every AWS operation that create, backend switch, edit and delete passes make (as
    counted against the emulator) is an action the daemon role allows."""
    from reconciler.service.control.reconcile import run_pass
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
    needed = needed_actions(called)
    assert {"ecs:RegisterTaskDefinition", "scheduler:CreateSchedule",
            "events:DeleteRule"} <= needed
    assert sorted(needed - allowed_actions(template)) == []


# ---- deploy/daemon.yaml -------------------------------------------------------------------

def _variables_read_by_settings() -> set[str]:
    source = (Path(__file__).resolve().parent.parent / "reconciler" / "settings.py").read_text()
    return set(re.findall(r'"(CRONCTL_[A-Z0-9_]+)"', source))


def _daemon_container(daemon_template: dict) -> dict:
    definition = daemon_template["Resources"]["DaemonTaskDefinition"]["Properties"]
    [container] = definition["ContainerDefinitions"]
    return container


def test_daemon_parameters_from_the_namespace_stack_are_its_outputs(template, daemon_template):
    [group] = [g for g in daemon_template["Metadata"]["AWS::CloudFormation::Interface"][
        "ParameterGroups"] if g["Label"]["default"].startswith("From the namespace stack")]
    assert set(group["Parameters"]) <= set(template["Outputs"])
    assert set(daemon_template["Parameters"]) & set(template["Outputs"]) == set(
        group["Parameters"])
    for name in group["Parameters"]:        # same values accepted on both sides
        mine, theirs = daemon_template["Parameters"][name], template["Parameters"].get(name)
        if theirs is not None:
            assert mine["Type"] == theirs["Type"], name
            assert mine.get("AllowedValues") == theirs.get("AllowedValues"), name
            assert mine.get("AllowedPattern") == theirs.get("AllowedPattern"), name


def test_daemon_runs_serve_with_only_variables_settings_reads(daemon_template):
    container = _daemon_container(daemon_template)
    assert container["Command"] == ["serve"]
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    names = set(environment) | {v for _, v in DAEMON_SECRETS.values()}
    cronctl = {n for n in names if n.startswith("CRONCTL_")}
    assert cronctl <= _variables_read_by_settings()
    assert names - cronctl == {"AWS_REGION", "AWS_DEFAULT_REGION"}
    # the namespace stack's settings, passed through
    for variable, parameter in (("CRONCTL_NAMESPACE", "Namespace"),
                                ("CRONCTL_SCHEDULER", "Scheduler"),
                                ("CRONCTL_CLUSTER", "Cluster"),
                                ("CRONCTL_SIDECAR_IMAGE", "SidecarImage"),
                                ("CRONCTL_REPO", "RepoUrl"), ("CRONCTL_REF", "RepoRef"),
                                ("CRONCTL_PATH", "CronPath")):
        assert environment[variable] == {"Ref": parameter}, variable
    assert environment["CRONCTL_SUBNETS"] == {"Fn::Join": [",", {"Ref": "Subnets"}]}
    assert environment["CRONCTL_SECURITY_GROUPS"] == {
        "Fn::Join": [",", {"Ref": "SecurityGroups"}]}
    # listens where the load balancer sends, as the image does
    assert environment["CRONCTL_LISTEN"] == "0.0.0.0:8080"
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    dockerfile = (DEPLOY.parent / "Dockerfile").read_text()
    assert "ENV CRONCTL_LISTEN=0.0.0.0:8080" in dockerfile and "EXPOSE 8080" in dockerfile


def test_daemon_environment_has_every_namespace_setting_of_the_stack(template, daemon_template):
    """Each namespace stack output that settings reads is the daemon's variable of that name,
    its value passed as the output says it (the README's cronctl_env exports the same)."""
    environment = {e["Name"]: e["Value"] for e in _daemon_container(daemon_template)[
        "Environment"]}
    read = _variables_read_by_settings()
    lists = {"Subnets", "SecurityGroups"}
    for output in template["Outputs"]:
        if variable(output) not in read:
            continue
        wanted = {"Fn::Join": [",", {"Ref": output}]} if output in lists else {"Ref": output}
        assert environment.get(variable(output)) == wanted, output
        assert output in daemon_template["Parameters"], output
    assert {"CRONCTL_EXECUTION_ROLE_ARN", "CRONCTL_TASK_ROLE_ARN", "CRONCTL_SCHEDULER_ROLE_ARN",
            "CRONCTL_LOG_GROUP", "CRONCTL_ASSIGN_PUBLIC_IP"} <= set(environment)


# The daemon stack's secret parameters: the condition that it is given, and its variable.
DAEMON_SECRETS = {
    "WebhookTokenSecretArn": ("HasWebhookToken", "CRONCTL_WEBHOOK_TOKEN"),
    "GitHubWebhookSecretArn": ("HasGitHubWebhookSecret", "CRONCTL_WEBHOOK_SECRET"),
    "MonitorApiKeySecretArn": ("HasMonitorApiKey", "CRONCTL_MONITOR_API_KEY"),
    "SlackTokenSecretArn": ("HasSlackToken", "CRONCTL_SLACK_TOKEN"),
    "SlackWebhookUrlSecretArn": ("HasSlackWebhookUrl", "CRONCTL_SLACK_WEBHOOK_URL"),
}


def test_daemon_secrets_come_from_secrets_manager_when_given(daemon_template):
    parameters = daemon_template["Parameters"]
    assert {p for p in parameters if p.endswith("SecretArn")} == set(DAEMON_SECRETS)
    conditions = daemon_template["Conditions"]
    for parameter, (condition, _) in DAEMON_SECRETS.items():
        assert parameters[parameter]["Default"] == ""
        assert parameters[parameter]["AllowedPattern"].startswith(
            "^(arn:[a-z-]+:secretsmanager:"), parameter
        assert conditions[condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}
    assert conditions["HasSecrets"] == {"Fn::Or": [
        {"Condition": condition} for condition, _ in DAEMON_SECRETS.values()]}
    container = _daemon_container(daemon_template)
    condition, secrets, absent = container["Secrets"]["Fn::If"]
    assert (condition, absent) == ("HasSecrets", {"Ref": "AWS::NoValue"})
    assert [s["Fn::If"] for s in secrets] == [
        [condition, {"Name": variable, "ValueFrom": {"Ref": parameter}}, {"Ref": "AWS::NoValue"}]
        for parameter, (condition, variable) in DAEMON_SECRETS.items()]
    # each a variable settings reads, and never a plain one
    assert {v for _, v in DAEMON_SECRETS.values()} <= _variables_read_by_settings()
    environment = {e["Name"] for e in container["Environment"]}
    assert not environment & {v for _, v in DAEMON_SECRETS.values()}
    # ... read by the execution role, which may read the secrets given and nothing else
    role = daemon_template["Resources"]["DaemonExecutionRole"]["Properties"]
    assert role["ManagedPolicyArns"] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                          "service-role/AmazonECSTaskExecutionRolePolicy"}]
    condition, policies, absent = role["Policies"]["Fn::If"]
    assert (condition, absent) == ("HasSecrets", {"Ref": "AWS::NoValue"})
    [statement] = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "secretsmanager:GetSecretValue")
    assert [r["Fn::If"] for r in statement["Resource"]] == [
        [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]
        for parameter, (condition, _) in DAEMON_SECRETS.items()]


def _option_default(variable_name: str) -> str | None:
    """The default settings gives variable ``variable_name`` (None: settings has no option)."""
    from reconciler.settings import OPTIONS

    return next((o.default for o in OPTIONS if o.variable == variable_name), None)


@pytest.mark.parametrize("parameter, variable_name, default", [
    ("DriftCheckSeconds", "CRONCTL_DRIFT_CHECK_S", 3600),
    ("DeepCheckSeconds", "CRONCTL_DEEP_CHECK_S", 86400),
])
def test_daemon_check_intervals_are_plain_variables_with_the_codes_defaults(
        daemon_template, parameter, variable_name, default):
    declared = daemon_template["Parameters"][parameter]
    assert (declared["Type"], declared["Default"], declared["MinValue"]) == (
        "Number", default, 1)
    environment = {e["Name"]: e["Value"] for e in _daemon_container(daemon_template)[
        "Environment"]}
    assert environment[variable_name] == {"Ref": parameter}
    assert float(_option_default(variable_name)) == default


def test_daemon_task_roles_and_logs(template, daemon_template):
    definition = daemon_template["Resources"]["DaemonTaskDefinition"]["Properties"]
    assert definition["RequiresCompatibilities"] == ["FARGATE"]
    assert definition["NetworkMode"] == "awsvpc"
    # Fargate needs an execution role for awslogs (and secrets)
    assert definition["ExecutionRoleArn"] == {"Fn::GetAtt": ["DaemonExecutionRole", "Arn"]}
    logs = _daemon_container(daemon_template)["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == {"Ref": "DaemonLogGroup"}
    # the task role is the namespace stack's daemon role, by its name
    assert template["Resources"]["DaemonRole"]["Properties"]["RoleName"] == {
        "Fn::Sub": "${Namespace}-daemon"}
    assert definition["TaskRoleArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${Namespace}-daemon"}
    # never a family of the crons' task definitions, which the reconciler manages
    assert not definition["Family"]["Fn::Sub"].startswith("${Namespace}-td-")


def test_daemon_service_sits_behind_the_load_balancer_only(daemon_template):
    resources = daemon_template["Resources"]
    service = resources["DaemonService"]
    assert "DaemonRoutes" in service["DependsOn"]
    properties = service["Properties"]
    assert properties["LaunchType"] == "FARGATE"
    assert properties["Cluster"] == {"Ref": "Cluster"}
    network = properties["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network == {"AssignPublicIp": {"Ref": "AssignPublicIp"},
                       "Subnets": {"Ref": "Subnets"},
                       "SecurityGroups": [{"Ref": "ServiceSecurityGroup"}]}
    assert properties["LoadBalancers"] == [{"ContainerName": "cronctl", "ContainerPort": 8080,
                                            "TargetGroupArn": {"Ref": "TargetGroup"}}]
    [to_service] = resources["ServiceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert (to_service["FromPort"], to_service["ToPort"]) == (8080, 8080)
    assert to_service["SourceSecurityGroupId"] == {"Ref": "LoadBalancerSecurityGroup"}
    assert "CidrIp" not in to_service
    [to_balancer] = resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert (to_balancer["FromPort"], to_balancer["ToPort"]) == (443, 443)
    assert to_balancer["CidrIp"] == {"Ref": "AllowedCidr"}
    balancer = resources["LoadBalancer"]["Properties"]
    assert balancer["Scheme"] == {"Ref": "LoadBalancerScheme"}
    assert daemon_template["Parameters"]["LoadBalancerScheme"]["AllowedValues"] == [
        "internet-facing", "internal"]


def test_load_balancer_forwards_the_daemons_routes_over_https(daemon_template):
    resources = daemon_template["Resources"]
    listener = resources["HttpsListener"]["Properties"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    assert listener["Certificates"] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert [a["Type"] for a in listener["DefaultActions"]] == ["fixed-response"]
    group = resources["TargetGroup"]["Properties"]
    assert (group["Port"], group["Protocol"], group["TargetType"]) == (8080, "HTTP", "ip")
    assert (group["HealthCheckPath"], group["Matcher"]) == ("/healthz", {"HttpCode": "200"})
    routes = resources["DaemonRoutes"]
    assert "Condition" not in routes
    [paths] = routes["Properties"]["Conditions"]
    assert paths["PathPatternConfig"]["Values"] == ["/sns", "/healthz", "/reconcile",
                                                    "/v1/sync"]
    # the status page and the metrics: only when asked, and only from the given addresses
    status = resources["StatusPageRoutes"]
    assert status["Condition"] == "ExposeStatusPage"
    assert daemon_template["Parameters"]["StatusPageCidr"]["Default"] == ""
    conditions = {c["Field"]: c for c in status["Properties"]["Conditions"]}
    assert conditions["path-pattern"]["PathPatternConfig"]["Values"] == ["/", "/crons/*",
                                                                         "/metrics"]
    assert conditions["source-ip"]["SourceIpConfig"]["Values"] == [{"Ref": "StatusPageCidr"}]
    for rule in (routes, status):
        assert rule["Properties"]["Actions"] == [{"Type": "forward",
                                                  "TargetGroupArn": {"Ref": "TargetGroup"}}]


def test_topic_subscribes_the_endpoint_with_the_delivery_policy(template, daemon_template):
    subscription = daemon_template["Resources"]["DaemonSubscription"]
    assert subscription["Condition"] == "ShouldSubscribe"
    assert "DaemonService" in subscription["DependsOn"]
    properties = subscription["Properties"]
    assert properties["TopicArn"] == {"Ref": "TopicArn"}
    assert properties["Protocol"] == "https"
    _, after_record, direct = properties["Endpoint"]["Fn::If"]
    assert direct == {"Fn::Sub": "https://${DomainName}/sns"}
    assert after_record == {"Fn::Select": [0, [direct, {"Ref": "DnsRecord"}]]}
    assert daemon_template["Outputs"]["EndpointUrl"]["Value"] == direct
    record = daemon_template["Resources"]["DnsRecord"]["Properties"]
    assert record["Name"] == {"Ref": "DomainName"}
    # the same retries as the namespace stack's subscription and bootstrap's topic policy
    policy = properties["DeliveryPolicy"]
    assert policy == template["Resources"]["DaemonSubscription"]["Properties"]["DeliveryPolicy"]
    assert policy["healthyRetryPolicy"] == sns_adapter.delivery_policy()["http"][
        "defaultHealthyRetryPolicy"]


def test_every_taggable_daemon_resource_is_tagged(daemon_template):
    untaggable = {"AWS::ElasticLoadBalancingV2::Listener",
                  "AWS::ElasticLoadBalancingV2::ListenerRule", "AWS::Route53::RecordSet",
                  "AWS::SNS::Subscription"}
    for name, resource in daemon_template["Resources"].items():
        if resource["Type"] in untaggable:
            continue
        tags = {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]}
        assert tags["managed-by"] == "cronctl", name
        assert tags["cronctl:namespace"] == {"Ref": "Namespace"}, name
