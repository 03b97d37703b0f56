"""Desired state: what AWS should hold for each CronSpec (pure).

Per cron: one schedule (an EventBridge rule or an EventBridge Scheduler schedule) targeting the
namespace's SNS topic, a shared content-addressed ECS task definition, and the RunTask
overrides that carry everything that differs from cron to cron.

Invariants:
- the task definition family is ``<ns>-td-<first 16 hex of its hash>``: equal inputs give the
  same family, so crons on the same image share one definition;
- every resource is tagged ``managed-by=cronctl`` and ``cronctl:namespace=<ns>`` (schedules
  also ``cronctl:cron=<name>``) so that a later observe recognises it as ours.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from functools import lru_cache

from reconciler.core.schedule import expressions as schedule_expressions
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import CronSpec, canonical_json, share_fields, shared

MANAGED_BY = ("managed-by", "cronctl")
NAMESPACE_TAG = "cronctl:namespace"
CRON_TAG = "cronctl:cron"
TD_HASH_TAG = "cronctl:td-hash"
TARGET_ID = "cronctl-dispatch"
RULE_NAME_MAX = 64
MAIN_CONTAINER = "main"
TIMEOUT_CONTAINER = "timeout"
TIMEOUT_CONTAINER_MEMORY = 32
TASK_CPU = "256"
TASK_MEMORY = "512"
DEFAULT_TIMEOUT_COMMAND = ("sh", "-c", "sleep 86400; exit 124")
SCHEDULER_TIME = "<aws.scheduler.scheduled-time>"
RULE_INPUT_PATHS = json.dumps({"time": "$.time"}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Deployment:
    """The namespace-wide inputs of desired state, known once per pass."""

    namespace: str
    region: str
    account: str
    backend: str                      # "rules" | "scheduler"
    sidecar_image: str
    log_group: str
    execution_role_arn: str | None = None
    default_task_role_arn: str | None = None
    scheduler_role_arn: str | None = None
    partition: str = "aws"
    fargate: bool = True              # tasks run on Fargate (launch type or capacity provider)
    rules_quota: int = 300            # rules per event bus (the rules backend's ceiling)
    monitor: str = "none"             # the cron-monitoring service: none|cronitor|healthchecks
    year: int | None = None           # this year: daylight-saving changes checked from it
    now: datetime | None = None       # the pass's clock (aware): at() in the past, windows

    @property
    def topic_arn(self) -> str:
        return topic_arn(self.partition, self.region, self.account, self.namespace)

    @property
    def scheduler_role(self) -> str:
        return self.scheduler_role_arn or default_scheduler_role(
            self.account, self.namespace, self.partition)


def dispatch_topic_name(namespace: str) -> str:
    """The namespace's one SNS topic, the target of every schedule."""
    return f"{namespace}-dispatch"


def topic_arn(partition: str, region: str, account: str, namespace: str) -> str:
    return f"arn:{partition}:sns:{region}:{account}:{dispatch_topic_name(namespace)}"


def default_scheduler_role(account: str, namespace: str, partition: str = "aws") -> str:
    """The role EventBridge Scheduler assumes to publish to the topic, unless configured."""
    return f"arn:{partition}:iam::{account}:role/{namespace}-scheduler"


def default_execution_role(account: str, namespace: str, partition: str = "aws") -> str:
    """The task execution role ``cronctl bootstrap`` creates (``<ns>-task-execution``: it may
    read every SSM parameter and Secrets Manager secret of the account in the region)."""
    return f"arn:{partition}:iam::{account}:role/{namespace}-task-execution"


@dataclass(frozen=True, slots=True)
class DesiredSchedule:
    """A schedule as cronctl wants it; ``input`` is the exact JSON text the target receives
    (Scheduler) or the input template (rules)."""

    backend: str
    name: str
    arn: str
    group: str | None
    expression: str
    timezone: str
    state: str                        # "ENABLED" | "DISABLED"
    description: str
    target_arn: str
    input: str
    input_paths: str | None = None    # rules only: the transformer's InputPathsMap as JSON
    role_arn: str | None = None       # Scheduler only
    start_date: str | None = None     # Scheduler only: StartDate (UTC ISO), while in the future
    end_date: str | None = None       # Scheduler only: EndDate (UTC ISO)
    after_completion: str | None = None  # Scheduler only: "DELETE" for one-time at()

    def __post_init__(self) -> None:
        # desired and observed (``ObservedSchedule.current``) schedules share their texts
        share_fields(self, _SCHEDULE_FIELDS)

    def fields(self) -> dict:
        """The compared fields, by name (what the plan diffs). Scheduler's window and
        completion fields only when set, so schedules without them diff as before."""
        data = {"expression": self.expression, "state": self.state,
                "description": self.description, "target": self.target_arn,
                "input": self.input}
        if self.backend == "scheduler":
            data["timezone"] = self.timezone
            data["role"] = self.role_arn
            for key, value in (("start_date", self.start_date), ("end_date", self.end_date),
                               ("after_completion", self.after_completion)):
                if value is not None:
                    data[key] = value
        else:
            data["input_paths"] = self.input_paths
        return data


