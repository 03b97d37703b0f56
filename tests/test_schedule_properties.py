"""next_fire_times against a brute-force reference that checks every wall-clock minute.

The reference is deliberately naive and shares no code with the implementation: each
generated expression comes with its own set of allowed values per field, computed here;
the reference walks UTC instants one step at a time, reads the zone's wall clock and fires
when every field matches. A repeated (autumn) wall time fires only on its first occurrence
(``fold == 0``); wall times skipped by a spring-forward jump never appear, which is the
"skip" policy; for "shift" the reference also fires at the first instant after a jump
that skipped a matching wall time.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.schedule import expressions as schedule

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "Africa/Cairo", "America/Santiago"]
MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# instants near DST changes in the zones above, to start searches close to them
TRANSITIONS = [datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 10, 27, 1, tzinfo=UTC),
               datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC),
               datetime(2024, 10, 5, 15, 30, tzinfo=UTC), datetime(2024, 4, 6, 15, tzinfo=UTC),
               datetime(2024, 4, 25, 22, tzinfo=UTC), datetime(2024, 10, 31, 21, tzinfo=UTC),
               datetime(2024, 9, 8, 4, tzinfo=UTC), datetime(2024, 4, 7, 3, tzinfo=UTC)]
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


def spell(value: int, names: list[str] | None, use_name: bool) -> str:
    return names[value - 1] if (names and use_name) else str(value)


@st.composite
def plain_fields(draw, low: int, high: int, names: list[str] | None = None,
                 wraps: bool = True) -> Field:
    """``*``, ``v``, ``a-b`` (wrapping), ``*/s``, ``v/s``, ``a-b/s`` or a list of terms."""
    width = high - low + 1
    everything = frozenset(range(low, high + 1))

    @st.composite
    def term(draw) -> Field:
        kind = draw(st.sampled_from(["value", "range", "star_step", "start_step", "range_step"]))
        use_name = draw(st.booleans())
        a = draw(st.integers(low, high))
        b = draw(st.integers(low, high) if wraps else st.integers(a, high))
        step = draw(st.integers(1, min(width - 1, 15) if width > 1 else 1))
        if kind == "value":
            return Field(spell(a, names, use_name), frozenset({a}))
        if kind == "star_step":
            return Field(f"*/{step}", frozenset(range(low, high + 1, step)))
        if kind == "start_step":
            return Field(f"{spell(a, names, use_name)}/{step}",
                         frozenset(range(a, high + 1, step)))
        length = (b - a) % width + 1  # positions covered by a-b, wrapping past the end
        every = step if kind == "range_step" else 1
        values = frozenset(low + (a - low + k) % width for k in range(0, length, every))
        text = f"{spell(a, names, use_name)}-{spell(b, names, use_name)}"
        return Field(text + (f"/{step}" if kind == "range_step" else ""), values)

    shape = draw(st.sampled_from(["star", "term", "term", "list"]))
    if shape == "star":
        return Field("*", everything)
    if shape == "term":
        return draw(term())
    parts = draw(st.lists(term(), min_size=2, max_size=3))
    return Field(",".join(p.text for p in parts), frozenset().union(*(p.values for p in parts)))


def aws_dow(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1


def last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


@dataclass(frozen=True)
class Case:
    expression: str
    matches: Callable[[datetime], bool]


@st.composite
def plain_cases(draw) -> Case:
    minute = draw(plain_fields(0, 59))
    hour = draw(st.one_of(st.just(Field("*", frozenset(range(24)))), plain_fields(0, 23)))
    month = draw(st.one_of(st.just(Field("*", frozenset(range(1, 13)))),
                           plain_fields(1, 12, MONTH_NAMES)))
    year = draw(st.sampled_from([Field("*", frozenset(range(1970, 2200))),
                                 Field("2020-2030", frozenset(range(2020, 2031))),
                                 Field("2024,2026", frozenset({2024, 2026})),
                                 Field("2021/3", frozenset(range(2021, 2200, 3)))]))
    by_week = draw(st.booleans())
    if by_week:
        dow = draw(plain_fields(1, 7, DAY_NAMES))
        dom = Field("?", frozenset())
        day_ok = lambda d: aws_dow(d) in dow.values  # noqa: E731
    else:
        dom = draw(plain_fields(1, 31))
        dow = Field("?", frozenset())
        day_ok = lambda d: d.day in dom.values  # noqa: E731

    def matches(wall: datetime) -> bool:
        return (wall.minute in minute.values and wall.hour in hour.values
                and wall.month in month.values and wall.year in year.values
                and day_ok(wall.date()))

    text = f"cron({minute.text} {hour.text} {dom.text} {month.text} {dow.text} {year.text})"
    return Case(text, matches)


def nearest_weekday(day: date, n: int) -> bool:
    if n > last_day(day):
        return False
    weekdays = [d for d in range(1, last_day(day) + 1)
                if date(day.year, day.month, d).weekday() < 5]
    return day.day == min(weekdays, key=lambda d: abs(d - n))


@st.composite
def special_cases(draw) -> Case:
    """L, LW, nW, nL and n#k with quarter-hour minutes (so 15-minute steps are exact)."""
    minutes = draw(st.sets(st.sampled_from([0, 15, 30, 45]), min_size=1, max_size=2))
    hours = draw(st.sets(st.integers(0, 23), min_size=1, max_size=3))
    kind = draw(st.sampled_from(["L", "LW", "W", "nL", "#", "dow L"]))
    n = draw(st.integers(1, 31))
    weekday = draw(st.integers(1, 7))
    nth = draw(st.integers(1, 5))
    dom, dow = "?", "?"
    if kind == "L":
        dom, day_ok = "L", lambda d: d.day == last_day(d)
    elif kind == "LW":
        dom = "LW"
        day_ok = lambda d: d.weekday() < 5 and all(  # noqa: E731
            date(d.year, d.month, later).weekday() >= 5
            for later in range(d.day + 1, last_day(d) + 1))
    elif kind == "W":
        dom, day_ok = f"{n}W", lambda d: nearest_weekday(d, n)
    elif kind == "dow L":  # the last day of the week: every Saturday
        dow, day_ok = "L", lambda d: aws_dow(d) == 7  # noqa: E731
    elif kind == "nL":
        dow = f"{weekday}L"
        day_ok = lambda d: aws_dow(d) == weekday and d.day + 7 > last_day(d)  # noqa: E731
    else:
        dow = f"{weekday}#{nth}"
        day_ok = lambda d: aws_dow(d) == weekday and (d.day - 1) // 7 + 1 == nth  # noqa: E731

    def matches(wall: datetime) -> bool:
        return wall.minute in minutes and wall.hour in hours and day_ok(wall.date())

    minute_text = ",".join(str(m) for m in sorted(minutes))
    hour_text = ",".join(str(h) for h in sorted(hours))
    return Case(f"cron({minute_text} {hour_text} {dom} * {dow} *)", matches)


