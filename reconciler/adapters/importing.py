"""`cronctl import aws`: live EventBridge rules and Scheduler schedules whose targets run ECS
tasks, read with their task definitions; and ``--adopt``: tag a rule (or the namespace's
schedule group) as ours, so that the next reconcile takes it over in place.

Only reads, except ``adopt_rule`` and ``adopt_group`` (TagResource). What cronctl already
manages (rules tagged ``managed-by=cronctl``, schedules targeting a dispatch topic with
cronctl's input) is skipped. The conversion is ``core/importers/aws_live.py``.
"""

from __future__ import annotations

import json

from reconciler.adapters import rules, schedules
from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.desired import CRON_TAG, MANAGED_BY, ours_tags
from reconciler.core.importers.aws_live import LiveContainer, LiveSchedule, LiveTaskDefinition
from reconciler.errors import NotFound

# Settings read into the typed model; any other one present is reported as not carried over.
_CONTAINER_READ = {"name", "image", "command", "entryPoint", "environment", "secrets",
                   "essential", "cpu", "memory", "memoryReservation", "portMappings"}
_TASK_READ = {"taskDefinitionArn", "containerDefinitions", "family", "revision", "status",
              "cpu", "memory", "taskRoleArn", "volumes", "networkMode", "compatibilities",
              "requiresCompatibilities", "requiresAttributes", "registeredAt",
              "registeredBy", "placementConstraints", "deregisteredAt"}


def _extra(raw: dict, read: set[str]) -> tuple[str, ...]:
    return tuple(sorted(key for key, value in raw.items() if key not in read and value))


def task_definition(clients: AwsClients, arn: str,
                    cache: dict[str, LiveTaskDefinition | None]) -> LiveTaskDefinition | None:
    if arn not in cache:
        try:
            raw = call_retrying(clients.client("ecs").describe_task_definition,
                                taskDefinition=arn)["taskDefinition"]
        except NotFound:
            cache[arn] = None
            return None
        containers = tuple(LiveContainer(
            name=c["name"], image=c.get("image", ""),
            command=tuple(c["command"]) if c.get("command") else None,
            entry_point=tuple(c["entryPoint"]) if c.get("entryPoint") else None,
            environment=tuple((e["name"], e.get("value", "")) for e in c.get("environment", [])),
            secrets=tuple((s["name"], s["valueFrom"]) for s in c.get("secrets", [])),
            extra=_extra(c, _CONTAINER_READ))
            for c in raw.get("containerDefinitions", []))
        cache[arn] = LiveTaskDefinition(
            arn=raw.get("taskDefinitionArn", arn), containers=containers,
            cpu=raw.get("cpu"), memory=raw.get("memory"),
            task_role_arn=raw.get("taskRoleArn"), volumes=len(raw.get("volumes", [])),
            extra=_extra(raw, _TASK_READ))
    return cache[arn]


def read_rules(clients: AwsClients, prefix: str) -> list[LiveSchedule]:
    """Every scheduled rule named ``prefix...`` (default bus) with its first ECS target."""
    events = clients.client("events")
    cache: dict[str, LiveTaskDefinition | None] = {}
    found = []
    for rule in rules.list_rules(clients, prefix):
        if not rule.get("ScheduleExpression"):
            continue  # an event pattern rule, not a schedule
        if rules.tags(clients, rule["Arn"]).get(MANAGED_BY[0]) == MANAGED_BY[1]:
            continue  # cronctl's own
        try:
            targets = call_retrying(events.list_targets_by_rule,
                                    Rule=rule["Name"]).get("Targets", [])
        except NotFound:
            continue
        ecs_target = next((t for t in targets if t.get("EcsParameters")), None)
        target = ecs_target or (targets[0] if targets else {})
        ecs = (ecs_target or {}).get("EcsParameters")
        extra = tuple(key for key in ("RetryPolicy", "DeadLetterConfig", "InputTransformer",
                                      "InputPath") if key in target)
        extra += tuple(f"Targets.{t.get('Id')}" for t in targets if t is not target)
        found.append(LiveSchedule(
            kind="rule", name=rule["Name"], arn=rule["Arn"],
            expression=rule["ScheduleExpression"], enabled=rule.get("State") == "ENABLED",
            target_arn=target.get("Arn"), ecs_parameters=ecs, input=target.get("Input"),
            task_definition=task_definition(clients, ecs["TaskDefinitionArn"], cache)
            if ecs else None, extra=extra))
    return found


def read_schedules(clients: AwsClients, group: str) -> list[LiveSchedule]:
    """Every schedule of the Scheduler group ``group`` with its ECS target."""
    cache: dict[str, LiveTaskDefinition | None] = {}
    found = []
    for summary in schedules.list_names(clients, group):
        raw = schedules.get(clients, group, summary["Name"])
        if raw is None:
            continue
        target = raw.get("Target") or {}
        if _is_dispatch(target):
            continue  # cronctl's own
        ecs = target.get("EcsParameters")
        extra = tuple(key for key in ("RetryPolicy", "DeadLetterConfig") if key in target)
        if raw.get("FlexibleTimeWindow", {}).get("Mode", "OFF") != "OFF":
            extra += ("FlexibleTimeWindow",)
        extra += tuple(key for key in ("StartDate", "EndDate") if raw.get(key))
        found.append(LiveSchedule(
            kind="schedule", name=raw["Name"], arn=raw["Arn"], group=group,
            expression=raw.get("ScheduleExpression", ""),
            timezone=raw.get("ScheduleExpressionTimezone") or "UTC",
            enabled=raw.get("State") == "ENABLED", target_arn=target.get("Arn"),
            ecs_parameters=ecs, input=target.get("Input"),
            task_definition=task_definition(clients, ecs["TaskDefinitionArn"], cache)
            if ecs else None, extra=extra))
    return found


def _is_dispatch(target: dict) -> bool:
    if not str(target.get("Arn", "")).startswith("arn:aws:sns:"):
        return False
    try:
        return "cron" in json.loads(target.get("Input") or "{}")
    except ValueError:
        return False


def adopt_group(clients: AwsClients, namespace: str) -> None:
    """Tag the Scheduler group ``<ns>`` as the namespace's: its schedules become cronctl's."""
    partition, account = clients.identity()
    arn = (f"arn:{partition}:scheduler:{clients.settings.region}:{account}:"
           f"schedule-group/{namespace}")
    call_retrying(clients.client("scheduler").tag_resource, ResourceArn=arn,
                  Tags=[{"Key": k, "Value": v} for k, v in sorted(ours_tags(namespace).items())])


def adopt_rule(clients: AwsClients, arn: str, namespace: str, cron: str) -> None:
    """Tag the rule as ours for ``cron``: the next reconcile updates it in place."""
    tag_map = ours_tags(namespace, **{CRON_TAG: cron})
    call_retrying(clients.client("events").tag_resource, ResourceARN=arn,
                  Tags=[{"Key": k, "Value": v} for k, v in sorted(tag_map.items())])
