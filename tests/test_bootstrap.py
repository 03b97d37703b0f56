"""`cronctl bootstrap` against the moto server: what it creates, idempotency, drift, output."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request

import pytest

from reconciler.adapters import registry, sns
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.infra.attributes import differing
from reconciler.cli import main
from reconciler.service.bootstrap import BootstrapError, bootstrap
from tests.support.fixtures import FIXTURES
from tests.support.waiting import wait_for

TAGS = {"managed-by": "cronctl", "cronctl:namespace": "test"}


def _strip(response: dict) -> dict:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def describe_everything(clients: AwsClients, settings, result) -> dict:
    """Full describes of every bootstrapped resource, to compare before and after."""
    c = clients.client
    state = {}
    for table in (settings.registry_table, settings.executions_table, settings.leases_table):
        desc = c("dynamodb").describe_table(TableName=table)["Table"]
        state[table] = {
            "table": desc,
            "ttl": _strip(c("dynamodb").describe_time_to_live(TableName=table)),
            "tags": c("dynamodb").list_tags_of_resource(ResourceArn=desc["TableArn"])["Tags"],
        }
    state["topic"] = {
        "attributes": c("sns").get_topic_attributes(TopicArn=result.topic_arn)["Attributes"],
        "tags": c("sns").list_tags_for_resource(ResourceArn=result.topic_arn)["Tags"],
        "subscriptions": c("sns").list_subscriptions_by_topic(
            TopicArn=result.topic_arn)["Subscriptions"],
    }
    for url in (result.queue_url, result.dlq_url):
        state[url] = {
            "attributes": c("sqs").get_queue_attributes(
                QueueUrl=url, AttributeNames=["All"])["Attributes"],
            "tags": c("sqs").list_queue_tags(QueueUrl=url).get("Tags"),
        }
    rule = _strip(c("events").describe_rule(Name=settings.events_rule_name))
    state["rule"] = {
        "rule": rule,
        "targets": c("events").list_targets_by_rule(Rule=rule["Name"])["Targets"],
        "tags": c("events").list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"],
    }
    state["cluster"] = c("ecs").describe_clusters(
        clusters=[settings.cluster_name], include=["TAGS"])["clusters"]
    groups = c("logs").describe_log_groups(logGroupNamePrefix=settings.log_group_name)
    state["logs"] = {
        "groups": groups["logGroups"],
        "tags": c("logs").list_tags_for_resource(
            resourceArn=groups["logGroups"][0]["logGroupArn"])["tags"],
    }
    return state


def test_first_run_creates_every_resource_with_its_attributes(settings):
    clients = AwsClients(settings)
    lines = []
    result = bootstrap(clients, settings, progress=lines.append)

    assert [(r.kind, r.name, r.status) for r in result.rows] == [
        ("dynamodb-table", "test-registry", "created"),
        ("dynamodb-table", "test-executions", "created"),
        ("dynamodb-table", "test-leases", "created"),
        ("sns-topic", "test-dispatch", "created"),
        ("logs-group", "/cronctl/test", "created"),
        ("ecs-cluster", "test", "created"),
        ("events-rule", "test-ecs-events", "created"),
        ("sqs-queue", "test-ecs-events-dlq", "created"),
        ("sqs-queue", "test-ecs-events", "created"),
        ("events-target", "test-ecs-events/cronctl-ecs-events", "created"),
        ("iam-role", "test-task-execution", "created"),
        ("iam-role", "test-scheduler", "created"),
        ("namespace-settings", "#namespace", "created"),
    ]
    assert len(lines) == len(result.rows)
    assert lines[8].split() == ["created", "sqs-queue", "test-ecs-events", result.queue_url]
    state = describe_everything(clients, settings, result)

    queue = state[result.queue_url]["attributes"]
    assert queue["VisibilityTimeout"] == "60"
    assert queue["ReceiveMessageWaitTimeSeconds"] == "20"
    dlq = state[result.dlq_url]["attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
    assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    statement = json.loads(queue["Policy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == result.queue_arn == queue["QueueArn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": state["rule"]["rule"]["Arn"]}}
    assert state[result.queue_url]["tags"] == TAGS == state[result.dlq_url]["tags"]

    rule = state["rule"]
    assert json.loads(rule["rule"]["EventPattern"]) == {
        "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [result.cluster_arn]}}
    assert rule["rule"]["State"] == "ENABLED"
    assert rule["rule"].get("EventBusName", "default") == "default"
    assert rule["targets"] == [{"Id": "cronctl-ecs-events", "Arn": result.queue_arn}]
    assert {t["Key"]: t["Value"] for t in rule["tags"]} == TAGS

    topic = state["topic"]
    assert topic["attributes"]["TopicArn"] == result.topic_arn
    assert result.topic_arn.endswith(":test-dispatch")
    publish = json.loads(topic["attributes"]["Policy"])["Statement"][0]
    assert sorted(publish["Principal"]["Service"]) == ["events.amazonaws.com",
                                                        "scheduler.amazonaws.com"]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert {t["Key"]: t["Value"] for t in topic["tags"]} == TAGS

    [cluster] = state["cluster"]
    assert (cluster["clusterName"], cluster["status"]) == ("test", "ACTIVE")
    assert cluster["clusterArn"] == result.cluster_arn
    assert {t["key"]: t["value"] for t in cluster["tags"]} == TAGS

    [group] = state["logs"]["groups"]
    assert (group["logGroupName"], group["retentionInDays"]) == ("/cronctl/test", 30)
    assert state["logs"]["tags"] == TAGS

    ttl = state["test-executions"]["ttl"]["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    for table in ("test-registry", "test-executions", "test-leases"):
        assert {t["Key"]: t["Value"] for t in state[table]["tags"]} == TAGS


def test_second_run_finds_everything_and_changes_nothing(settings):
    clients = AwsClients(settings)
    first = bootstrap(clients, settings)
    before = describe_everything(clients, settings, first)
    second = bootstrap(clients, settings)
    assert {row.status for row in second.rows} == {"found"}
    assert [(r.kind, r.name, r.arn_or_url) for r in second.rows] == [
        (r.kind, r.name, r.arn_or_url) for r in first.rows]
    assert second == type(first)(rows=second.rows, **{
        k: getattr(first, k) for k in ("topic_arn", "queue_url", "queue_arn", "dlq_url",
                                       "cluster_arn", "log_group", "subscription_arn",
                                       "settings", "settings_version", "changes")})
    assert describe_everything(clients, settings, second) == before


def test_drifted_queue_rule_and_log_group_are_set_back(settings):
    clients = AwsClients(settings)
    first = bootstrap(clients, settings)
    sqs, events, logs = (clients.client(s) for s in ("sqs", "events", "logs"))
    sqs.set_queue_attributes(QueueUrl=first.queue_url, Attributes={"VisibilityTimeout": "5"})
    events.put_rule(Name=settings.events_rule_name, State="DISABLED",
                    EventPattern=json.dumps({"source": ["aws.ecs"]}))
    logs.delete_retention_policy(logGroupName=settings.log_group_name)

    second = bootstrap(clients, settings)
    statuses = {(r.kind, r.name): r.status for r in second.rows}
    assert statuses[("sqs-queue", "test-ecs-events")] == "updated"
    assert statuses[("events-rule", "test-ecs-events")] == "updated"
    assert statuses[("logs-group", "/cronctl/test")] == "updated"
    assert statuses[("sqs-queue", "test-ecs-events-dlq")] == "found"
    attributes = sqs.get_queue_attributes(QueueUrl=first.queue_url,
                                          AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "60"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5
    rule = events.describe_rule(Name=settings.events_rule_name)
    assert rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"])["detail"] == {"clusterArn": [first.cluster_arn]}
    group = logs.describe_log_groups(logGroupNamePrefix=settings.log_group_name)["logGroups"][0]
    assert group["retentionInDays"] == 30
    assert {r.status for r in bootstrap(clients, settings).rows} == {"found"}


def _role_policies(clients: AwsClients, role: str) -> dict:
    iam = clients.client("iam")
    inline = {name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
              for name in iam.list_role_policies(RoleName=role)["PolicyNames"]}
    attached = [p["PolicyArn"] for p in
                iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]]
    return {"inline": inline, "attached": attached}


def test_the_execution_role_may_read_the_secrets_crons_name(settings):
    clients = AwsClients(settings)
    bootstrap(clients, settings)
    policies = _role_policies(clients, "test-task-execution")
    statements = {s["Sid"]: s for s in policies["inline"]["read-secrets"]["Statement"]}
    assert {sid: (s["Action"], s["Resource"]) for sid, s in statements.items()} == {
        "SsmParameters": ("ssm:GetParameters",
                          "arn:aws:ssm:us-east-1:123456789012:parameter/*"),
        "Secrets": ("secretsmanager:GetSecretValue",
                    "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"),
        "DecryptThroughThoseServicesOnly": ("kms:Decrypt",
                                            "arn:aws:kms:us-east-1:123456789012:key/*")}
    assert statements["DecryptThroughThoseServicesOnly"]["Condition"] == {"StringEquals": {
        "kms:ViaService": ["ssm.us-east-1.amazonaws.com",
                           "secretsmanager.us-east-1.amazonaws.com"]}}
    assert all(s["Effect"] == "Allow" for s in statements.values())
    second = bootstrap(clients, settings)
    assert {r.status for r in second.rows} == {"found"}
    assert _role_policies(clients, "test-task-execution") == policies


def test_an_execution_role_made_before_gets_the_secrets_policy_once(settings):
    clients = AwsClients(settings)
    bootstrap(clients, settings)
    iam = clients.client("iam")
    iam.delete_role_policy(RoleName="test-task-execution", PolicyName="read-secrets")
    second = bootstrap(clients, settings)
    statuses = {(r.kind, r.name): r.status for r in second.rows}
    assert statuses.pop(("iam-role", "test-task-execution")) == "updated"
    assert set(statuses.values()) == {"found"}
    assert "read-secrets" in iam.list_role_policies(RoleName="test-task-execution")["PolicyNames"]
    assert {r.status for r in bootstrap(clients, settings).rows} == {"found"}


def test_an_existing_named_cluster_is_used_as_it_is(settings):
    clients = AwsClients(settings)
    existing = clients.client("ecs").create_cluster(clusterName="shared")["cluster"]
    named = settings.with_(cluster="shared")
    result = bootstrap(clients, named)
    assert ("ecs-cluster", "shared", existing["clusterArn"], "found") in result.rows
    assert result.cluster_arn == existing["clusterArn"]
    cluster = clients.client("ecs").describe_clusters(clusters=["shared"], include=["TAGS"])
    assert cluster["clusters"][0].get("tags", []) == []  # not ours: left as it was


def test_an_existing_cluster_without_a_provider_of_the_strategy_is_refused(settings):
    clients = AwsClients(settings)
    ecs = clients.client("ecs")
    ecs.create_cluster(clusterName="shared", capacityProviders=["FARGATE"])
    spot = settings.with_(cluster="shared", capacity_providers=("FARGATE_SPOT:2:1", "FARGATE"))
    with pytest.raises(BootstrapError) as refused:
        bootstrap(clients, spot)
    assert str(refused.value) == (
        "bootstrap stopped at ecs-cluster shared: cluster shared has no capacity provider "
        "FARGATE_SPOT, which the capacity-provider strategy names (RunTask would refuse every "
        "run): add it with `aws ecs put-cluster-capacity-providers --cluster shared "
        "--capacity-providers FARGATE FARGATE_SPOT --default-capacity-provider-strategy '[]'` "
        "(its current providers and default strategy kept), or choose providers it has "
        "(--capacity-provider / CRONCTL_CAPACITY_PROVIDERS) or a launch type (--launch-type); "
        "nothing recorded")
    assert registry.read_namespace(clients, spot) is None  # no strategy recorded
    # once the cluster has the provider, the same bootstrap records the strategy
    ecs.put_cluster_capacity_providers(cluster="shared",
                                       capacityProviders=["FARGATE", "FARGATE_SPOT"],
                                       defaultCapacityProviderStrategy=[])
    result = bootstrap(clients, spot)
    assert ("ecs-cluster", "found") in {(r.kind, r.status) for r in result.rows}
    assert [str(p) for p in result.settings.placement.capacity_providers] == [
        "FARGATE_SPOT:2:1", "FARGATE:1:0"]


def test_a_new_cluster_gets_the_fargate_providers_and_a_custom_one_is_refused(settings):
    clients = AwsClients(settings)
    spot = settings.with_(namespace="spot", cluster=None,
                          capacity_providers=("FARGATE_SPOT", "FARGATE"))
    result = bootstrap(clients, spot)
    [cluster] = clients.client("ecs").describe_clusters(clusters=["spot"])["clusters"]
    assert sorted(cluster["capacityProviders"]) == ["FARGATE", "FARGATE_SPOT"]
    assert {r.status for r in bootstrap(clients, spot).rows} == {"found"}
    assert result.settings.placement.capacity_providers == spot.capacity_providers
    with pytest.raises(BootstrapError, match=(
            "cluster test has no capacity provider my-asg, .* add it \\(create my-asg first: "
            "`aws ecs create-capacity-provider`\\) with `aws ecs put-cluster-capacity-providers "
            "--cluster test --capacity-providers FARGATE my-asg ")):
        bootstrap(clients, settings.with_(capacity_providers=("FARGATE", "my-asg")))


def test_an_ecs_task_state_change_of_the_cluster_arrives_in_the_queue(settings):
    clients = AwsClients(settings)
    result = bootstrap(clients, settings)
    with open(FIXTURES / "ecs" / "task_state_change_RUNNING_fargate_awsdocs.json") as f:
        event = json.load(f)
    detail = dict(event["detail"], clusterArn=result.cluster_arn)
    other = dict(event["detail"], clusterArn=result.cluster_arn + "-other")
    events = clients.client("events")
    # moto accepts Source "aws.ecs" from a client (AWS refuses it); it stands in for ECS here.
    for d in (other, detail):
        put = events.put_events(Entries=[{"Source": "aws.ecs", "DetailType": event["detail-type"],
                                          "Detail": json.dumps(d),
                                          "Resources": event["resources"]}])
        assert put["FailedEntryCount"] == 0
    sqs = clients.client("sqs")
    messages = sqs.receive_message(QueueUrl=result.queue_url, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=1)["Messages"]
    assert len(messages) == 1
    body = json.loads(messages[0]["Body"])
    assert body["source"] == "aws.ecs"
    assert body["detail-type"] == "ECS Task State Change"
    assert body["detail"] == detail
    assert body["detail"]["version"] == event["detail"]["version"]


def test_command_prints_each_resource_then_a_summary(settings, capsys):
    assert main(["bootstrap", "--namespace", "test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["created", "dynamodb-table", "test-registry"]
    queue_line = next(line for line in out if " test-ecs-events " in f"{line} "
                      and "sqs-queue" in line)
    assert queue_line.split()[:3] == ["created", "sqs-queue", "test-ecs-events"]
    assert queue_line.split()[3].startswith("http")
    assert "namespace test: 13 created, 0 found, 0 updated" in out

    assert main(["bootstrap", "--namespace", "test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "namespace test: 0 created, 13 found, 0 updated" in out
    assert all(line.startswith("found") for line in out[:13])


def test_command_json_output_lists_the_rows(settings, capsys):
    assert main(["bootstrap", "--namespace", "test", "--cluster", "jobs",
                 "--output", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["namespace"] == "test"
    assert len(document["resources"]) == 13
    assert {r["status"] for r in document["resources"]} == {"created"}
    cluster = next(r for r in document["resources"] if r["kind"] == "ecs-cluster")
    assert cluster["name"] == "jobs" and cluster["arn_or_url"] == document["cluster_arn"]
    assert document["cluster_arn"].endswith(":cluster/jobs")
    queue = AwsClients(settings).client("sqs").get_queue_url(QueueName="test-ecs-events")
    assert document["queue_url"] == queue["QueueUrl"]


@pytest.mark.parametrize("argv, message", [
    (["--namespace", "Bad_Name"], "namespace 'Bad_Name' is invalid"),
    (["--namespace", "test", "--cluster", "no spaces"], "cluster name 'no spaces' is invalid"),
    (["--namespace", "test", "--endpoint", "ftp://host/sns"], "endpoint URL must be http(s)"),
])
def test_command_refuses_bad_input_and_creates_nothing(settings, capsys, argv, message):
    assert main(["bootstrap", *argv]) == 1
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    clients = AwsClients(settings)
    assert clients.client("dynamodb").list_tables()["TableNames"] == []
    assert clients.client("sqs").list_queues().get("QueueUrls", []) == []


def _moto_auth(url: str, count: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", method="POST",
                                     data=count.encode(), headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_access_denied_stops_bootstrap_naming_the_resource(settings, capsys, monkeypatch):
    iam = AwsClients(settings).client("iam")
    iam.create_user(UserName="no-sqs")
    iam.put_user_policy(UserName="no-sqs", PolicyName="all-but-queues", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "sqs:CreateQueue", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="no-sqs")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _moto_auth(settings.endpoint_url, "0")
    try:
        with pytest.raises(BootstrapError) as caught:
            bootstrap(AwsClients(settings), settings)
        assert main(["bootstrap", "--namespace", "test"]) == 1
    finally:
        _moto_auth(settings.endpoint_url, "inf")
    assert (caught.value.kind, caught.value.name) == ("sqs-queue", "test-ecs-events-dlq")
    assert "AccessDenied" in str(caught.value)
    err = capsys.readouterr().err
    assert "bootstrap stopped at sqs-queue test-ecs-events-dlq" in err


class _Endpoint:
    """A tiny HTTP endpoint on a free loopback port that records the bodies POSTed to it."""

    def __init__(self) -> None:
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 0.05
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sns"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="cronctl-test-sns-endpoint")

    def _serve(self) -> None:
        while not self.stop.is_set():
            self.server.handle_request()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
        self.server.server_close()
        assert not self.thread.is_alive()


def test_subscribe_endpoint_reuses_the_existing_subscription(settings):
    clients = AwsClients(settings)
    result = bootstrap(clients, settings, endpoint_url="https://cron.example.com/sns")
    assert result.rows[4] == ("sns-subscription", "https://cron.example.com/sns",
                              result.subscription_arn, "created")
    again = sns.subscribe_endpoint(clients, result.topic_arn, "https://cron.example.com/sns")
    other = sns.subscribe_endpoint(clients, result.topic_arn, "https://other.example.com/sns")
    assert again == result.subscription_arn != other
    second = bootstrap(clients, settings, endpoint_url="https://cron.example.com/sns")
    assert second.subscription_arn == result.subscription_arn
    assert {row.status for row in second.rows} == {"found"}
    subscriptions = clients.client("sns").list_subscriptions_by_topic(
        TopicArn=result.topic_arn)["Subscriptions"]
    assert sorted((s["Protocol"], s["Endpoint"]) for s in subscriptions) == [
        ("https", "https://cron.example.com/sns"), ("https", "https://other.example.com/sns")]


def test_publish_reaches_the_subscribed_http_endpoint(settings):
    clients = AwsClients(settings)
    with _Endpoint() as endpoint:
        result = bootstrap(clients, settings, endpoint_url=endpoint.url)
        message = json.dumps({"cron": "pi", "scheduled_at": "2026-11-27T06:00:00Z"})
        message_id = sns.publish(clients, result.topic_arn, message)
        notifications = wait_for(lambda: [b for b in endpoint.bodies
                                          if b.get("Type") == "Notification"],
                                 timeout=10, message="the notification POST")
    assert len(notifications) == 1
    body = notifications[0]
    assert (body["MessageId"], body["TopicArn"], body["Message"]) == (
        message_id, result.topic_arn, message)
    assert "Subject" not in body or body["Subject"] in (None, "")


def test_confirm_subscription_returns_the_subscription_arn(settings):
    clients = AwsClients(settings)
    result = bootstrap(clients, settings)
    # moto accepts any token (AWS checks it); the answer's shape is what is asserted here.
    arn = sns.confirm_subscription(clients, result.topic_arn, "token-from-the-confirmation")
    assert arn.startswith(result.topic_arn + ":")


@pytest.mark.parametrize("current, desired, same", [
    ('{"b": "5", "a": ["x"]}', '{"a":"x","b":5}', True),  # AWS re-serialised
    ('{"a": ["y", "x"]}', '{"a":["x","y"]}', True),
    ('{"a": ["x"]}', '{"a":["x","y"]}', False),
    ("60", "60", True),
    ("60", "5", False),
    ("not json {", "not json {", True),
    # policies: labels (Id, Sid), statement order, a lone statement, key order
    ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sns:Publish",'
     '"Principal":{"Service":["scheduler.amazonaws.com","events.amazonaws.com"]}}]}',
     '{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"s","Principal":{"Service":'
     '["events.amazonaws.com","scheduler.amazonaws.com"]},"Action":["sns:Publish"],'
     '"Effect":"Allow"}}', True),
    ('{"Statement":[{"Effect":"Allow","Action":"a"},{"Effect":"Deny","Action":"b"}]}',
     '{"Statement":[{"Action":["b"],"Effect":"Deny"},{"Action":"a","Effect":"Allow"}]}', True),
    ('{"Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"q1"}]}',
     '{"Statement":[{"Effect":"Allow","Action":"sqs:SendMessage","Resource":"q2"}]}', False),
    ('{"Statement":[{"Effect":"Allow","Action":"a"}]}',
     '{"Statement":[{"Effect":"Deny","Action":"a"}]}', False),
])
def test_attribute_values_compare_as_aws_means_them(current, desired, same):
    assert (differing({"k": current}, {"k": desired}) == {}) is same


def test_command_help_says_what_it_creates(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["bootstrap", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for words in ("<ns>-registry", "<ns>-dispatch", "dead-letter", "EventBridge rule",
                  "ECS cluster", "--endpoint", "--output"):
        assert words in out


def test_the_topic_asks_sns_to_retry_deliveries_with_backoff(settings):
    result = bootstrap(AwsClients(settings), settings)
    attributes = AwsClients(settings).client("sns").get_topic_attributes(
        TopicArn=result.topic_arn)["Attributes"]
    policy = json.loads(attributes["DeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]
    assert policy["numRetries"] >= 10 and policy["backoffFunction"] == "exponential"
    # AWS refuses a total retry time over 3,600 s; this one is several minutes.
    assert 300 <= policy["maxDelayTarget"] * (policy["numRetries"] + 2) <= 3600


def test_an_executions_table_without_the_watchdog_index_gets_it(settings):
    """A namespace bootstrapped before the index existed: bootstrap adds it, and the second
    run finds everything."""
    from reconciler.adapters.tables import EXECUTIONS_UNFINISHED, table_definitions

    clients = AwsClients(settings)
    ddb = clients.client("dynamodb")
    old = next(d for d in table_definitions(settings)
               if d["TableName"] == settings.executions_table)
    old = {**old, "GlobalSecondaryIndexes": old["GlobalSecondaryIndexes"][:1],
           "AttributeDefinitions": [a for a in old["AttributeDefinitions"]
                                    if a["AttributeName"] != "unfinished"]}
    ddb.create_table(**old)
    first = bootstrap(clients, settings)
    assert {row.name: row.status for row in first.rows}[settings.executions_table] == "updated"
    indexes = {i["IndexName"] for i in ddb.describe_table(
        TableName=settings.executions_table)["Table"]["GlobalSecondaryIndexes"]}
    assert EXECUTIONS_UNFINISHED in indexes
    second = bootstrap(clients, settings)
    assert second.counts()["created"] == second.counts()["updated"] == 0
