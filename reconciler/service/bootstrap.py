"""Bootstrap: create, idempotently, the shared AWS infrastructure of one namespace.

What it makes (names from ``Settings``; tagged ``managed-by=cronctl`` and
``cronctl:namespace=<ns>`` wherever the service takes tags):

- the DynamoDB tables (registry, executions with TTL, leases);
- the SNS dispatch topic, which EventBridge rules and Scheduler of the account may publish to,
  and optionally its subscription to the daemon's endpoint;
- the CloudWatch Logs group of the tasks (30-day retention);
- the ECS cluster (an ACTIVE cluster of that name is used as it is);
- the SQS queue of ECS task state changes with its dead-letter queue;
- the EventBridge rule routing the cluster's task state changes into that queue.

Invariants: running it again creates nothing and reports every resource "found"; a resource
that drifted from the wanted attributes is set back ("updated"); nothing else is touched.
Inputs are checked before the first AWS call; a failing call stops bootstrap with an error
naming the resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from reconciler.adapters import infra_ecs, infra_events, infra_sqs, logs, sns
from reconciler.adapters.aws import AwsClients, translate
from reconciler.adapters.infra_attributes import as_json
from reconciler.adapters.tables import ensure_tables
from reconciler.errors import ConfigError, CronctlError
from reconciler.settings import Settings

EVENTS_TARGET_ID = "cronctl-ecs-events"
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_S = 14 * 24 * 3600
QUEUE_VISIBILITY_TIMEOUT_S = 60
QUEUE_WAIT_TIME_S = 20
LOG_RETENTION_DAYS = 30

NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
CLUSTER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
LOG_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_./#-]{1,512}$")


class BootstrapRow(NamedTuple):
    """One resource: its kind, name, ARN or URL, and "created" | "found" | "updated"."""

    kind: str
    name: str
    arn_or_url: str
    status: str


@dataclass(frozen=True)
class BootstrapResult:
    """Every resource bootstrap handled, in order, plus the identifiers the daemon needs."""

    rows: tuple[BootstrapRow, ...]
    topic_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    cluster_arn: str
    log_group: str
    subscription_arn: str | None = None

    def counts(self) -> dict[str, int]:
        """How many resources were created, found and updated."""
        counts = {"created": 0, "found": 0, "updated": 0}
        for row in self.rows:
            counts[row.status] += 1
        return counts


class BootstrapError(CronctlError):
    """Bootstrap stopped at one resource; ``cause`` is the translated AWS error."""

    def __init__(self, kind: str, name: str, cause: Exception) -> None:
        super().__init__(f"bootstrap stopped at {kind} {name}: {cause}")
        self.kind = kind
        self.name = name
        self.cause = cause


def format_row(row: BootstrapRow) -> str:
    """``created  sqs-queue         test-ecs-events  https://...``"""
    return f"{row.status:<7}  {row.kind:<16}  {row.name:<20}  {row.arn_or_url}"


def tags_for(settings: Settings) -> dict[str, str]:
    return {"managed-by": "cronctl", "cronctl:namespace": settings.namespace}


def ecs_events_pattern(cluster_arn: str) -> dict:
    """The rule's event pattern: task state changes of this cluster only."""
    return {"source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
            "detail": {"clusterArn": [cluster_arn]}}


