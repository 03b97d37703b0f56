"""AWS's default API rate quotas, as token buckets (pure data and arithmetic, shared by the
apply's pacing, its ETA, the bench's simulation and the drift sweep's read budget).

A bucket holds ``burst`` tokens and gets ``per_s`` back every second; each call of an
operation mapped to it takes one. Operations not mapped are not paced (DynamoDB on demand,
SNS, IAM...). Operations are keyed ``<service>.<Operation>`` as botocore names them in its
events (``eventbridge.PutRule``, ``scheduler.CreateSchedule``, ``ecs.RegisterTaskDefinition``).

The defaults (per account and Region; a namespace raises them with ``--api-rate``):

- EventBridge: every API but PutEvents shares one quota, 50 requests per second ("Throttle
  limit for API requests"), reads and writes alike: one bucket ``events``, burst 50.
- EventBridge Scheduler: a quota per API. The documented defaults moved from 50 per second to
  1,000 (then 5,000) in the largest Regions and 250 elsewhere; 50 is what every account and
  Region allows. CreateScheduleGroup / GetScheduleGroup / ListTagsForResource: 10 per second.
- ECS, token buckets per family of actions: task definition modify (RegisterTaskDefinition,
  DeregisterTaskDefinition) burst 20, refilled 1 per second; task definition read
  (DescribeTaskDefinition, ListTaskDefinitions, ListTaskDefinitionFamilies) burst 50, 20 per
  second (both from the table of the ECS API Reference's "Request throttling for the Amazon
  ECS API"); RunTask on Fargate burst 100, 20 tasks per second (Fargate's own throttle, below
  ECS's cluster resource modify bucket of 100, 40 per second).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Bucket:
    name: str
    burst: int
    per_s: float
    # how the quota is named where it is raised (Service Quotas, or a support case)
    quota: str = ""


_SCHEDULER = "EventBridge Scheduler: {op} request rate"
DEFAULT_BUCKETS: dict[str, Bucket] = {
    b.name: b for b in (
        Bucket("events", 50, 50.0, "Amazon EventBridge: Throttle limit for API requests "
                                   "(every API but PutEvents)"),
        *(Bucket(f"scheduler.{op}", 50, 50.0, _SCHEDULER.format(op=op)) for op in (
            "CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule",
            "ListSchedules")),
        *(Bucket(f"scheduler.{op}", 10, 10.0, _SCHEDULER.format(op=op)) for op in (
            "CreateScheduleGroup", "GetScheduleGroup", "ListTagsForResource")),
        Bucket("ecs-taskdef-modify", 20, 1.0, "Amazon ECS: task definition modify actions "
                                              "(RegisterTaskDefinition, "
                                              "DeregisterTaskDefinition)"),
        Bucket("ecs-taskdef-read", 50, 20.0, "Amazon ECS: task definition read actions"),
        Bucket("ecs.RunTask", 100, 20.0, "Amazon ECS: RunTask (Fargate task launch rate)"),
    )
}
# Older names of buckets, read as the bucket they are part of (EventBridge's reads and
# writes share one quota).
ALIASES: dict[str, str] = {"events-read": "events", "events-write": "events",
                           "ecs.RegisterTaskDefinition": "ecs-taskdef-modify"}
for _alias, _name in ALIASES.items():
    DEFAULT_BUCKETS[_alias] = DEFAULT_BUCKETS[_name]

_EVENTS_OPS = ("PutRule", "PutTargets", "RemoveTargets", "DeleteRule", "TagResource",
               "UntagResource", "EnableRule", "DisableRule", "ListRules", "ListTargetsByRule",
               "DescribeRule", "ListTagsForResource", "ListRuleNamesByTarget")
# "<service>.<Operation>" -> the bucket it draws from
BUCKET_OF: dict[str, str] = {
    **{f"eventbridge.{op}": "events" for op in _EVENTS_OPS},
    **{f"scheduler.{op}": f"scheduler.{op}" for op in (
        "CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule", "ListSchedules",
        "CreateScheduleGroup", "GetScheduleGroup", "ListTagsForResource")},
    "ecs.RegisterTaskDefinition": "ecs-taskdef-modify",
    "ecs.DeregisterTaskDefinition": "ecs-taskdef-modify",
    **{f"ecs.{op}": "ecs-taskdef-read" for op in (
        "DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies")},
    "ecs.RunTask": "ecs.RunTask",
}
# botocore's event names use the service id ("eventbridge"); boto3 the endpoint ("events")
_SERVICE_IDS = {"events": "eventbridge"}


def bucket_of(service: str, operation: str,
              buckets: Mapping[str, Bucket] | None = None) -> Bucket | None:
    """The bucket ``service.operation`` draws from, or None (not paced)."""
    name = BUCKET_OF.get(f"{_SERVICE_IDS.get(service, service)}.{operation}")
    return (buckets or DEFAULT_BUCKETS).get(name) if name else None


def read_budget(bucket: Bucket, interval_s: float, share: float = 0.2) -> int:
    """The calls a background reader may make per ``interval_s`` while staying under
    ``share`` of the bucket's sustained rate."""
    return max(1, int(bucket.per_s * interval_s * share))


# --- configured rates: ``NAME=RATE[/BURST]`` -----------------------------------------------

NAMES = tuple(name for name in DEFAULT_BUCKETS if name not in ALIASES)


