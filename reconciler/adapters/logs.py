"""CloudWatch Logs: the log group the tasks' ``awslogs`` driver writes to."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying


def _find_group(clients: AwsClients, name: str) -> dict | None:
    logs = clients.client("logs")
    response = call_retrying(logs.describe_log_groups, logGroupNamePrefix=name, limit=1)
    groups = [g for g in response["logGroups"] if g["logGroupName"] == name]
    return groups[0] if groups else None


def _group_arn(group: dict) -> str:
    return group.get("logGroupArn") or group["arn"].removesuffix(":*")


def ensure_log_group(clients: AwsClients, name: str, retention_days: int,
                     tags: dict[str, str]) -> tuple[str, str]:
    """Make log group ``name`` exist with ``retention_days``; ``(arn, created|found|updated)``."""
    logs = clients.client("logs")
    group = _find_group(clients, name)
    status = "found"
    if group is None:
        call_retrying(logs.create_log_group, logGroupName=name, tags=tags)
        status = "created"
    if group is None or group.get("retentionInDays") != retention_days:
        call_retrying(logs.put_retention_policy, logGroupName=name,
                      retentionInDays=retention_days)
        status = "created" if group is None else "updated"
    group = group or _find_group(clients, name)
    return _group_arn(group), status
