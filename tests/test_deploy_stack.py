"""deploy/cloudformation.yaml and deploy/daemon.yaml deployed into the emulator's CloudFormation,
then a daemon configured from nothing but what those stacks give it runs a cron end to end.

The emulator's CloudFormation skips the resource types it does not implement (listed in
``MOTO_SKIPS`` and in docs/aws-fidelity.md); the test creates what the daemon needs of them
itself (the schedule group; the topic's subscription, to the local endpoint instead of the load
balancer the emulator cannot route to). As the README says, `cronctl bootstrap` then records
the namespace's settings from the stack's outputs: it creates nothing else, the daemon's
environment agrees with the record, and the daemon creates nothing of the namespace either.
"""

from __future__ import annotations

import ast
import json
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote

import pytest
from cfnlint.decode import decode_str

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients, CallCounter
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.core.desired import SCHEDULER_TIME, default_scheduler_role, rule_name
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap, default_execution_role
from reconciler.service.wiring import build_daemon
from reconciler.settings import Settings, from_environment
from tests.support.ecs_events import lifecycle, send_event
from tests.support.moto import REGION
from tests.support.waiting import wait_for
from tests.test_cloudformation import allowed_actions, needed_actions, variable

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NAMESPACE = "test"
DOMAIN = "cron.example.com"

CRON = """\
schedule: "cron(0 0 1 1 ? *)"  # yearly: the real clock fires nothing in a test
container:
  image: busybox
  arguments: ["sh", "-c", "echo hello"]
timeout: 10m
"""

# Resources of the two templates whose types moto's CloudFormation does not implement: it
# skips them (with a warning) and completes the stack without them.
MOTO_SKIPS = {
    "crons": {"DispatchTopicPolicy": "AWS::SNS::TopicPolicy",
              "EcsEventsQueuePolicy": "AWS::SQS::QueuePolicy",
              "ScheduleGroup": "AWS::Scheduler::ScheduleGroup"},
    "crons-daemon": {"DaemonSubscription": "AWS::SNS::Subscription"},
}

# The namespace stack's outputs and the settings they are; each is the variable
# CRONCTL_<OUTPUT_IN_UPPER_SNAKE_CASE>.
SETTING_OF_OUTPUT = {
    "Namespace": lambda s: s.namespace,
    "Scheduler": lambda s: s.scheduler,
    "Cluster": lambda s: s.cluster,
    "Subnets": lambda s: ",".join(s.network.subnets),
    "SecurityGroups": lambda s: ",".join(s.network.security_groups),
    "AssignPublicIp": lambda s: "ENABLED" if s.network.assign_public_ip else "DISABLED",
    "ExecutionRoleArn": lambda s: s.execution_role_arn,
    "TaskRoleArn": lambda s: s.default_task_role_arn,
    "SchedulerRoleArn": lambda s: s.scheduler_role_arn,
    "LogGroup": lambda s: s.log_group,
    "SidecarImage": lambda s: s.sidecar_image,
}


def _template(name: str) -> dict:
    document, problems = decode_str((DEPLOY / name).read_text())
    assert not problems, problems
    return document


def _deploy(cfn, stack: str, template: str, parameters: dict[str, str]) -> dict[str, str]:
    # As JSON (the same document): the emulator's YAML reader makes `!Condition X` an
    # `Fn::Condition` its conditions do not know (always false), where CloudFormation reads
    # {"Condition": X}: HasSecrets, an !Or of conditions, would never hold.
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(_template(template)),
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                     Parameters=[{"ParameterKey": k, "ParameterValue": v}
                                 for k, v in parameters.items()])
    described = wait_for(lambda: (s := cfn.describe_stacks(StackName=stack)["Stacks"][0])
                         and not s["StackStatus"].endswith("IN_PROGRESS") and s,
                         timeout=30, message=f"stack {stack}")
    assert described["StackStatus"] == "CREATE_COMPLETE", described
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


