"""Live EventBridge rules and Scheduler schedules whose target runs an ECS task, as read by
``adapters/importing.py``: their task definition (image, command, environment, secrets,
cpu/memory, task role) with the target's RunTask overrides applied."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.core.desired import rule_name
from reconciler.core.importers.common import container, cron_name, positive_int
from reconciler.core.importers.model import (
    AdoptTarget,
    Collector,
    ImportedCron,
    ImportResult,
    Refusal,
    Refused,
    SourceSchedule,
)
from reconciler.core.spec import RULE_NAME_PATTERN

PLACEMENT = "tasks are placed by the namespace's settings (cluster, network, platform)"
ECS_REASONS = {
    "TaskCount": "a run starts one task", "Group": PLACEMENT, "LaunchType": PLACEMENT,
    "NetworkConfiguration": PLACEMENT, "PlatformVersion": PLACEMENT,
    "CapacityProviderStrategy": PLACEMENT, "PlacementConstraints": PLACEMENT,
    "PlacementStrategy": PLACEMENT, "EnableECSManagedTags": "cronctl tags what it creates",
    "EnableExecuteCommand": "cronctl has no equivalent", "PropagateTags": "cronctl tags what "
    "it creates", "Tags": "cronctl tags what it creates", "ReferenceId": "cronctl has no "
    "equivalent",
}


@dataclass(frozen=True)
class LiveContainer:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    entry_point: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    extra: tuple[str, ...] = ()          # other settings it has (workingDirectory, user, ...)


@dataclass(frozen=True)
class LiveTaskDefinition:
    arn: str
    containers: tuple[LiveContainer, ...]
    cpu: str | None = None
    memory: str | None = None
    task_role_arn: str | None = None
    volumes: int = 0
    extra: tuple[str, ...] = ()          # other settings it has (runtimePlatform, ...)


@dataclass(frozen=True)
class LiveSchedule:
    """One rule (``kind="rule"``) or Scheduler schedule (``kind="schedule"``) and its ECS
    target (``ecs_parameters`` is ``None`` when the target is not an ECS task)."""

    kind: str
    name: str
    arn: str
    expression: str
    enabled: bool
    timezone: str = "UTC"
    group: str | None = None
    target_arn: str | None = None
    ecs_parameters: dict[str, Any] | None = None
    input: str | None = None
    task_definition: LiveTaskDefinition | None = None
    extra: tuple[str, ...] = field(default=())   # target settings not carried (RetryPolicy...)


def convert(schedules: list[LiveSchedule], strip_prefix: str = "") -> ImportResult:
    result = ImportResult()
    for live in schedules:
        origin = live.arn
        try:
            result += ImportResult(crons=(_one(live, strip_prefix),))
        except Refusal as refusal:
            result += ImportResult(refused=(Refused(f"{live.kind} {live.name}", origin,
                                                    refusal.field, refusal.reason),))
    return result


def _overrides(raw: str | None) -> dict:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise Refusal("Input", "the target's input is not JSON RunTask overrides") from None
    if not isinstance(value, dict):
        raise Refusal("Input", "the target's input is not JSON RunTask overrides")
    return value


def _one(live: LiveSchedule, strip_prefix: str) -> ImportedCron:
    if live.ecs_parameters is None or live.task_definition is None:
        raise Refusal("Target", f"the target ({live.target_arn}) does not run an ECS task")
    collected = Collector()
    base = live.name[len(strip_prefix):] if strip_prefix and \
        live.name.startswith(strip_prefix) and live.name != strip_prefix else live.name
    name = cron_name(base, "Name")
    definition = live.task_definition
    overrides = _overrides(live.input)
    container_overrides = overrides.get("containerOverrides") or []
    named = {item.get("name") for item in container_overrides if isinstance(item, dict)}
    if len(definition.containers) == 1:
        main = definition.containers[0]
    elif len(named) == 1:
        main = next((c for c in definition.containers if c.name in named), None)
        if main is None:
            raise Refusal("Input.containerOverrides", f"names container {named.pop()!r}, "
                          f"which {definition.arn} does not have")
    else:
        raise Refusal("TaskDefinitionArn", f"{definition.arn} has {len(definition.containers)} "
                      "containers and the overrides do not say which one is the job; a cron "
                      "runs one container")
    for other in definition.containers:
        if other is not main:
            collected.drop(f"containerDefinitions.{other.name}", "a cron runs one container")
    override = next((item for item in container_overrides
                     if isinstance(item, dict) and item.get("name") == main.name), {})
    arguments = list(override.get("command") or main.command or []) or None
    if main.entry_point:
        collected.drop(f"containerDefinitions.{main.name}.entryPoint", "kept by the image "
                       "reference only if the image has the same ENTRYPOINT; cronctl's "
                       "arguments replace only CMD")
    env = dict(main.environment)
    for item in override.get("environment") or []:
        env[str(item.get("name"))] = str(item.get("value", ""))
    for key in ("cpu", "memory", "memoryReservation", "environmentFiles", "resourceRequirements"):
        if key in override:
            collected.drop(f"Input.containerOverrides.{main.name}.{key}", "a container-level "
                           "override; cronctl sizes the whole task (container.capacity)")
    cpu_raw = overrides.get("cpu") or definition.cpu
    memory_raw = overrides.get("memory") or definition.memory
    cpu = positive_int(cpu_raw, "cpu") if cpu_raw else None
    memory = positive_int(memory_raw, "memory") if memory_raw else None
    document: dict[str, Any] = {"schedule": live.expression}
    if live.timezone and live.timezone != "UTC":
        document["timezone"] = live.timezone
    document["container"] = container(main.image, arguments, env, dict(main.secrets), cpu,
                                      memory)
    role = overrides.get("taskRoleArn") or definition.task_role_arn
    if role:
        document["role"] = role
    # EventBridge starts every run, whether or not the last one still runs.
    document["concurrency"] = "allow"
    if not live.enabled:
        document["suspend"] = True
    if definition.volumes:
        collected.drop("volumes", "cronctl mounts no volumes")
    for key in definition.extra:
        collected.drop(f"taskDefinition.{key}", "cronctl's shared task definitions have no "
                       "equivalent (the namespace's roles, logs and platform apply)")
    for key in main.extra:
        collected.drop(f"containerDefinitions.{main.name}.{key}", "cronctl's main container "
                       "has no equivalent")
    for key in live.ecs_parameters:
        if key in ECS_REASONS and not (key == "TaskCount" and live.ecs_parameters[key] == 1):
            collected.drop(f"EcsParameters.{key}", ECS_REASONS[key])
    for key in overrides:
        if key not in ("containerOverrides", "cpu", "memory", "taskRoleArn"):
            collected.drop(f"Input.{key}", "cronctl has no equivalent")
    for key in live.extra:
        collected.drop(key, "cronctl has no equivalent")
    return ImportedCron(
        name=name, source_file=f"{live.kind} {live.name}", origin=live.arn, document=document,
        schedule=SourceSchedule(live.expression, live.timezone), dropped=tuple(collected.dropped),
        adopt=AdoptTarget(live.kind, live.name, live.arn, live.group))


def adoptable(result: ImportResult, namespace: str) -> ImportResult:
    """``--adopt``: the crons whose live schedule the first reconcile can take over, each as
    it will be; the others refused (nothing written for them), each with the reason.

    A rule named as cronctl names the cron's rule (``<ns>-<cron>``: imported with
    ``--rules-prefix <ns>-``) is taken over in place. EventBridge cannot rename a rule, so a
    rule by another name gets ``replaces: {rule: NAME}`` in the cron's file: the first
    reconcile hands it over to dispatch, creates ``<ns>-<cron>``, then deletes it (a rule left
    running beside the new one would start its task a second time). Scheduler schedules
    belong to cronctl by their group: the group must be the namespace's, and every schedule
    in it must be imported (the group's other schedules would become crons without files,
    which reconcile deletes).
    """
    crons, refused = [], list(result.refused)
    incomplete_groups = {r.source_file for r in result.refused if r.source_file.startswith(
        "schedule ")}
    for cron in result.crons:
        target = cron.adopt
        reason = None
        if target is None:
            reason = "not a live rule or schedule"
        elif target.kind == "rule" and target.name != rule_name(namespace, cron.name):
            if not re.match(RULE_NAME_PATTERN, target.name):
                reason = (f"rule {target.name} has a name a cron file cannot name in "
                          "'replaces' (1 to 64 letters, digits, '.', '_' or '-')")
            else:
                cron = replace(cron, document={**cron.document,
                                               "replaces": {"rule": target.name}})
        elif target.kind == "schedule" and target.group != namespace:
            reason = (f"schedule group {target.group} is not the namespace's group "
                      f"({namespace}); import without --adopt and delete the schedule "
                      f"yourself once cron {cron.name} runs")
        elif target.kind == "schedule" and incomplete_groups:
            reason = (f"not every schedule of group {target.group} could be imported; adopting "
                      "the group would make the others crons without files (deleted by "
                      "reconcile)")
        if reason:
            refused.append(Refused(cron.source_file, cron.origin, "--adopt", reason, cron.name))
        else:
            crons.append(cron)
    return ImportResult(tuple(crons), tuple(refused))
