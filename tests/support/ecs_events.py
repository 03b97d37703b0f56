"""Builders of ``ECS Task State Change`` events in AWS's exact shape, and their delivery.

The emulator emits no task events, so tests inject them: an EventBridge envelope as AWS
delivers it to an SQS target (modelled on the fixtures in tests/fixtures/ecs: ISO
timestamps in ``detail``, integer ``detail.version``, ``startedBy``, containers with
``name``/``lastStatus``/``exitCode``, ``stopCode``/``stoppedReason`` once stopping).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

ACCOUNT = "123456789012"
REGION = "us-east-1"
BASE_TIME = datetime(2018, 2, 26, 13, 50, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """ISO with milliseconds and Z, as ECS writes detail timestamps."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def container(name: str, task_arn: str, last_status: str, exit_code: int | None = None,
              reason: str | None = None) -> dict:
    item = {
        "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/{uuid.uuid4()}",
        "lastStatus": last_status,
        "name": name,
        "image": "public.ecr.aws/docker/library/busybox:stable",
        "taskArn": task_arn,
        "networkInterfaces": [],
        "cpu": "0",
    }
    if exit_code is not None:
        item["exitCode"] = exit_code
    if reason:
        item["reason"] = reason
    return item


def task_event(*, task_arn: str, started_by: str | None, last_status: str, version: int,
               desired_status: str = "RUNNING", main_exit: int | None = None,
               timeout_exit: int | None = None, main_status: str | None = None,
               timeout_status: str | None = None, stop_code: str | None = None,
               stopped_reason: str | None = None, created_at: datetime = BASE_TIME,
               started_at: datetime | None = None, stopped_at: datetime | None = None,
               cluster: str = "test",
               task_definition_arn: str | None = None) -> dict:
    """One EventBridge envelope of an ``ECS Task State Change``."""
    cluster_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}"
    container_status = {"PROVISIONING": "PENDING", "PENDING": "PENDING",
                        "RUNNING": "RUNNING"}.get(last_status, "STOPPED")
    detail = {
        "attachments": [],
        "availabilityZone": f"{REGION}a",
        "clusterArn": cluster_arn,
        "containers": [
            container("main", task_arn, main_status or container_status, main_exit),
            container("timeout", task_arn, timeout_status or container_status, timeout_exit),
        ],
        "createdAt": iso(created_at),
        "launchType": "FARGATE",
        "cpu": "256",
        "memory": "512",
        "desiredStatus": desired_status,
        "group": "family:cronctl-test",
        "lastStatus": last_status,
        "overrides": {"containerOverrides": [{"name": "main"}, {"name": "timeout"}]},
        "connectivity": "CONNECTED",
        "taskArn": task_arn,
        "taskDefinitionArn": task_definition_arn
        or f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/cronctl-test:1",
        "updatedAt": iso(stopped_at or started_at or created_at),
        "version": version,
        "platformVersion": "1.4.0",
    }
    if started_by is not None:
        detail["startedBy"] = started_by
    if started_at is not None:
        detail["startedAt"] = iso(started_at)
    if stop_code:
        detail["stopCode"] = stop_code
        detail["stoppingAt"] = iso(stopped_at or started_at or created_at)
    if stopped_reason:
        detail["stoppedReason"] = stopped_reason
    if stopped_at is not None and last_status == "STOPPED":
        detail["stoppedAt"] = iso(stopped_at)
        detail["executionStoppedAt"] = iso(stopped_at)
    when = stopped_at or started_at or created_at
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [task_arn],
        "detail": detail,
    }


def lifecycle(task_arn: str, started_by: str, *, main_exit: int | None = 0,
              timeout_exit: int | None = None, run_seconds: int = 4,
              created_at: datetime = BASE_TIME) -> list[dict]:
    """PENDING v1, RUNNING v2, DEPROVISIONING v3, STOPPED v4 of one task, in order.

    ``timeout_exit=124`` models the sidecar ending the task (main then killed: 137).
    """
    started = created_at + timedelta(seconds=3)
    stopped = started + timedelta(seconds=run_seconds)
    if timeout_exit is not None and main_exit is None:
        main_exit = 137
    common = {"task_arn": task_arn, "started_by": started_by, "created_at": created_at}
    final = {"main_exit": main_exit, "timeout_exit": timeout_exit,
             "stop_code": "EssentialContainerExited",
             "stopped_reason": "Essential container in task exited",
             "started_at": started, "stopped_at": stopped, "desired_status": "STOPPED"}
    return [
        task_event(last_status="PENDING", version=1, **common),
        task_event(last_status="RUNNING", version=2, started_at=started, **common),
        task_event(last_status="DEPROVISIONING", version=3, **common, **final),
        task_event(last_status="STOPPED", version=4, **common, **final),
    ]