class Stacks:
    """The two stacks as an operator deploys them: the daemon stack's parameters of the same
    names as the namespace stack's outputs are those outputs."""

    def __init__(self, settings: Settings, repo: Path, backend: str,
                 given: dict[str, str] | None = None) -> None:
        clients = AwsClients(settings)
        self.clients = clients
        ec2 = clients.client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        self.vpc_id = vpc["VpcId"]
        subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [self.vpc_id]}])["Subnets"])[:2]
        group = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [self.vpc_id]},
            {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
        cfn = clients.client("cloudformation")
        self.outputs = _deploy(cfn, "crons", "cloudformation.yaml", {
            "Namespace": NAMESPACE, "Scheduler": backend, "Subnets": ",".join(subnets),
            "SecurityGroups": group, "AssignPublicIp": "ENABLED"})
        certificate = clients.client("acm").request_certificate(
            DomainName=DOMAIN)["CertificateArn"]
        daemon_parameters = set(_template("daemon.yaml")["Parameters"])
        self.daemon_parameters = {
            **{k: v for k, v in self.outputs.items() if k in daemon_parameters},
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cronctl:test",
            "RepoUrl": str(repo), "VpcId": self.vpc_id,
            "LoadBalancerSubnets": ",".join(subnets), "DomainName": DOMAIN,
            "CertificateArn": certificate, **(given or {})}
        self.daemon_outputs = _deploy(cfn, "crons-daemon", "daemon.yaml",
                                      self.daemon_parameters)

    def created(self, stack: str) -> set[str]:
        summaries = self.clients.client("cloudformation").list_stack_resources(
            StackName=stack)["StackResourceSummaries"]
        return {s["LogicalResourceId"] for s in summaries if s["LogicalResourceId"]}

    def daemon_task_definition(self) -> dict:
        return self.clients.client("ecs").describe_task_definition(
            taskDefinition=f"{NAMESPACE}-daemon")["taskDefinition"]

    def daemon_container(self) -> dict:
        [container] = self.daemon_task_definition()["containerDefinitions"]
        assert container["command"] == ["serve"]
        assert container["image"] == self.daemon_parameters["Image"]
        return container

    def daemon_environment(self) -> dict[str, str]:
        """The environment ECS gives the daemon's container (its task definition's)."""
        return {e["name"]: e["value"] for e in self.daemon_container()["environment"]}

    def daemon_secrets(self) -> dict[str, str]:
        """The container's secrets: variable -> the ARN ECS reads its value from (the
        emulator's CloudFormation keeps an ``AWS::NoValue`` item of a list as a null)."""
        return {s["name"]: s["valueFrom"]
                for s in self.daemon_container().get("secrets") or [] if s is not None}

    def execution_role_reads(self) -> dict[str, set[str]]:
        """What the daemon's execution role may read by its inline policies: action ->
        resources. (The emulator's CloudFormation leaves ExecutionRoleArn out of the task
        definition, so the role is the stack's DaemonExecutionRole, which the template names
        there; it stores a policy as a Python repr, an ``AWS::NoValue`` item as a null.)"""
        iam = self.clients.client("iam")
        role = self.clients.client("cloudformation").describe_stack_resource(
            StackName="crons-daemon", LogicalResourceId="DaemonExecutionRole")[
            "StackResourceDetail"]["PhysicalResourceId"]
        allowed: dict[str, set[str]] = {}
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            if isinstance(document, str):
                document = ast.literal_eval(unquote(document))
            for statement in document["Statement"]:
                assert statement["Effect"] == "Allow"
                actions, resources = statement["Action"], statement["Resource"]
                for action in actions if isinstance(actions, list) else [actions]:
                    allowed.setdefault(action, set()).update(
                        r for r in (resources if isinstance(resources, list) else [resources])
                        if r is not None)
        return allowed


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    return tmp_path


def _expected_resources(template: dict, false_conditions: set[str]) -> set[str]:
    return {name for name, resource in template["Resources"].items()
            if resource.get("Condition") not in false_conditions}


def test_both_stacks_deploy_and_only_what_moto_lacks_is_skipped(settings, repo):
    stacks = Stacks(settings, repo, "rules")
    base = _expected_resources(_template("cloudformation.yaml"), {"HasDaemonEndpoint"})
    daemon = _expected_resources(_template("daemon.yaml"),
                                 {"HasHostedZone", "ExposeStatusPage"})
    assert stacks.created("crons") == base - set(MOTO_SKIPS["crons"])
    assert stacks.created("crons-daemon") == daemon - set(MOTO_SKIPS["crons-daemon"])
    for stack, template in (("crons", "cloudformation.yaml"), ("crons-daemon", "daemon.yaml")):
        resources = _template(template)["Resources"]
        assert {k: resources[k]["Type"] for k in MOTO_SKIPS[stack]} == MOTO_SKIPS[stack]
    # What the emulator did build of the endpoint: HTTPS with the certificate, the daemon's
    # routes only, health checked on /healthz.
    elb = stacks.clients.client("elbv2")
    [balancer] = elb.describe_load_balancers()["LoadBalancers"]
    [listener] = elb.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert (listener["Protocol"], listener["Port"]) == ("HTTPS", 443)
    assert listener["Certificates"] == [
        {"CertificateArn": stacks.daemon_parameters["CertificateArn"]}]
    assert listener["DefaultActions"][0]["Type"] == "fixed-response"
    rules = [r for r in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
             if not r["IsDefault"]]
    assert [r["Conditions"] for r in rules] == [[{"Field": "path-pattern", "PathPatternConfig": {
        "Values": ["/sns", "/healthz", "/reconcile", "/v1/sync"]}}]]
    [group] = elb.describe_target_groups()["TargetGroups"]
    assert (group["Port"], group["TargetType"], group["HealthCheckPath"]) == (
        8080, "ip", "/healthz")
    assert stacks.daemon_outputs["EndpointUrl"] == f"https://{DOMAIN}/sns"
    assert stacks.daemon_outputs["LoadBalancerDnsName"] == balancer["DNSName"]
    # No secret given: the container has none and its execution role may read none.
    assert stacks.daemon_secrets() == {}
    assert stacks.execution_role_reads() == {}
    environment = stacks.daemon_environment()
    assert (environment["CRONCTL_DRIFT_CHECK_S"], environment["CRONCTL_DEEP_CHECK_S"]) == (
        "3600", "86400")


# The daemon stack's secret parameters and the variable each one's secret becomes.
SECRET_PARAMETERS = {
    "WebhookTokenSecretArn": "CRONCTL_WEBHOOK_TOKEN",
    "GitHubWebhookSecretArn": "CRONCTL_WEBHOOK_SECRET",
    "MonitorApiKeySecretArn": "CRONCTL_MONITOR_API_KEY",
    "SlackTokenSecretArn": "CRONCTL_SLACK_TOKEN",
    "SlackWebhookUrlSecretArn": "CRONCTL_SLACK_WEBHOOK_URL",
}
SECRET_VALUES = {
    "CRONCTL_WEBHOOK_TOKEN": "ci-token",
    "CRONCTL_WEBHOOK_SECRET": "github-secret",
    "CRONCTL_MONITOR_API_KEY": "monitor-key",
    "CRONCTL_SLACK_TOKEN": "xoxb-test",
    "CRONCTL_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x",
}


def test_every_secret_parameter_is_listed():
    parameters = _template("daemon.yaml")["Parameters"]
    assert {p for p in parameters if p.endswith("SecretArn")} == set(SECRET_PARAMETERS)


@pytest.mark.parametrize("given", [
    ("MonitorApiKeySecretArn", "SlackTokenSecretArn", "SlackWebhookUrlSecretArn"),
    tuple(SECRET_PARAMETERS),
], ids=["notifiers", "all"])
def test_given_secrets_are_the_daemons_and_its_execution_role_reads_exactly_those(
        settings, repo, monkeypatch, given):
    """Each secret given is the container's variable of its name, which ECS reads from
    Secrets Manager with the execution role; that role may read those secrets and no other;
    the daemon's settings read each variable. The check intervals are plain variables."""
    secretsmanager = AwsClients(settings).client("secretsmanager")
    arns = {parameter: secretsmanager.create_secret(
        Name=f"cronctl/{parameter}", SecretString=SECRET_VALUES[SECRET_PARAMETERS[parameter]])[
        "ARN"] for parameter in given}
    stacks = Stacks(settings, repo, "rules", {**arns, "DriftCheckSeconds": "600",
                                              "DeepCheckSeconds": "7200"})
    secrets = stacks.daemon_secrets()
    assert secrets == {SECRET_PARAMETERS[p]: arn for p, arn in arns.items()}
    assert stacks.execution_role_reads() == {"secretsmanager:GetSecretValue": set(arns.values())}
    environment = stacks.daemon_environment()
    assert not set(environment) & set(SECRET_VALUES)            # never in the environment
    assert (environment["CRONCTL_DRIFT_CHECK_S"], environment["CRONCTL_DEEP_CHECK_S"]) == (
        "600", "7200")

    # The variables as ECS sets them at the task's start, read by the daemon's settings.
    for name in [*SECRET_VALUES, *environment]:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for name, arn in secrets.items():
        monkeypatch.setenv(name, secretsmanager.get_secret_value(SecretId=arn)["SecretString"])
    on_ecs = from_environment()
    assert on_ecs.drift_check_s == 600
    read = {"CRONCTL_WEBHOOK_TOKEN": on_ecs.webhook_token,
            "CRONCTL_WEBHOOK_SECRET": on_ecs.webhook_secret,
            "CRONCTL_MONITOR_API_KEY": on_ecs.monitor_api_key,
            "CRONCTL_SLACK_TOKEN": on_ecs.slack_token,
            "CRONCTL_SLACK_WEBHOOK_URL": on_ecs.slack_webhook_url}
    assert read == {name: SECRET_VALUES[name] if name in secrets else None for name in read}


def _environment_of(outputs: dict[str, str]) -> dict[str, str]:
    return {variable(k): v for k, v in outputs.items()}


def _settings_from_outputs(outputs: dict[str, str], monkeypatch) -> Settings:
    """What `cronctl COMMAND` reads after the README's export of the namespace stack's
    outputs; checks which outputs the variables carry into Settings."""
    for name, value in _environment_of(outputs).items():
        monkeypatch.setenv(name, value)
    settings = from_environment()
    unread = {k for k, setting in SETTING_OF_OUTPUT.items() if setting(settings) != outputs[k]}
    assert unread == set(), f"outputs no variable carries into Settings: {sorted(unread)}"
    return settings


def _daemon_may_pass(clients: AwsClients, role_arn: str, service: str) -> bool:
    """The deployed daemon role (<ns>-daemon) allows iam:PassRole of ``role_arn`` to
    ``service`` (the emulator does not check it: read its policy as deployed)."""
    iam = clients.client("iam")
    role = f"{NAMESPACE}-daemon"
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):  # the emulator's CloudFormation stores a Python repr
            document = ast.literal_eval(unquote(document))
        for statement in document["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            services = statement.get("Condition", {}).get("StringEquals", {}).get(
                "iam:PassedToService", service)
            if "iam:PassRole" in (actions if isinstance(actions, list) else [actions]) and \
                    service in (services if isinstance(services, list) else [services]) and \
                    any(fnmatchcase(role_arn, r) for r in (
                        resources if isinstance(resources, list) else [resources])):
                return True
    return False


