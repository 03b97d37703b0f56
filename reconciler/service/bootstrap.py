"""Bootstrap: create, idempotently, the shared AWS infrastructure of one namespace.

What it makes (names from ``Settings``; tagged ``managed-by=cronctl`` and
``cronctl:namespace=<ns>`` wherever the service takes tags):

- the DynamoDB tables (registry, executions with TTL, leases);
- the SNS dispatch topic, which EventBridge rules and Scheduler of the account may publish to,
  and optionally its subscription to the daemon's endpoint;
- the CloudWatch Logs group of the tasks (30-day retention);
- the ECS cluster (an ACTIVE cluster of that name is used as it is);
- the SQS queue of ECS task state changes with its dead-letter queue;
- the EventBridge rule routing the cluster's task state changes into that queue;
- the IAM roles ``<ns>-task-execution`` and ``<ns>-scheduler`` unless role ARNs are given;
- the namespace's settings, recorded in the registry table (item ``#namespace``, versioned):
  the recorded ones, with the values given by flags or ``CRONCTL_*`` variables changed
  (``BootstrapResult.changes`` says old -> new); every command and the daemon read them.

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

from reconciler.adapters import logs, registry, sns
from reconciler.adapters.aws import AwsClients, translate
from reconciler.adapters.infra import ecs_cluster as infra_ecs
from reconciler.adapters.infra import events as infra_events
from reconciler.adapters.infra import iam
from reconciler.adapters.infra import queues as infra_sqs
from reconciler.adapters.infra.attributes import as_json
from reconciler.adapters.tables import ensure_tables
from reconciler.core.desired import default_execution_role, default_scheduler_role
from reconciler.errors import ConfigError, Conflict, CronctlError
from reconciler.settings import NamespaceSettings, Settings

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
    settings: NamespaceSettings | None = None  # the namespace settings recorded
    settings_version: int = 0
    changes: tuple[tuple[str, object, object], ...] = ()  # (setting, old, new)

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


def merged_settings(settings: Settings, record: registry.NamespaceRecord | None) -> Settings:
    """The recorded namespace settings with the ones given (flag or variable) in ``settings``
    applied; without a record, ``settings`` as they are."""
    if record is None:
        return settings
    recorded = NamespaceSettings.from_record(record.settings)
    mine = settings.namespace_settings.flat()
    given = {key: mine[key] for key in settings.given}
    return settings.with_(namespace_settings=recorded).with_(**given)


def setting_changes(old: NamespaceSettings | None,
                    new: NamespaceSettings) -> tuple[tuple[str, object, object], ...]:
    before = old.flat() if old is not None else {}
    return tuple((key, before.get(key), value) for key, value in new.flat().items()
                 if old is None or before.get(key) != value)


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

    record = run.step("namespace-settings", registry.NAMESPACE_ITEM,
                      lambda: registry.read_namespace(clients, settings))
    settings = merged_settings(settings, record)
    check_inputs(settings, endpoint_url)

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
        infra_ecs.ensure_cluster(clients, settings.cluster_name, tags,
                                 tuple(p.name for p in settings.capacity_providers))))
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

    settings = _ensure_roles(run, clients, settings, partition, account, topic_arn, tags)
    wanted = settings.with_(cluster=settings.cluster_name,
                            log_group=settings.log_group_name).namespace_settings
    old = NamespaceSettings.from_record(record.settings) if record else None
    changes = setting_changes(old, wanted)
    version = record.version if record else 0
    if changes:
        def write() -> registry.NamespaceRecord:
            try:
                return registry.write_namespace(clients, settings, wanted.to_record(), version)
            except Conflict as exc:
                raise ConfigError("the namespace's settings were changed meanwhile by another "
                                  "bootstrap: run it again") from exc

        version = run.step("namespace-settings", registry.NAMESPACE_ITEM, write).version
    run.record("namespace-settings", registry.NAMESPACE_ITEM, f"version {version}",
               "created" if record is None else "updated" if changes else "found")
    return BootstrapResult(rows=tuple(run.rows), topic_arn=topic_arn, queue_url=queue.url,
                           queue_arn=queue.arn, dlq_url=dlq.url, cluster_arn=cluster_arn,
                           log_group=log_group, subscription_arn=subscription_arn,
                           settings=wanted, settings_version=version,
                           changes=changes if record is not None else ())


def _ensure_roles(run: _Run, clients: AwsClients, settings: Settings, partition: str,
                  account: str, topic_arn: str, tags: dict[str, str]) -> Settings:
    """The default roles, made (or checked) unless other role ARNs are configured."""
    ns = settings.namespace
    execution = default_execution_role(account, ns, partition)
    if settings.execution_role_arn in (None, execution):
        name = f"{ns}-task-execution"
        arn, status = run.step("iam-role", name, lambda: iam.ensure_execution_role(
            clients, name, partition, settings.region, account, tags))
        run.record("iam-role", name, arn, status)
        settings = settings.with_(execution_role_arn=arn)
    scheduler = default_scheduler_role(account, ns, partition)
    if settings.scheduler_role_arn in (None, scheduler):
        name = f"{ns}-scheduler"
        arn, status = run.step("iam-role", name, lambda: iam.ensure_scheduler_role(
            clients, name, account, topic_arn, tags))
        run.record("iam-role", name, arn, status)
        settings = settings.with_(scheduler_role_arn=arn)
    return settings
