"""AWS's default API rate quotas, as token buckets (pure data, shared by the apply's pacing
and the drift sweep's read budget).

A bucket holds ``burst`` tokens and gets ``per_s`` back every second; each call of an
operation mapped to it takes one. Operations not mapped are not paced.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    name: str
    burst: int
    per_s: float
    # how the quota is named where it is raised (Service Quotas, or a support case)
    quota: str = ""


DEFAULT_BUCKETS: dict[str, Bucket] = {
    b.name: b for b in (
        # EventBridge (default bus, "Classic" APIs): 50 TPS per account and Region
        Bucket("events-write", 50, 50.0, "EventBridge: API request throttle (PutRule, "
                                         "PutTargets, RemoveTargets, DeleteRule, TagResource)"),
        Bucket("events-read", 50, 50.0, "EventBridge: API request throttle (ListRules, "
                                        "ListTargetsByRule, DescribeRule, ListTagsForResource)"),
        # EventBridge Scheduler: per API
        Bucket("scheduler.CreateSchedule", 50, 50.0, "EventBridge Scheduler: CreateSchedule "
                                                     "throttle limit"),
        Bucket("scheduler.UpdateSchedule", 50, 50.0, "EventBridge Scheduler: UpdateSchedule "
                                                     "throttle limit"),
        Bucket("scheduler.DeleteSchedule", 50, 50.0, "EventBridge Scheduler: DeleteSchedule "
                                                     "throttle limit"),
        Bucket("scheduler.GetSchedule", 50, 50.0, "EventBridge Scheduler: GetSchedule "
                                                  "throttle limit"),
        Bucket("scheduler.ListSchedules", 50, 50.0, "EventBridge Scheduler: ListSchedules "
                                                    "throttle limit"),
        # ECS: token buckets per action family
        Bucket("ecs.RegisterTaskDefinition", 20, 1.0, "ECS: RegisterTaskDefinition (task "
                                                      "definition modify)"),
        Bucket("ecs-taskdef-read", 20, 10.0, "ECS: task definition read"),
        Bucket("ecs.RunTask", 100, 20.0, "ECS: RunTask (Fargate)"),
    )
}

# "<service>.<Operation>" -> the bucket it draws from
BUCKET_OF: dict[str, str] = {
    **{f"events.{op}": "events-write" for op in (
        "PutRule", "PutTargets", "RemoveTargets", "DeleteRule", "TagResource",
        "UntagResource", "EnableRule", "DisableRule")},
    **{f"events.{op}": "events-read" for op in (
        "ListRules", "ListTargetsByRule", "DescribeRule", "ListTagsForResource")},
    **{f"scheduler.{op}": f"scheduler.{op}" for op in (
        "CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule", "ListSchedules")},
    "ecs.RegisterTaskDefinition": "ecs.RegisterTaskDefinition",
    **{f"ecs.{op}": "ecs-taskdef-read" for op in (
        "DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies")},
    "ecs.RunTask": "ecs.RunTask",
}


def bucket_of(service: str, operation: str,
              buckets: dict[str, Bucket] | None = None) -> Bucket | None:
    """The bucket ``service.operation`` draws from, or None (not paced)."""
    name = BUCKET_OF.get(f"{service}.{operation}")
    return (buckets or DEFAULT_BUCKETS).get(name) if name else None


def read_budget(bucket: Bucket, interval_s: float, share: float = 0.2) -> int:
    """The calls a background reader may make per ``interval_s`` while staying under
    ``share`` of the bucket's sustained rate."""
    return max(1, int(bucket.per_s * interval_s * share))