def ensure_queue(sqs, settings) -> str:
    """The namespace's events queue (created if missing); its URL."""
    return sqs.create_queue(QueueName=settings.queue_name,
                            Attributes={"VisibilityTimeout": "30"})["QueueUrl"]


def send_event(sqs, settings, envelope: dict | str) -> None:
    """Deliver one envelope (or a raw body) to the namespace's queue, as EventBridge does."""
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    body = envelope if isinstance(envelope, str) else json.dumps(envelope)
    sqs.send_message(QueueUrl=url, MessageBody=body)


def send_events(sqs, settings, envelopes: list[dict]) -> None:
    """Deliver many envelopes with SendMessageBatch (10 per call)."""
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    for start in range(0, len(envelopes), 10):
        chunk = envelopes[start:start + 10]
        response = sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(e)} for i, e in enumerate(chunk)])
        assert not response.get("Failed"), response.get("Failed")


# -- the AWS side that dispatch and the consumer need (what bootstrap/reconcile create) -----

def prepare_execution_plane(clients, settings) -> str:
    """Tables, cluster, events queue and a two-container task definition; the definition ARN."""
    from reconciler.adapters.tables import ensure_tables
    from tests.support.reconcile_env import record_settings

    ensure_tables(clients, settings)
    record_settings(clients, settings)
    ecs = clients.client("ecs")
    ecs.create_cluster(clusterName=settings.cluster_name)
    ensure_queue(clients.client("sqs"), settings)
    return ecs.register_task_definition(
        family="cronctl-test", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        cpu="256", memory="512",
        containerDefinitions=[
            {"name": "main", "image": "public.ecr.aws/docker/library/busybox:stable",
             "memory": 448, "essential": True},
            {"name": "timeout", "image": "public.ecr.aws/docker/library/busybox:stable",
             "memory": 64, "essential": True, "command": ["sleep", "86400"]},
        ])["taskDefinition"]["taskDefinitionArn"]


def put_cron(clients, settings, name: str, task_definition_arn: str | None, *,
             concurrency: str = "forbid", suspend: bool = False,
             schedule: str = "cron(*/5 * * * ? *)", timeout_s: int = 3600,
             notifications=None, docs: str | None = None,
             schedule_since: str | None = None) -> None:
    """A registry item as the control plane writes it (``notifications``: a
    ``core.spec.Notifications``)."""
    from boto3.dynamodb.types import TypeSerializer

    from reconciler.core.registry_model import RegistryItem
    from reconciler.core.spec import ContainerSpec, CronSpec

    spec = CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule=schedule,
                    container=ContainerSpec(image="public.ecr.aws/docker/library/busybox:stable",
                                            arguments=("echo", "hello")),
                    timeout_s=timeout_s, concurrency=concurrency, suspend=suspend,
                    **({"notifications": notifications} if notifications else {}), docs=docs)
    overrides = {
        "containerOverrides": [
            {"name": "main", "command": ["echo", "hello"], "environment": []},
            {"name": "timeout", "command": ["sleep", str(timeout_s)]},
        ],
        "cpu": "256",
        "memory": "512",
    }
    item = RegistryItem(name=name, spec=spec, spec_hash=spec.spec_hash(),
                        commit="0" * 40, file=spec.file, schedule_backend="rules",
                        task_definition_arn=task_definition_arn, overrides=overrides,
                        updated_at="2018-02-26T13:00:00Z", schedule_since=schedule_since)
    serializer = TypeSerializer()
    clients.client("dynamodb").put_item(TableName=settings.registry_table, Item={
        k: serializer.serialize(v) for k, v in item.to_item().items()})


def tasks_started_by(clients, settings, started_by: str) -> list[dict]:
    """Every task (running or stopped) whose startedBy is ``started_by``, described."""
    ecs = clients.client("ecs")
    arns = set()
    for status in ("RUNNING", "STOPPED"):
        arns.update(ecs.list_tasks(cluster=settings.cluster_name, startedBy=started_by,
                                   desiredStatus=status)["taskArns"])
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=settings.cluster_name, tasks=sorted(arns),
                               include=["TAGS"])["tasks"]
    return [t for t in tasks if t.get("startedBy") == started_by]