def parse_rate(text: str) -> str:
    """One ``--api-rate`` value, checked and written canonically (``events=100/100``):
    ``NAME=RATE`` (burst = the default burst, at least the rate) or ``NAME=RATE/BURST``;
    ValueError with the reason."""
    name, sep, value = text.strip().partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"expected NAME=RATE or NAME=RATE/BURST, got {text!r}")
    name = ALIASES.get(name, name)
    if name not in NAMES:
        raise ValueError(f"unknown API rate {name!r}: one of {', '.join(NAMES)}")
    rate_text, slash, burst_text = value.strip().partition("/")
    try:
        rate = float(rate_text)
    except ValueError:
        rate = float("nan")
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{name}: the rate must be a positive number of calls per second, "
                         f"got {rate_text.strip()!r}")
    if slash:
        try:
            burst = int(burst_text)
        except ValueError:
            burst = 0
        if burst < 1:
            raise ValueError(f"{name}: the burst must be a whole number of calls, 1 or more, "
                             f"got {burst_text.strip()!r}")
    else:
        burst = max(DEFAULT_BUCKETS[name].burst, math.ceil(rate))
    return f"{name}={rate:g}/{burst}"


def configured(rates: Iterable[str] = ()) -> dict[str, Bucket]:
    """The default buckets with ``rates`` (``parse_rate``'s canonical texts) applied; the
    aliases follow the bucket they name."""
    buckets = {name: DEFAULT_BUCKETS[name] for name in NAMES}
    for text in rates:
        name, _, value = parse_rate(text).partition("=")
        rate, _, burst = value.partition("/")
        buckets[name] = replace(buckets[name], burst=int(burst), per_s=float(rate))
    for alias, name in ALIASES.items():
        buckets[alias] = buckets[name]
    return buckets


# --- the arithmetic of one bucket ----------------------------------------------------------

@dataclass(frozen=True)
class BucketState:
    """Tokens in a bucket at time ``at`` (seconds, any monotonic origin). Negative: tokens
    already promised to callers still waiting for them."""

    tokens: float
    at: float


def full(bucket: Bucket, now: float) -> BucketState:
    return BucketState(float(bucket.burst), now)


def take(bucket: Bucket, state: BucketState, now: float) -> tuple[BucketState, float]:
    """One call at ``now``: the new state and the seconds the caller waits before calling.
    The bucket is refilled for the time since ``state.at`` (at most to ``burst``), then the
    call's token is taken, possibly in advance: the wait is the time until it is refilled.
    So any window of ``w`` seconds holds at most ``burst + per_s * w`` calls."""
    elapsed = max(0.0, now - state.at)
    tokens = min(float(bucket.burst), state.tokens + elapsed * bucket.per_s) - 1.0
    wait = 0.0 if tokens >= 0 else -tokens / bucket.per_s
    return BucketState(tokens, max(now, state.at)), wait


def drain_s(bucket: Bucket, calls: int, tokens: float | None = None) -> float:
    """Seconds to make ``calls`` calls as fast as the bucket allows, from ``tokens`` in it
    (None: full)."""
    start = float(bucket.burst) if tokens is None else tokens
    return max(0.0, (calls - start) / bucket.per_s)


# --- what a change costs, and how long the rest of an apply takes -------------------------

# (resource, action, backend) -> the paced operations of one change (the adapters' calls;
# backend "" for resources without one). Registry writes (DynamoDB on demand) and monitors
# (the monitoring service's HTTP API) are not paced.
CHANGE_CALLS: dict[tuple[str, str, str], tuple[str, ...]] = {
    ("schedule", "create", "rules"): ("eventbridge.PutRule", "eventbridge.PutTargets"),
    ("schedule", "update", "rules"): ("eventbridge.PutRule", "eventbridge.TagResource",
                                      "eventbridge.PutTargets"),
    ("schedule", "delete", "rules"): ("eventbridge.ListTargetsByRule",
                                      "eventbridge.RemoveTargets", "eventbridge.DeleteRule"),
    ("schedule", "create", "scheduler"): ("scheduler.CreateSchedule",),
    ("schedule", "update", "scheduler"): ("scheduler.UpdateSchedule",),
    ("schedule", "delete", "scheduler"): ("scheduler.DeleteSchedule",),
    ("task-definition", "create", ""): ("ecs.DescribeTaskDefinition",
                                        "ecs.RegisterTaskDefinition"),
    ("task-definition", "delete", ""): ("ecs.ListTaskDefinitions",
                                        "ecs.DeregisterTaskDefinition"),
}


def calls_of(resource: str, action: str, backend: str = "") -> tuple[str, ...]:
    return CHANGE_CALLS.get((resource, action, backend), ())


def eta_s(calls: Mapping[str, int], buckets: Mapping[str, Bucket] | None = None,
          tokens: Mapping[str, float] | None = None) -> float:
    """Seconds the ``calls`` left (``service.Operation`` -> how many) take at least when each
    bucket drains in parallel, from ``tokens`` (by bucket name; None or absent: full)."""
    buckets = buckets or DEFAULT_BUCKETS
    per_bucket: dict[str, int] = {}
    for op, count in calls.items():
        service, _, operation = op.partition(".")
        bucket = bucket_of(service, operation, buckets)
        if bucket is not None and count > 0:
            per_bucket[bucket.name] = per_bucket.get(bucket.name, 0) + count
    by_name = {bucket.name: bucket for bucket in buckets.values()}
    return max((drain_s(by_name[name], n, (tokens or {}).get(name))
                for name, n in per_bucket.items()), default=0.0)