def queue_policy(queue_arn: str, rule_arn: str) -> dict:
    """Queue policy: only the namespace's rule may send to the queue."""
    return {
        "Version": "2012-10-17",
        "Id": "cronctl-ecs-events",
        "Statement": [{
            "Sid": "cronctl-events-rule-send",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    }


def check_inputs(settings: Settings, endpoint_url: str | None) -> None:
    """Refuse names AWS would refuse (or that could not derive valid names) before any call."""
    if not NAMESPACE_PATTERN.match(settings.namespace):
        raise ConfigError(f"namespace {settings.namespace!r} is invalid: 1-32 characters, "
                          "lower-case letters, digits and '-', not starting or ending with '-'")
    if not CLUSTER_PATTERN.match(settings.cluster_name):
        raise ConfigError(f"cluster name {settings.cluster_name!r} is invalid: 1-255 letters, "
                          "digits, '-' and '_'")
    if not LOG_GROUP_PATTERN.match(settings.log_group_name):
        raise ConfigError(f"log group name {settings.log_group_name!r} is invalid")
    if endpoint_url is not None:
        sns.endpoint_protocol(endpoint_url)


class _Run:
    """One bootstrap run: records rows, reports progress, names the resource on failure."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.rows: list[BootstrapRow] = []
        self.progress = progress

    def step(self, kind: str, name: str, action: Callable[[], object]):
        try:
            return action()
        except CronctlError as exc:
            raise BootstrapError(kind, name, exc) from exc
        except (BotoCoreError, ClientError) as exc:  # calls made outside ``call`` (waiters)
            raise BootstrapError(kind, name, translate(exc)) from exc

    def record(self, kind: str, name: str, arn_or_url: str, status: str) -> None:
        row = BootstrapRow(kind, name, arn_or_url, status)
        self.rows.append(row)
        if self.progress is not None:
            self.progress(format_row(row))


def bootstrap(clients: AwsClients, settings: Settings,
              progress: Callable[[str], None] | None = None,
              endpoint_url: str | None = None) -> BootstrapResult:
    """Create what is missing of the namespace's infrastructure; see the module docstring."""
    check_inputs(settings, endpoint_url)
    run = _Run(progress)
    tags = tags_for(settings)
    partition, account = run.step("sts-identity", "caller", clients.identity)
    region = settings.region

    tables = run.step("dynamodb-table", settings.registry_table,
                      lambda: ensure_tables(clients, settings))
    for name, status in tables.items():
        run.record("dynamodb-table", name,
                   f"arn:{partition}:dynamodb:{region}:{account}:table/{name}", status)

    topic_arn = settings.topic_arn(partition, account)
    policy = as_json(sns.topic_policy(topic_arn, account))
    status = run.step("sns-topic", settings.topic_name, lambda: sns.ensure_topic(
        clients, topic_arn, tags,
        {"Policy": policy, "DeliveryPolicy": as_json(sns.delivery_policy())}))
    run.record("sns-topic", settings.topic_name, topic_arn, status)

    subscription_arn = None
    if endpoint_url is not None:
        subscription_arn, status = run.step("sns-subscription", endpoint_url, lambda: (
            sns.ensure_subscription(clients, topic_arn, endpoint_url)))
        run.record("sns-subscription", endpoint_url, subscription_arn, status)

    log_group = settings.log_group_name
    arn, status = run.step("logs-group", log_group, lambda: logs.ensure_log_group(
        clients, log_group, LOG_RETENTION_DAYS, tags))
    run.record("logs-group", log_group, arn, status)

    cluster_arn, status = run.step("ecs-cluster", settings.cluster_name, lambda: (
        infra_ecs.ensure_cluster(clients, settings.cluster_name, tags)))
    run.record("ecs-cluster", settings.cluster_name, cluster_arn, status)

    rule = settings.events_rule_name
    rule_arn, status = run.step("events-rule", rule, lambda: infra_events.ensure_rule(
        clients, rule, ecs_events_pattern(cluster_arn),
        f"cronctl {settings.namespace}: ECS task state changes to SQS", tags))
    run.record("events-rule", rule, rule_arn, status)

    dlq = run.step("sqs-queue", settings.dlq_name, lambda: infra_sqs.ensure_queue(
        clients, settings.dlq_name, {"MessageRetentionPeriod": str(DLQ_RETENTION_S)}, tags))
    run.record("sqs-queue", settings.dlq_name, dlq.url, dlq.status)

    queue_arn = f"arn:{partition}:sqs:{region}:{account}:{settings.queue_name}"
    queue = run.step("sqs-queue", settings.queue_name, lambda: infra_sqs.ensure_queue(
        clients, settings.queue_name, {
            "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT_S),
            "ReceiveMessageWaitTimeSeconds": str(QUEUE_WAIT_TIME_S),
            "RedrivePolicy": as_json({"deadLetterTargetArn": dlq.arn,
                                      "maxReceiveCount": MAX_RECEIVE_COUNT}),
            "Policy": as_json(queue_policy(queue_arn, rule_arn)),
        }, tags))
    run.record("sqs-queue", settings.queue_name, queue.url, queue.status)

    target = f"{rule}/{EVENTS_TARGET_ID}"
    status = run.step("events-target", target, lambda: infra_events.ensure_target(
        clients, rule, EVENTS_TARGET_ID, queue.arn))
    run.record("events-target", target, queue.arn, status)

    return BootstrapResult(rows=tuple(run.rows), topic_arn=topic_arn, queue_url=queue.url,
                           queue_arn=queue.arn, dlq_url=dlq.url, cluster_arn=cluster_arn,
                           log_group=log_group, subscription_arn=subscription_arn)
