"""``apply.simulated_quota``: how long a first apply of ``TARGET_N`` crons on ``IMAGES`` images
takes under AWS's default request quotas. SIMULATED: a pure computation from the recorded
call sequence of a real first apply on moto (operations in order, with the seconds each took
on moto), with token buckets in front of the rate-limited APIs:

- EventBridge: 50 requests/s shared by its write APIs (PutRule, PutTargets, DeleteRule,
  RemoveTargets, TagResource, UntagResource, EnableRule, DisableRule), burst 50;
- EventBridge Scheduler: CreateSchedule, UpdateSchedule, DeleteSchedule 50/s each, burst 50;
- ECS RegisterTaskDefinition: burst 20, then 1/s;
- DynamoDB on-demand and every other call: unbounded here.

The apply is replayed as the reconciler issues it: one call at a time, each waiting for a
token of its bucket, then taking its recorded moto time (``simulated_s``); ``quota_only_s``
is the same with zero call time (the quotas alone, in that order). The floor is the same calls
issued as fast as the buckets allow with unlimited concurrency: the slowest bucket's
``(calls - burst) / rate``.

When the recorded apply is smaller than ``TARGET_N`` (``--quick``), its per-cron calls (those
made at least once per cron) are repeated ``TARGET_N / n`` times in place and its fixed calls
kept once: the row says ``extrapolated_from``.
"""

from __future__ import annotations

import math
from collections import Counter

from bench.env import row

TARGET_N = 10_000
TARGET_IMAGES = 50
EVENTBRIDGE_WRITES = {"PutRule", "PutTargets", "DeleteRule", "RemoveTargets", "TagResource",
                      "UntagResource", "EnableRule", "DisableRule"}
SCHEDULER_WRITES = {"CreateSchedule", "UpdateSchedule", "DeleteSchedule"}
# bucket -> (burst, rate per second)
BUCKETS = {"eventbridge-writes": (50, 50.0), "ecs.RegisterTaskDefinition": (20, 1.0),
           **{f"scheduler.{op}": (50, 50.0) for op in SCHEDULER_WRITES}}


def bucket_of(op: str) -> str | None:
    service, name = op.split(".", 1)
    if service == "eventbridge" and name in EVENTBRIDGE_WRITES:
        return "eventbridge-writes"
    if op in BUCKETS:
        return op
    return None


PER_IMAGE = {"ecs.RegisterTaskDefinition", "ecs.DescribeTaskDefinition"}


def extrapolate(sequence: list, n: int, images: int, target_n: int = TARGET_N,
                target_images: int = TARGET_IMAGES) -> list:
    """The sequence of an apply of ``target_n`` crons on ``target_images`` images from one of
    ``n`` crons on ``images`` (see the module doc): per-image calls repeated
    ``target_images / images`` times, per-cron calls (made at least once per cron)
    ``target_n / n`` times, in place; fixed calls kept once."""
    if n >= target_n and images >= target_images:
        return list(sequence)
    cron_factor = max(1, math.ceil(target_n / n))
    image_factor = max(1, math.ceil(target_images / max(1, images)))
    per_op = Counter(op for op, *_ in sequence)
    out = []
    for call in sequence:
        if call[0] in PER_IMAGE:
            repeat = image_factor
        elif per_op[call[0]] >= n:
            repeat = cron_factor
        else:
            repeat = 1
        out += [call] * repeat
    return out


def simulate(sequence: list, with_latency: bool = True) -> float:
    """Seconds to issue ``sequence`` one call at a time behind the token buckets."""
    tokens = {b: float(burst) for b, (burst, _rate) in BUCKETS.items()}
    last = dict.fromkeys(BUCKETS, 0.0)
    now = 0.0
    for op, _params, seconds in sequence:
        bucket = bucket_of(op)
        if bucket is not None:
            burst, rate = BUCKETS[bucket]
            tokens[bucket] = min(burst, tokens[bucket] + (now - last[bucket]) * rate)
            last[bucket] = now
            if tokens[bucket] < 1.0:
                wait = (1.0 - tokens[bucket]) / rate
                now += wait
                tokens[bucket] = 1.0
                last[bucket] = now
            tokens[bucket] -= 1.0
        if with_latency:
            now += seconds
    return now


def floor_s(calls: dict[str, int]) -> float:
    """Unlimited concurrency, perfectly paced: the slowest bucket."""
    per_bucket: Counter[str] = Counter()
    for op, count in calls.items():
        bucket = bucket_of(op)
        if bucket is not None:
            per_bucket[bucket] += count
    return max([max(0.0, (c - BUCKETS[b][0]) / BUCKETS[b][1]) for b, c in per_bucket.items()],
               default=0.0)


def run(sequence: list, n: int, images: int):
    """The row for the recorded first apply of ``n`` crons on ``images`` images."""
    full = extrapolate(sequence, n, images)
    calls = dict(sorted(Counter(op for op, *_ in full).items()))
    # Floor calls: K RegisterTaskDefinition + N x (PutRule + PutTargets) + N registry PutItem.
    floor_calls = {"ecs.RegisterTaskDefinition": TARGET_IMAGES,
                   "eventbridge.PutRule": TARGET_N, "eventbridge.PutTargets": TARGET_N,
                   "dynamodb.PutItem": TARGET_N}
    simulated = simulate(full)
    return row("apply.simulated_quota", TARGET_N, simulated, calls,
               sum(floor_calls.values()), floor_s(floor_calls),
               "the floor's calls (K RegisterTaskDefinition + 2N EventBridge writes + N "
               "PutItem) at unlimited concurrency behind the same buckets: "
               "max((calls - burst) / rate)", simulated=True,
               quota_only_s=round(simulate(full, with_latency=False), 1),
               moto_call_time_s=round(sum(s for *_, s in full), 1),
               extrapolated_from=None if n >= TARGET_N and images >= TARGET_IMAGES else n,
               recorded_images=images, images=TARGET_IMAGES,
               buckets={b: {"burst": burst, "per_s": rate} for b, (burst, rate)
                        in BUCKETS.items()}, target_s=900)
