"""``ECS Task State Change`` events in AWS's exact envelope, for the local task runner.

Shape as EventBridge delivers it to an SQS target (see the ECS fixtures): ``version``, ``id``,
``detail-type``, ``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def task_state_change(*, region: str, account: str, cluster_arn: str, task_arn: str,
                      task_definition_arn: str, started_by: str, version: int,
                      last_status: str, desired_status: str, created_at: datetime,
                      started_at: datetime | None = None, stopped_at: datetime | None = None,
                      main_exit: int | None = None, timeout_exit: int | None = None,
                      stop_code: str | None = None, stopped_reason: str | None = None) -> dict:
    now = datetime.now(UTC)
    task_id = task_arn.rsplit("/", 1)[-1]

    def container(name: str, exit_code: int | None) -> dict:
        entry = {
            "containerArn": f"arn:aws:ecs:{region}:{account}:container/{task_id}/{name}",
            "taskArn": task_arn,
            "name": name,
            "lastStatus": "STOPPED" if exit_code is not None else last_status,
            "cpu": "0",
        }
        if exit_code is not None:
            entry["exitCode"] = exit_code
        return entry

    detail = {
        "clusterArn": cluster_arn,
        "taskArn": task_arn,
        "taskDefinitionArn": task_definition_arn,
        "startedBy": started_by,
        "launchType": "FARGATE",
        "lastStatus": last_status,
        "desiredStatus": desired_status,
        "version": version,
        "createdAt": iso(created_at),
        "updatedAt": iso(now),
        "containers": [container("main", main_exit), container("timeout", timeout_exit)],
        "group": f"family:{task_definition_arn.rsplit('/', 1)[-1].split(':')[0]}",
    }
    if started_at:
        detail["startedAt"] = iso(started_at)
    if stopped_at:
        detail["stoppedAt"] = iso(stopped_at)
        detail["executionStoppedAt"] = iso(stopped_at)
    if stop_code:
        detail["stopCode"] = stop_code
    if stopped_reason:
        detail["stoppedReason"] = stopped_reason
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [task_arn],
        "detail": detail,
    }