_SCHEDULE_FIELDS = tuple(f.name for f in dataclass_fields(DesiredSchedule))


@dataclass(frozen=True, slots=True)
class DesiredTaskDefinition:
    family: str
    td_hash: str
    register_args: dict               # RegisterTaskDefinition keyword arguments


@dataclass(frozen=True, slots=True)
class DesiredCron:
    spec: CronSpec
    schedule: DesiredSchedule
    task_definition: DesiredTaskDefinition
    overrides: dict


def rule_name(namespace: str, cron: str) -> str:
    """``<ns>-<cron>``, or truncated with a short hash suffix to fit EventBridge's 64."""
    name = f"{namespace}-{cron}"
    if len(name) <= RULE_NAME_MAX:
        return name
    suffix = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:RULE_NAME_MAX - 9]}-{suffix}"


def rule_arn(region: str, account: str, name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:events:{region}:{account}:rule/{name}"


def schedule_arn(region: str, account: str, group: str, name: str,
                 partition: str = "aws") -> str:
    return f"arn:{partition}:scheduler:{region}:{account}:schedule/{group}/{name}"


def rule_input_template(cron: str) -> str:
    """Input template of a rule target. ``<time>`` sits inside quotes: EventBridge inserts the
    extracted value without escaping, so the target receives
    ``{"cron": "<name>", "scheduled_at": "2015-11-11T21:29:54Z"}``."""
    return '{"cron": "' + cron + '", "scheduled_at": "<time>"}'


def scheduler_input(cron: str) -> str:
    return json.dumps({"cron": cron, "scheduled_at": SCHEDULER_TIME})


def ours_tags(namespace: str, **extra: str) -> dict[str, str]:
    tags = {MANAGED_BY[0]: MANAGED_BY[1], NAMESPACE_TAG: namespace}
    tags.update(extra)
    return tags


def is_ours(tags: dict[str, str] | None, namespace: str) -> bool:
    """A resource is ours iff tagged ``managed-by=cronctl`` and our namespace."""
    return bool(tags) and tags.get(MANAGED_BY[0]) == MANAGED_BY[1] \
        and tags.get(NAMESPACE_TAG) == namespace


def utc_text(moment: datetime) -> str:
    """``2026-12-01T00:00:00Z``: how StartDate/EndDate are compared and shown."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduler_window(spec: CronSpec, now: datetime | None) -> tuple[str | None, str | None]:
    """(StartDate, EndDate) of the cron's schedule. A start already passed is left out: AWS
    refuses a StartDate more than 5 minutes ago, and a passed one constrains nothing (the
    adapter reports a passed live one as None too). Without ``now`` the start is kept."""
    bounds = active_window.bounds(spec.active, spec.timezone)
    start = bounds.start
    if start is not None and now is not None and start <= now:
        start = None
    return (utc_text(start) if start else None,
            utc_text(bounds.end) if bounds.end else None)


def rules_state(spec: CronSpec, now: datetime | None) -> str:
    """A rule is DISABLED while suspended or, when ``now`` is known, outside its window."""
    if spec.suspend:
        return "DISABLED"
    if now is not None and spec.active is not None \
            and not active_window.bounds(spec.active, spec.timezone).contains(now):
        return "DISABLED"
    return "ENABLED"


def desired_schedule(spec: CronSpec, dep: Deployment) -> DesiredSchedule:
    state = "DISABLED" if spec.suspend else "ENABLED"
    description = f"cronctl {dep.namespace}/{spec.name} ({spec.file})"
    if dep.backend == "scheduler":
        start, end = scheduler_window(spec, dep.now)
        return DesiredSchedule(
            backend="scheduler", name=spec.name, group=dep.namespace,
            arn=schedule_arn(dep.region, dep.account, dep.namespace, spec.name, dep.partition),
            expression=spec.schedule, timezone=spec.timezone, state=state,
            description=description, target_arn=dep.topic_arn,
            input=scheduler_input(spec.name), role_arn=dep.scheduler_role,
            start_date=start, end_date=end,
            after_completion="DELETE" if schedule_expressions.is_one_time(spec.schedule)
            else None)
    state = rules_state(spec, dep.now)
    name = rule_name(dep.namespace, spec.name)
    return DesiredSchedule(
        backend="rules", name=name, arn=rule_arn(dep.region, dep.account, name, dep.partition), group=None,
        expression=spec.schedule, timezone="UTC", state=state, description=description,
        target_arn=dep.topic_arn, input=rule_input_template(spec.name),
        input_paths=RULE_INPUT_PATHS)


def timezone_problem(spec: CronSpec, backend: str) -> str | None:
    """Rules evaluate cron() in UTC only: a non-UTC zone there cannot be honoured."""
    if backend == "rules" and spec.timezone != "UTC" and spec.schedule.startswith("cron("):
        return (f"timezone {spec.timezone} needs --scheduler scheduler "
                "(EventBridge rules evaluate cron() in UTC only)")
    return None


def one_time_problem(spec: CronSpec, backend: str) -> str | None:
    """EventBridge rules have no one-time schedules."""
    if backend == "rules" and schedule_expressions.is_one_time(spec.schedule):
        return (f"one-time schedule {spec.schedule} needs the EventBridge Scheduler backend "
                "(EventBridge rules have no at() schedules): run `cronctl bootstrap "
                "--scheduler scheduler` (or set --scheduler scheduler / CRONCTL_SCHEDULER)")
    return None


def task_definition_hash(spec: CronSpec, dep: Deployment) -> str:
    return _td_hash(spec.container.image, spec.container.secrets, dep.log_group, dep.region,
                    dep.sidecar_image, dep.execution_role_arn, dep.namespace)


@lru_cache(maxsize=1024)  # a fleet has few images: 10,000 crons on 50 hash 50 times
def _td_hash(image: str, secrets: tuple[tuple[str, str], ...], log_group: str, region: str,
             sidecar_image: str, execution_role_arn: str | None, namespace: str) -> str:
    material = {
        "image": image,
        "secrets": sorted(secrets),
        "log_group": log_group,
        "region": region,
        "sidecar": sidecar_image,
        "execution_role": execution_role_arn,
        "namespace": namespace,
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


def family_of(namespace: str, td_hash: str) -> str:
    """The shared task definition's family: ``<ns>-td-<first 16 hex of its hash>``."""
    return f"{namespace}-td-{td_hash[:16]}"


def desired_task_definition(spec: CronSpec, dep: Deployment) -> DesiredTaskDefinition:
    """The cron's shared task definition; crons that share it share one object (equal
    inputs, equal definition: its arguments must not be changed)."""
    return _task_definition(task_definition_hash(spec, dep), spec.container.image,
                            spec.container.secrets, dep.namespace, dep.region,
                            dep.log_group, dep.sidecar_image, dep.execution_role_arn)


@lru_cache(maxsize=1024)
def _task_definition(td_hash: str, image: str, secrets: tuple[tuple[str, str], ...],
                     namespace: str, region: str, log_group: str, sidecar_image: str,
                     execution_role_arn: str | None) -> DesiredTaskDefinition:
    family = family_of(namespace, td_hash)
    main = {
        "name": MAIN_CONTAINER,
        "image": image,
        "essential": True,
        "memory": int(TASK_MEMORY) - TIMEOUT_CONTAINER_MEMORY,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": log_group, "awslogs-region": region,
            "awslogs-stream-prefix": namespace}},
    }
    if secrets:
        main["secrets"] = [{"name": k, "valueFrom": v} for k, v in secrets]
    timeout = {
        "name": TIMEOUT_CONTAINER,
        "image": sidecar_image,
        "essential": True,
        "command": list(DEFAULT_TIMEOUT_COMMAND),
        "memory": TIMEOUT_CONTAINER_MEMORY,
    }
    tags = ours_tags(namespace, **{TD_HASH_TAG: td_hash})
    args = {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": TASK_CPU,
        "memory": TASK_MEMORY,
        "containerDefinitions": [main, timeout],
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
    }
    if execution_role_arn:
        args["executionRoleArn"] = execution_role_arn
    return DesiredTaskDefinition(family=family, td_hash=td_hash, register_args=args)


def overrides_for(spec: CronSpec, dep: Deployment) -> dict:
    """RunTask ``overrides``: passed verbatim by dispatch."""
    cap = spec.container.capacity
    main: dict = {"name": MAIN_CONTAINER}
    if spec.container.arguments:
        main["command"] = list(spec.container.arguments)
    main["environment"] = [{"name": k, "value": v} for k, v in spec.container.env]
    main["memory"] = cap.memory - TIMEOUT_CONTAINER_MEMORY
    timeout = {"name": TIMEOUT_CONTAINER,
               "command": ["sh", "-c", shared(f"sleep {spec.timeout_s}; exit 124")]}
    overrides: dict = {"containerOverrides": [main, timeout],
                       "cpu": shared(str(cap.cpu)), "memory": shared(str(cap.memory))}
    role = spec.role or dep.default_task_role_arn
    if role:
        overrides["taskRoleArn"] = role
    return overrides


def desired_cron(spec: CronSpec, dep: Deployment) -> DesiredCron:
    return DesiredCron(spec=spec, schedule=desired_schedule(spec, dep),
                       task_definition=desired_task_definition(spec, dep),
                       overrides=overrides_for(spec, dep))