def _scheduled_message(clients: AwsClients, settings: Settings, scheduled_at: str) -> str:
    """What the reconciled schedule sends to the topic when it fires (moto never fires it)."""
    if settings.scheduler == "scheduler":
        schedule = clients.client("scheduler").get_schedule(GroupName=settings.schedule_group,
                                                            Name="hello")
        return schedule["Target"]["Input"].replace(SCHEDULER_TIME, scheduled_at)
    [target] = clients.client("events").list_targets_by_rule(
        Rule=rule_name(settings.namespace, "hello"))["Targets"]
    return target["InputTransformer"]["InputTemplate"].replace("<time>", scheduled_at)


def _bootstrap_writes(settings: Settings) -> set[str]:
    """The write operations `cronctl bootstrap` makes, counted on a namespace of its own."""
    counter = CallCounter()
    bootstrap(AwsClients(settings.with_(namespace="boot", cluster=None), counter),
              settings.with_(namespace="boot", cluster=None),
              endpoint_url="https://cron.example.com/sns")
    reads = ("Describe", "Get", "List")
    # Its one item write (PutItem) is the namespace's settings record, which the daemon only
    # reads (the test checks the record's version); the daemon's own PutItem are its runs'.
    return {op for op in counter.snapshot()
            if not op.split(".")[1].startswith(reads)} - {"dynamodb.PutItem"}


