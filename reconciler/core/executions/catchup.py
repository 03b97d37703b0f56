"""Catch-up after an outage (pure): what becomes of a scheduled time that has no execution.

Computed from the schedule, not from deliveries, so it works however long the daemon (or the
schedule's delivery) was down. A cron's catch-up window ``window_s`` is its ``catch-up``, else
its ``no-run-threshold``, else 5 minutes; never more than the shortest gap between two of its
fire times. For a fire with no execution, at ``now`` (``decide``):
- before ``fire + CATCH_UP_AFTER_S`` (or half the window, if shorter): nothing yet, the
  delivery is normally under way;
- within the window (``fire + window`` not reached): ``START`` it late, through the
  dispatcher under the run's own execution id (a late delivery is then a duplicate; the
  concurrency policy applies), oldest first;
- past the window: ``MISSED`` (recorded by a conditional create under the same id, with an
  alert; a delivery that comes later finds it and starts nothing).
This replaces the older rule "MISSED once ``no-run-threshold`` has passed": with the default
window (the threshold) a run is MISSED at the same moment, but is started late before that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.core.executions.records import parse_time
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule.gaps import shortest_gap_s
from reconciler.core.spec import DEFAULT_CATCH_UP_S, CronSpec

CATCH_UP_AFTER_S = 30          # leave the first seconds after a fire to its delivery
LOOK_BACK_S = 3600             # how far back fires are looked at
LOOK_BACK_FIRES = 10           # at most this many per cron


class Action(enum.Enum):
    WAIT = "wait"
    START = "start"
    MISSED = "missed"


@dataclass(frozen=True)
class Fire:
    """A scheduled time of a cron with what to do if it has no execution."""

    cron: str
    at: datetime
    action: Action
    window_s: int


def window_s(spec: CronSpec) -> int:
    """The cron's catch-up window in seconds (see the module docstring)."""
    window = spec.catch_up_s or spec.notifications.no_run_threshold_s or DEFAULT_CATCH_UP_S
    gap = shortest_gap_s(spec.schedule, spec.timezone)
    return min(window, gap) if gap else window


def missed_reason(spec: CronSpec, window: int) -> str:
    """Why a fire is recorded MISSED (naming the rule that set its window)."""
    threshold = spec.notifications.no_run_threshold_s
    if spec.catch_up_s is None and threshold == window:
        return f"no run started within the no-run-threshold ({threshold} s) of its " \
               "scheduled time"
    return f"not started within its catch-up window ({window} s) of its scheduled time"


def decide(fire: datetime, now: datetime, window: int) -> Action:
    """What a fire without an execution needs at ``now``."""
    if now >= fire + timedelta(seconds=window):
        return Action.MISSED
    if now >= fire + timedelta(seconds=min(CATCH_UP_AFTER_S, window / 2)):
        return Action.START
    return Action.WAIT


def fires(spec: CronSpec, since: datetime | str | None, now: datetime, *,
          look_back_s: int = LOOK_BACK_S, limit: int = LOOK_BACK_FIRES) -> list[Fire]:
    """The cron's fires of the look-back window that need something if they have no
    execution (``START`` or ``MISSED``), oldest first; none before the schedule existed
    (``since``), none for a suspended cron; a ``rate()`` whose start is unknown has none.
    A cron that sets neither ``catch-up`` nor ``no-run-threshold`` (the 5-minute default)
    has fires only when its schedule's start is known: fires of a schedule of unknown age
    could be from before it existed."""
    if spec.suspend:
        return []
    if since is None and spec.catch_up_s is None and \
            spec.notifications.no_run_threshold_s is None:
        return []
    window = window_s(spec)
    since_at = None if since is None else parse_time(since) if isinstance(since, str) else since
    start = now - timedelta(seconds=window + look_back_s)
    if since_at is not None:
        start = max(start, since_at)
    anchor = None
    try:
        if isinstance(schedule.parse(spec.schedule), schedule.RateExpression):
            if since_at is None:
                return []
            anchor = since_at.replace(second=0, microsecond=0)
        if start >= now:
            return []
        times = schedule.next_fire_times(spec.schedule, spec.timezone, start, 500,
                                         anchor=anchor)
    except (schedule.ScheduleError, ValueError):
        return []
    found = [Fire(spec.name, t, decide(t, now, window), window) for t in times if t <= now]
    return [f for f in found if f.action is not Action.WAIT][-limit:]
