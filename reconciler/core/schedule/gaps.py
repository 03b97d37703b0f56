"""The shortest gap between two fire times of a schedule (pure): what a retry's backoff and a
cron's catch-up window may not exceed, so that a late or retried run never reaches the next
scheduled one."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule.expressions import RateExpression

# Fire times looked at from a fixed start (results do not depend on when they are computed):
# four months of an hourly cron, every pattern of a minutely one.
SAMPLE_FIRES = 3000
SAMPLE_START = datetime(2026, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=1024)
def shortest_gap_s(expression: str, timezone: str = "UTC") -> int | None:
    """Seconds between the two closest consecutive fire times (a ``rate()``: its interval);
    None when it fires at most once in the sample (or the expression is invalid)."""
    try:
        parsed = schedule.parse(expression)
        if isinstance(parsed, RateExpression):
            times = schedule.next_fire_times(expression, timezone, SAMPLE_START, 2,
                                             anchor=SAMPLE_START)
        else:
            times = schedule.next_fire_times(expression, timezone, SAMPLE_START, SAMPLE_FIRES)
    except (schedule.ScheduleError, ValueError):
        return None
    gaps = [int((b - a).total_seconds()) for a, b in zip(times, times[1:], strict=False)]
    return min(gaps) if gaps else None
