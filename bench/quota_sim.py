"""``apply.simulated_quota``: how long a first apply of ``TARGET_N`` crons on ``IMAGES`` images
takes under AWS's default request quotas. SIMULATED: a pure, event-driven replay of the apply
as it runs now (``reconciler/service/control/apply.py``): ``WORKERS`` changes at once, each
change once its prerequisites are done, every paced call first waiting for a token of its
bucket (``reconciler/core/quotas.py``: the same buckets and the same ``take`` arithmetic as
the apply's pacer), then taking the mean time that operation took on moto in the recorded
apply:

- K task definition creates: DescribeTaskDefinition (task definition read, burst 50, 20/s)
  then RegisterTaskDefinition (task definition modify: burst 20, then 1/s);
- per cron: the rule's create, PutRule + PutTargets (EventBridge: one 50/s bucket for every
  API but PutEvents), then its registry item (DynamoDB PutItem, on demand: not paced), which
  also waits for the create of the task definition it records;
- the pass's fixed calls (observe's reads, the registry scan...) once, before the apply.

``quota_only_s`` is the same with zero call time (the quotas alone); ``sequential_quota_s``
the same calls issued one at a time (the apply before it was concurrent), with zero call time
too: the recorded call times overlap now (``moto_call_time_s`` sums them), so they no longer
add up to a sequential apply's. The floor is the same calls issued as fast as the buckets allow with unlimited
concurrency: the slowest bucket's ``(calls - burst) / rate``.

When the recorded apply is smaller than ``TARGET_N`` (``--quick``), its per-cron calls (those
made at least once per cron) are repeated ``TARGET_N / n`` times in place and its fixed calls
kept once: the row says ``extrapolated_from``.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict

from bench.env import row
from reconciler.core.quotas import DEFAULT_BUCKETS, NAMES, bucket_of, drain_s, full, take
from reconciler.service.control.apply import KIND_SHARE, WORKERS

TARGET_N = 10_000
TARGET_IMAGES = 50
PER_IMAGE = {"ecs.RegisterTaskDefinition", "ecs.DescribeTaskDefinition"}
TD_CALLS = ("ecs.DescribeTaskDefinition", "ecs.RegisterTaskDefinition")
SCHEDULE_CALLS = ("eventbridge.PutRule", "eventbridge.PutTargets")
REGISTRY_CALLS = ("dynamodb.PutItem",)
DEFAULT_CALL_S = 0.005


def _bucket(op: str):
    service, _, operation = op.partition(".")
    return bucket_of(service, operation, DEFAULT_BUCKETS)


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


def sequential(sequence: list, with_latency: bool = True) -> float:
    """Seconds to issue ``sequence`` one call at a time behind the token buckets."""
    states: dict[str, object] = {}
    now = 0.0
    for op, _params, seconds in sequence:
        bucket = _bucket(op)
        if bucket is not None:
            state = states.get(bucket.name) or full(bucket, 0.0)
            states[bucket.name], wait = take(bucket, state, now)
            now += wait
        if with_latency:
            now += seconds
    return now


def concurrent(n: int, images: int, latency: dict[str, float], workers: int = WORKERS,
               prefix_s: float = 0.0) -> float:
    """Seconds of the paced, concurrent first apply of ``n`` crons on ``images`` images (see
    the module doc): ``workers`` changes at once in the apply's order (task definitions
    first, then per cron its schedule and its registry item), each call waiting for its
    bucket's token, then taking ``latency[op]``."""
    # changes: (calls, prerequisites); ids are indexes in the apply's order
    changes: list[tuple[tuple[str, ...], tuple[int, ...]]] = [(TD_CALLS, ())] * images
    kinds = ["task-definition"] * images
    for index in range(n):
        schedule = len(changes)
        changes.append((SCHEDULE_CALLS, ()))
        changes.append((REGISTRY_CALLS, (schedule, index % images)))
        kinds += ["schedule", "registry"]
    cap = max(1, int(workers * KIND_SHARE))
    busy: Counter[str] = Counter()
    waiting = [len(prereq) for _, prereq in changes]
    dependents: dict[int, list[int]] = defaultdict(list)
    for index, (_, prereq) in enumerate(changes):
        for dep in prereq:
            dependents[dep].append(index)
    ready: dict[str, list[int]] = defaultdict(list)  # by kind, as the apply's
    for index, count in enumerate(waiting):
        if count == 0:
            ready[kinds[index]].append(index)
    states: dict[str, object] = {}
    # events: (time, seq, change, index of its next call); a worker is busy from the first
    # call of a change to the end of its last
    events: list[tuple[float, int, int, int]] = []
    seq = 0
    free = workers
    now = prefix_s
    end = prefix_s

    def start(at: float) -> None:
        nonlocal free, seq
        while free:  # as the apply: each kind gets its share of the workers
            open_kinds = [k for k, heap in ready.items() if heap and busy[k] < cap]
            if not open_kinds:
                break
            change = heapq.heappop(ready[min(open_kinds, key=lambda k: ready[k][0])])
            busy[kinds[change]] += 1
            free -= 1
            seq += 1
            heapq.heappush(events, (at, seq, change, 0))

    start(now)
    while events:
        now, _, change, call = heapq.heappop(events)
        calls = changes[change][0]
        if call < len(calls):
            op = calls[call]
            bucket = _bucket(op)
            wait = 0.0
            if bucket is not None:
                state = states.get(bucket.name) or full(bucket, prefix_s)
                states[bucket.name], wait = take(bucket, state, now)
            seq += 1
            heapq.heappush(events, (now + wait + latency.get(op, DEFAULT_CALL_S), seq, change,
                                    call + 1))
            continue
        end = max(end, now)
        free += 1
        busy[kinds[change]] -= 1
        for dependent in dependents.get(change, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready[kinds[dependent]], dependent)
        start(now)
    return end


