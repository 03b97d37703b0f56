"""The active window (``active: {from, until}``) and fire times that respect it (pure).

Decisions: bounds are read in the cron's time zone; a date ``from`` starts at 00:00 that day,
a date ``until`` runs to the end of that day (inclusive), a datetime ``until`` includes that
exact time. Internally the window is half-open, ``[start, end)`` in UTC, which is also what
EventBridge Scheduler's ``StartDate``/``EndDate`` mean. A cron outside its window fires
nothing: no next run, not in the timeline, not fired by the embedded clock, refused by
dispatch (the rules backend's backstop), its rule disabled by the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from reconciler.core.schedule import expressions as schedule
from reconciler.core.spec import ActiveWindow, CronSpec


@dataclass(frozen=True)
class Bounds:
    """``[start, end)`` in aware UTC; None where open."""

    start: datetime | None
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) \
            and (self.end is None or moment < self.end)


def parse_bound(value: object) -> date | datetime:
    """A bound's value (a YAML date/datetime or ISO text) as a date or naive datetime;
    ``ValueError`` with a specific message when it is neither."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("must not carry a time zone offset; it is read in the cron's "
                             "'timezone'")
        return value
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be a date (YYYY-MM-DD) or a date and time "
                         f"(YYYY-MM-DDTHH:MM[:SS]), got {type(value).__name__}")
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        if len(value) in (16, 19) and value[10] == "T":
            return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or a date and time "
                         "(YYYY-MM-DDTHH:MM[:SS])") from None
    raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or a date and time "
                     "(YYYY-MM-DDTHH:MM[:SS])")


def bound_text(value: date | datetime) -> str:
    """The canonical ISO text stored in ``ActiveWindow``."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


def _moment(value: date | datetime, zone: ZoneInfo, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        wall = value + timedelta(seconds=1) if end else value
    else:
        wall = datetime.combine(value + timedelta(days=1) if end else value, datetime.min.time())
    return wall.replace(tzinfo=zone).astimezone(UTC)


def bounds(window: ActiveWindow | None, timezone: str) -> Bounds:
    """The window as UTC moments (``Bounds(None, None)`` without a window)."""
    if window is None:
        return Bounds(None, None)
    zone = ZoneInfo(timezone)
    start = _moment(parse_bound(window.start), zone, end=False) if window.start else None
    end = _moment(parse_bound(window.until), zone, end=True) if window.until else None
    return Bounds(start, end)


def window_problem(window: ActiveWindow, timezone: str) -> str | None:
    """``until`` before ``from`` (nothing could ever run)."""
    found = bounds(window, timezone)
    if found.start is not None and found.end is not None and found.end <= found.start:
        return f"'until' ({window.until}) is before 'from' ({window.start}): nothing would run"
    return None


def describe_window(window: ActiveWindow) -> str:
    """``from 2026-12-01 until 2027-03-31``."""
    parts = []
    if window.start:
        parts.append(f"from {window.start}")
    if window.until:
        parts.append(f"until {window.until}")
    return " ".join(parts)


def outside_reason(spec: CronSpec, moment: datetime) -> str | None:
    """Why a fire at ``moment`` starts nothing; None inside the window (or without one)."""
    if spec.active is None or bounds(spec.active, spec.timezone).contains(moment):
        return None
    return f"outside the active window ({describe_window(spec.active)}, {spec.timezone})"


def spec_fire_times(spec: CronSpec, after: datetime, count: int,
                    anchor: datetime | None = None) -> list[datetime]:
    """The cron's next ``count`` fire times strictly after ``after`` inside its active
    window (all of them without one)."""
    window = bounds(spec.active, spec.timezone)
    if window.start is not None and after < window.start:
        after = window.start - timedelta(microseconds=1)
    times = schedule.next_fire_times(spec.schedule, spec.timezone, after, count, anchor=anchor)
    return [moment for moment in times if window.contains(moment)]


def next_boundary(specs, now: datetime) -> datetime | None:
    """The first moment after ``now`` at which an active window of one of ``specs`` starts or
    ends: what the plan of ``now`` holds until (a rule enabled or disabled then)."""
    moments = []
    for spec in specs:
        window = bounds(spec.active, spec.timezone)
        moments += [m for m in (window.start, window.end) if m is not None and m > now]
    return min(moments, default=None)