def _resolve(node, values: dict[str, str]):
    """A template fragment with its ``Ref`` / ``Fn::GetAtt`` replaced by ``values``."""
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return values[node["Ref"]]
        if set(node) == {"Fn::GetAtt"}:
            return values[".".join(node["Fn::GetAtt"])]
        return {k: _resolve(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    return node


def _apply_skipped_policies(clients: AwsClients, outputs: dict[str, str]) -> None:
    """Set the policies of DispatchTopicPolicy and EcsEventsQueuePolicy (skipped by the
    emulator) as CloudFormation would, from the template's documents."""
    resources = _template("cloudformation.yaml")["Resources"]
    queue_url = outputs["QueueUrl"]
    values = {
        "DispatchTopic": outputs["TopicArn"], "AWS::AccountId": clients.identity()[1],
        "EcsEventsQueue.Arn": clients.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
        "EcsEventsRule.Arn": clients.client("events").describe_rule(
            Name=f"{NAMESPACE}-ecs-events")["Arn"]}
    topic_policy = _resolve(resources["DispatchTopicPolicy"]["Properties"]["PolicyDocument"],
                            values)
    queue_policy = _resolve(resources["EcsEventsQueuePolicy"]["Properties"]["PolicyDocument"],
                            values)
    clients.client("sns").set_topic_attributes(
        TopicArn=outputs["TopicArn"], AttributeName="Policy",
        AttributeValue=json.dumps(topic_policy))
    clients.client("sqs").set_queue_attributes(
        QueueUrl=queue_url, Attributes={"Policy": json.dumps(queue_policy)})


def _record_attribute_writes(clients: AwsClients) -> list[tuple[str, str]]:
    """The topic and queue attributes written through ``clients``, as they are written."""
    writes: list[tuple[str, str]] = []
    clients.client("sns").meta.events.register(
        "before-parameter-build.sns.SetTopicAttributes",
        lambda params, **_: writes.append(("sns.SetTopicAttributes", params["AttributeName"])))
    clients.client("sqs").meta.events.register(
        "before-parameter-build.sqs.SetQueueAttributes",
        lambda params, **_: writes.extend(("sqs.SetQueueAttributes", name)
                                          for name in sorted(params["Attributes"])))
    return writes


@pytest.mark.parametrize("backend", ["rules", "scheduler"])
def test_a_daemon_configured_from_the_stacks_runs_a_cron_end_to_end(settings, repo, backend,
                                                                     monkeypatch):
    stacks = Stacks(settings, repo, backend)
    outputs = stacks.outputs
    test_clients = stacks.clients
    # What the emulator skipped and the daemon relies on: the schedule group (as the template
    # declares it) ...
    group = _template("cloudformation.yaml")["Resources"]["ScheduleGroup"]["Properties"]
    test_clients.client("scheduler").create_schedule_group(
        Name=NAMESPACE, Tags=[{"Key": t["Key"], "Value": NAMESPACE if t["Value"] == {
            "Ref": "Namespace"} else t["Value"]} for t in group["Tags"]])

    # The CLI's settings (the README's export of the outputs) and the daemon's (the environment
    # of its task definition) agree; CRONCTL_REPO and CRONCTL_REF are the daemon stack's.
    cli = _settings_from_outputs(outputs, monkeypatch)
    environment = stacks.daemon_environment()
    for name, value in _environment_of(outputs).items():
        if name in environment:
            assert environment[name] == value, name
    assert environment["AWS_REGION"] == REGION
    assert environment["CRONCTL_LISTEN"] == "0.0.0.0:8080"
    for name in list(_environment_of(outputs)):
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    on_ecs = from_environment()
    assert on_ecs.with_(repo=cli.repo, listen=cli.listen) == cli
    assert on_ecs.repo == str(repo)

    # Names derived from the namespace are the stack's. Its roles are not bootstrap's defaults,
    # and the daemon's role may pass each of them.
    partition, account = test_clients.identity()
    assert on_ecs.topic_arn(partition, account) == outputs["TopicArn"]
    assert outputs["QueueUrl"].rsplit("/", 2)[1:] == [account, on_ecs.queue_name]
    assert on_ecs.log_group_name == outputs["LogGroup"]
    assert outputs["SchedulerRoleArn"] != default_scheduler_role(account, NAMESPACE, partition)
    assert outputs["ExecutionRoleArn"] != default_execution_role(account, NAMESPACE, partition)
    for output, service in (("ExecutionRoleArn", "ecs-tasks.amazonaws.com"),
                            ("TaskRoleArn", "ecs-tasks.amazonaws.com"),
                            ("SchedulerRoleArn", "scheduler.amazonaws.com")):
        assert _daemon_may_pass(test_clients, outputs[output], service), output

    # The topic's and the queue's policies, as the template writes them (the emulator skips
    # those two resources): equivalent to bootstrap's, not identical (no Id, ...).
    _apply_skipped_policies(test_clients, outputs)

    # `cronctl bootstrap` with the outputs as its variables (the README's step after deploying)
    # records the namespace's settings and creates nothing else: no role, no table, no queue.
    # It finds the topic's and the queue's policies as it wants them: it rewrites neither; of
    # the topic it sets only the delivery policy, which a stack cannot give a topic
    # (AWS::SNS::Topic has no such property: the daemon stack's subscription carries it).
    boot_clients = AwsClients(cli)
    writes = _record_attribute_writes(boot_clients)
    booted = bootstrap(boot_clients, cli)
    assert {(r.kind, r.status) for r in booted.rows if r.status == "created"} == {
        ("namespace-settings", "created")}
    assert not [r for r in booted.rows if r.kind == "iam-role"]
    assert booted.settings == on_ecs.namespace_settings
    statuses = {(r.kind, r.name): r.status for r in booted.rows}
    assert statuses[("sqs-queue", f"{NAMESPACE}-ecs-events")] == "found"
    assert statuses[("sqs-queue", f"{NAMESPACE}-ecs-events-dlq")] == "found"
    assert writes == [("sns.SetTopicAttributes", "DeliveryPolicy")]
    again = bootstrap(boot_clients, cli)
    assert {r.status for r in again.rows} == {"found"}
    assert writes == [("sns.SetTopicAttributes", "DeliveryPolicy")]

    # The daemon, as ECS starts it (and, for the test: a free port, short SQS polls, the
    # emulator's SNS certificates): its environment agrees with the recorded settings.
    daemon_settings = on_ecs.with_(listen="127.0.0.1:0", sqs_wait_s=1)
    built = build_daemon(daemon_settings, cert_fetch=moto_cert_fetcher)
    assert built.settings.recorded_version == booted.settings_version >= 1
    assert built.settings.namespace_settings == on_ecs.namespace_settings
    built.daemon.start()
    try:
        # ... and the topic's subscription, with the template's delivery policy, to the
        # daemon's endpoint (the load balancer is not routable in the emulator).
        subscription = _template("daemon.yaml")["Resources"]["DaemonSubscription"]["Properties"]
        test_clients.client("sns").subscribe(
            TopicArn=outputs["TopicArn"], Protocol="http", Endpoint=f"{built.http.url}/sns",
            Attributes={"DeliveryPolicy": json.dumps(subscription["DeliveryPolicy"])})

        # A reconcile pass creates the cron's schedule, targeting the stack's topic.
        result = wait_for(lambda: built.loop.last_result, timeout=20,
                          message="the first reconcile pass")
        assert result.ok and not result.errors, result
        message = json.loads(_scheduled_message(test_clients, built.settings, "X"))
        assert message == {"cron": "hello", "scheduled_at": "X"}
        if backend == "scheduler":
            schedule = test_clients.client("scheduler").get_schedule(GroupName=NAMESPACE,
                                                                     Name="hello")
            assert schedule["Target"]["Arn"] == outputs["TopicArn"]
            assert schedule["Target"]["RoleArn"] == outputs["SchedulerRoleArn"]

        # A delivery of the schedule's message starts its task, as the stacks configure it.
        scheduled_at = "2026-11-27T10:05:00Z"
        test_clients.client("sns").publish(
            TopicArn=outputs["TopicArn"],
            Message=_scheduled_message(test_clients, built.settings, scheduled_at))
        eid = execution_id("hello", scheduled_at)
        store = ExecutionStore(test_clients, built.settings)
        record = wait_for(lambda: (r := store.get(eid)) and r.task_arn and r, timeout=15,
                          message="the run to start")
        ecs = test_clients.client("ecs")
        [task] = ecs.describe_tasks(cluster=outputs["Cluster"], tasks=[record.task_arn])["tasks"]
        assert task["startedBy"] == eid
        assert task["clusterArn"].endswith(f":cluster/{outputs['Cluster']}")
        assert task["overrides"]["taskRoleArn"] == outputs["TaskRoleArn"]
        [attachment] = task["attachments"]
        details = {d["name"]: d["value"] for d in attachment["details"]}
        assert details["subnetId"] in outputs["Subnets"].split(",")
        [interface] = test_clients.client("ec2").describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"]
        assert [g["GroupId"] for g in interface["Groups"]] == outputs["SecurityGroups"].split(",")
        definition = ecs.describe_task_definition(
            taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        assert definition["executionRoleArn"] == outputs["ExecutionRoleArn"]
        [main] = [c for c in definition["containerDefinitions"] if c["name"] == "main"]
        assert main["logConfiguration"]["options"]["awslogs-group"] == outputs["LogGroup"]

        # An injected STOPPED event (the emulator emits none) makes it SUCCESS.
        for envelope in lifecycle(record.task_arn, eid, main_exit=0):
            send_event(test_clients.client("sqs"), built.settings, envelope)
        wait_for(lambda: store.get(eid).status == "SUCCESS", timeout=15, message="SUCCESS")
    finally:
        assert built.daemon.stop(budget_s=30)
    assert registry.read_namespace(test_clients, on_ecs).version == booted.settings_version

    # The daemon created nothing but the cron's own resources, and made no call that
    # `cronctl bootstrap` makes to set up or repair the namespace.
    calls = built.loop.clients.counter.snapshot()
    created = {op for op in calls if op.split(".")[1].startswith("Create")}
    assert created == ({"scheduler.CreateSchedule"} if backend == "scheduler" else set())
    own = {"eventbridge.PutRule": 1, "eventbridge.PutTargets": 1} if backend == "rules" else {}
    writes = _bootstrap_writes(settings)
    shared = {op: n for op, n in calls.items() if op in writes}
    assert shared == own
    # ... and every call it made is allowed to its role in deploy/cloudformation.yaml.
    assert sorted(needed_actions(calls) - allowed_actions(_template("cloudformation.yaml"))) == []
