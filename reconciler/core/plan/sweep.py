"""The drift sweep's rotating deep check (pure): which resources a sweep reads one by one.

A sweep lists every resource (ListRules carries a rule's expression, state and description;
ListSchedules a schedule's state and target ARN; ListTaskDefinitionFamilies the ACTIVE
families) and reads one by one (ListTargetsByRule, GetSchedule, DescribeTaskDefinition) only
a budgeted share of those the registry accounts for, in a stable rotation by name: a
``Rotation`` per kind remembers the last name read and when the current and the previous
cycle began. Whatever the registry does not account for is always read (its tags decide
ownership), so it is not part of the rotation.

The budget of a sweep (``budget``): enough to read every resource once per deep-check period
(``ceil(total × interval / period)``), but never more than 20% of the API's rate quota over
the sweep interval (``core/quotas.read_budget``); when the two disagree the quota wins and the
plan says how long a whole round then takes (``round_warning``).

Every resource not read this pass was last read no earlier than the start of the rotation's
previous cycle (``Rotation.since``): the previous cycle read all of them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.core.quotas import DEFAULT_BUCKETS, Bucket, read_budget

RULES, SCHEDULES, TASK_DEFINITIONS = "rules", "schedules", "task-definitions"
KINDS = (RULES, SCHEDULES, TASK_DEFINITIONS)
# the quota each kind's one-by-one read draws from
BUCKETS: dict[str, str] = {RULES: "events", SCHEDULES: "scheduler.GetSchedule",
                           TASK_DEFINITIONS: "ecs-taskdef-read"}


@dataclass(frozen=True)
class Rotation:
    """One kind's place in the rotation: ``after`` the last name read in the current cycle
    ("": the cycle starts at the first name), ``started`` when the current cycle began,
    ``previous`` when the previous one began (None: no cycle completed yet)."""

    after: str = ""
    started: datetime | None = None
    previous: datetime | None = None

    @property
    def since(self) -> datetime | None:
        """Every resource of the kind was read one by one no earlier than this."""
        return self.previous


@dataclass(frozen=True)
class SweepCursor:
    """The rotation of each kind (``KINDS``); persisted as registry item ``#sweep``."""

    rotations: dict[str, Rotation] = field(default_factory=dict)

    def of(self, kind: str) -> Rotation:
        return self.rotations.get(kind, Rotation())

    def with_(self, kind: str, rotation: Rotation) -> SweepCursor:
        return SweepCursor({**self.rotations, kind: rotation})


def budget(total: int, interval_s: float, period_s: float,
           bucket: Bucket | None) -> int:
    """Resources of one kind to read one by one per sweep (see the module docstring)."""
    if total <= 0:
        return 0
    needed = math.ceil(total * interval_s / period_s)
    if bucket is None:
        return min(total, needed)
    return min(total, needed, read_budget(bucket, interval_s))


def budgets(totals: dict[str, int], interval_s: float, period_s: float,
            buckets: dict[str, Bucket] | None = None) -> dict[str, int]:
    """``budget`` of each kind, from the default quotas unless ``buckets`` are given."""
    buckets = buckets or DEFAULT_BUCKETS
    return {kind: budget(count, interval_s, period_s, buckets.get(BUCKETS[kind]))
            for kind, count in totals.items()}


def round_warning(totals: dict[str, int], interval_s: float, period_s: float,
                  buckets: dict[str, Bucket] | None = None) -> str | None:
    """A plan warning when 20% of a quota cannot read every resource within the period."""
    chosen = budgets(totals, interval_s, period_s, buckets)
    for kind in KINDS:
        total, per_sweep = totals.get(kind, 0), chosen.get(kind, 0)
        if total and per_sweep and per_sweep * period_s / interval_s < total:
            sweeps = math.ceil(total / per_sweep)
            return (f"the deep check reads {per_sweep} of {total} {kind} per sweep (20% of "
                    f"the API's quota): a whole round takes {sweeps} sweeps "
                    f"({sweeps * interval_s / 3600:.0f} h), longer than the deep-check "
                    f"period of {period_s / 3600:.0f} h")
    return None


def select(names: list[str], rotation: Rotation, count: int,
           now: datetime) -> tuple[frozenset[str], Rotation]:
    """The next ``count`` of ``names`` (sorted) after ``rotation.after``, wrapping round;
    and the rotation after reading them (a wrap, or reading the last name, completes a
    cycle: the next one starts ``now``)."""
    names = sorted(names)
    if not names:  # nothing to read: every one of none was read now
        return frozenset(), Rotation("", now, now)
    after, started, previous = rotation.after, rotation.started or now, rotation.previous
    chosen: list[str] = []
    index = bisect.bisect_right(names, after) if after else 0
    while len(chosen) < min(count, len(names)):
        if index >= len(names):
            index, after, previous, started = 0, "", started, now
        chosen.append(names[index])
        after = names[index]
        index += 1
    if names and index >= len(names) and chosen:
        after, previous, started = "", started, now
    return frozenset(chosen), Rotation(after, started, previous)


def oldest(cursor: SweepCursor) -> datetime | None:
    """The earliest ``since`` of the kinds in rotation (None when one of them has none)."""
    times = [rotation.since for rotation in cursor.rotations.values()]
    if not times or any(t is None for t in times):
        return None
    return min(times)

