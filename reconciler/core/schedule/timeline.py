"""The fleet's timeline: every fire time of every cron in a window, and the busiest minutes.

Pure: crons in, a frozen ``Timeline`` out. ``cronctl schedule`` renders it, and ``cronctl
validate`` warns about the minutes that need more task starts than RunTask allows at once.

Every fire starts one task, so a minute's fires are the RunTask calls it needs. ECS throttles
RunTask with a token bucket: on Fargate, a burst of 100 calls, refilled at 20 a second (the
defaults; both can be raised). Schedules fire at the start of their minute, so a minute with
``n`` fires over the burst starts its last task about ``(n - burst) / rate`` seconds late, and
one with more than ``burst + 60 × rate`` cannot start them all within the minute.

A ``rate()`` fires every interval from when its schedule was created. When that moment is not
known (a timeline read from files alone), it is taken at the window's start: the worst case,
every such cron firing together; the timeline names those crons (``assumed_anchor``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.core.cronfile.calendars import excluded_by
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule import window as active_window
from reconciler.core.spec import CronSpec

RUNTASK_BURST = 100  # RunTask calls ECS accepts at once (Fargate default bucket)
RUNTASK_RATE = 20.0  # RunTask calls per second once the burst is spent
MAX_FIRES_PER_CRON = 100_000  # a rate(1 minute) fires 1,440 times a day


@dataclass(frozen=True)
class Fire:
    """One scheduled start: when, which cron, from which file."""

    at: datetime
    cron: str
    file: str


@dataclass(frozen=True)
class BusyMinute:
    """A minute and the crons that fire in it (one task start each)."""

    minute: datetime
    crons: tuple[str, ...]

    @property
    def starts(self) -> int:
        return len(self.crons)

    def late_s(self, burst: int = RUNTASK_BURST, rate: float = RUNTASK_RATE) -> float:
        """How late the minute's last start is, RunTask's bucket allowing."""
        return max(0.0, (self.starts - burst) / rate)

    def over_burst(self, burst: int = RUNTASK_BURST) -> bool:
        return self.starts > burst

    def over_minute(self, burst: int = RUNTASK_BURST, rate: float = RUNTASK_RATE) -> bool:
        """More starts than RunTask allows within the minute."""
        return self.starts > burst + 60 * rate


@dataclass(frozen=True)
class Timeline:
    """The window ``[start, end)``, its fires in time order, its minutes busiest first."""

    start: datetime
    end: datetime
    fires: tuple[Fire, ...]
    minutes: tuple[BusyMinute, ...]  # every minute with a fire, most starts first
    crons: int  # crons considered (suspended ones start nothing and are left out)
    suspended: tuple[str, ...]
    assumed_anchor: tuple[str, ...]  # rate() crons whose start was taken at ``start``
    unevaluable: tuple[tuple[str, str], ...] = ()  # (cron, why) that could not be evaluated

    def busiest(self, count: int = 5) -> tuple[BusyMinute, ...]:
        return self.minutes[:count]

    def over_burst(self, burst: int = RUNTASK_BURST) -> tuple[BusyMinute, ...]:
        return tuple(m for m in self.minutes if m.over_burst(burst))


def fire_times(spec: CronSpec, start: datetime, end: datetime,
               anchor: datetime | None = None) -> list[datetime]:
    """The cron's fire times in ``[start, end)`` (aware UTC), without those on dates its
    calendars exclude (they start nothing)."""
    found: list[datetime] = []
    after = start - timedelta(microseconds=1)
    while len(found) < MAX_FIRES_PER_CRON:
        batch = active_window.spec_fire_times(spec, after, 500, anchor=anchor)
        for moment in batch:
            if moment >= end:
                return found
            if not spec.exclude or excluded_by(spec.exclude, moment) is None:
                found.append(moment)
        if len(batch) < 500:
            return found
        after = batch[-1]
    return found


def fleet_timeline(specs: Iterable[CronSpec], start: datetime, end: datetime,
                   anchors: Mapping[str, datetime] | None = None) -> Timeline:
    """Every fire of ``specs`` in ``[start, end)``; ``anchors``: when each rate() cron's
    schedule was created, where known (the registry's ``schedule_since``)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("the window must end after it starts")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    anchors = anchors or {}
    fires: list[Fire] = []
    suspended: list[str] = []
    assumed: list[str] = []
    unevaluable: list[tuple[str, str]] = []
    considered = 0
    for spec in sorted(specs, key=lambda s: s.name):
        if spec.suspend:
            suspended.append(spec.name)
            continue
        considered += 1
        anchor = None
        if spec.schedule.startswith("rate("):
            anchor = anchors.get(spec.name)
            if anchor is None:
                anchor = start.replace(second=0, microsecond=0)
                assumed.append(spec.name)
        try:
            times = fire_times(spec, start, end, anchor)
        except (schedule.ScheduleError, ValueError) as error:
            unevaluable.append((spec.name, str(error)))
            continue
        fires += [Fire(moment, spec.name, spec.file) for moment in times]
    fires.sort(key=lambda f: (f.at, f.cron))
    by_minute: dict[datetime, list[str]] = {}
    for fire in fires:
        by_minute.setdefault(fire.at.replace(second=0, microsecond=0), []).append(fire.cron)
    minutes = sorted((BusyMinute(minute, tuple(crons)) for minute, crons in by_minute.items()),
                     key=lambda m: (-m.starts, m.minute))
    return Timeline(start, end, tuple(fires), tuple(minutes), considered, tuple(suspended),
                    tuple(assumed), tuple(unevaluable))


def offset_hint(minute: BusyMinute, burst: int = RUNTASK_BURST) -> str:
    """What to do about a minute over the burst, in words."""
    extra = minute.starts - burst
    return (f"{minute.starts} task starts at {minute.minute:%Y-%m-%d %H:%M} UTC, over RunTask's "
            f"burst of {burst}: the last starts about {minute.late_s(burst):.0f} s late; "
            f"move {extra} of them to another minute (e.g. minute "
            f"{(minute.minute.minute + 1) % 60} instead of {minute.minute.minute})")