def reference(case: Case, zone: ZoneInfo, after: datetime, window: timedelta,
              step: timedelta, on_gap: str) -> list[datetime]:
    """Fire times in (after, after + window], by checking every ``step`` of UTC time."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    instant = after - (after - epoch) % step + step
    end = after + window
    previous_wall = (instant - step).astimezone(zone).replace(tzinfo=None)
    found: list[datetime] = []
    while instant <= end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if on_gap == "shift" and wall - previous_wall > step:
            skipped = previous_wall + step
            while skipped < wall and not case.matches(skipped):
                skipped += step
            if skipped < wall:
                found.append(instant)
        if local.fold == 0 and case.matches(wall) and (not found or found[-1] != instant):
            found.append(instant)
        previous_wall = wall
        instant += step
    return found


starts = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31),
                 timezones=st.just(UTC)),
    st.builds(lambda t, minutes, seconds: t + timedelta(minutes=minutes, seconds=seconds),
              st.sampled_from(TRANSITIONS), st.integers(-36 * 60, 12 * 60), st.integers(0, 59)),
)


def check(case: Case, zone_name: str, after: datetime, on_gap: str, window: timedelta,
          step: timedelta) -> None:
    expected = reference(case, ZoneInfo(zone_name), after, window, step, on_gap)
    actual = schedule.next_fire_times(case.expression, zone_name, after, len(expected) + 1,
                                      on_gap=on_gap)
    assert actual == sorted(set(actual)), "fire times must strictly increase"
    assert [t for t in actual if t <= after + window] == expected, case.expression
    assert len(actual) >= len(expected)


@PROPERTY_SETTINGS
@given(case=plain_cases(), zone_name=st.sampled_from(ZONES), after=starts,
       on_gap=st.sampled_from(["skip", "shift"]))
def test_plain_expressions_match_minute_by_minute_reference(case: Case, zone_name: str,
                                                            after: datetime, on_gap: str) -> None:
    assert schedule.validate(case.expression) == []
    check(case, zone_name, after, on_gap, window=timedelta(days=2), step=timedelta(minutes=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=special_cases(), zone_name=st.sampled_from(ZONES), after=starts,
       on_gap=st.sampled_from(["skip", "shift"]))
def test_l_w_hash_expressions_match_reference(case: Case, zone_name: str, after: datetime,
                                              on_gap: str) -> None:
    assert schedule.validate(case.expression) == []
    check(case, zone_name, after, on_gap, window=timedelta(days=70), step=timedelta(minutes=15))