def floor_s(calls: dict[str, int]) -> float:
    """Unlimited concurrency, perfectly paced: the slowest bucket."""
    per_bucket: Counter[str] = Counter()
    for op, count in calls.items():
        bucket = _bucket(op)
        if bucket is not None:
            per_bucket[bucket.name] += count
    return max((drain_s(DEFAULT_BUCKETS[b], c) for b, c in per_bucket.items()), default=0.0)


def run(sequence: list, n: int, images: int):
    """The row for the recorded first apply of ``n`` crons on ``images`` images."""
    full_sequence = extrapolate(sequence, n, images)
    calls = dict(sorted(Counter(op for op, *_ in full_sequence).items()))
    seconds: dict[str, list[float]] = defaultdict(list)
    for op, _params, took in sequence:
        seconds[op].append(took)
    latency = {op: sum(v) / len(v) for op, v in seconds.items()}
    per_cron = {*TD_CALLS, *SCHEDULE_CALLS, *REGISTRY_CALLS}
    prefix_s = sum(took for op, _params, took in sequence if op not in per_cron)
    # Floor calls: K RegisterTaskDefinition + N x (PutRule + PutTargets) + N registry PutItem.
    floor_calls = {"ecs.RegisterTaskDefinition": TARGET_IMAGES,
                   "eventbridge.PutRule": TARGET_N, "eventbridge.PutTargets": TARGET_N,
                   "dynamodb.PutItem": TARGET_N}
    simulated = concurrent(TARGET_N, TARGET_IMAGES, latency, prefix_s=prefix_s)
    quota_only = concurrent(TARGET_N, TARGET_IMAGES, {op: 0.0 for op in per_cron})
    return row("apply.simulated_quota", TARGET_N, simulated, calls,
               sum(floor_calls.values()), floor_s(floor_calls),
               "the floor's calls (K RegisterTaskDefinition + 2N EventBridge writes + N "
               "PutItem) at unlimited concurrency behind the same buckets: "
               "max((calls - burst) / rate)", simulated=True, paced=True, workers=WORKERS,
               quota_only_s=round(quota_only, 1),
               sequential_quota_s=round(sequential(full_sequence, with_latency=False), 1),
               moto_call_time_s=round(sum(s for *_, s in full_sequence), 1),
               extrapolated_from=None if n >= TARGET_N and images >= TARGET_IMAGES else n,
               recorded_images=images, images=TARGET_IMAGES,
               buckets={name: {"burst": DEFAULT_BUCKETS[name].burst,
                               "per_s": DEFAULT_BUCKETS[name].per_s} for name in NAMES},
               target_s=900)
