"""Next fire times: tables for L, W, LW, #, year bounds, short months, leap days, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule.expressions import ScheduleError


def utc(text: str) -> datetime:
    """'2024-03-10 07:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, after: str, count: int, zone: str = "UTC", **options) -> list[str]:
    times = schedule.next_fire_times(expression, zone, utc(after), count, **options)
    assert all(t.tzinfo is UTC for t in times)
    return [t.strftime("%Y-%m-%d %H:%M") for t in times]


CASES = [
    # (expression, zone, after (UTC), count, expected fire times (UTC))
    ("cron(0 12 * * ? *)", "UTC", "2024-05-01 12:00", 2,
     ["2024-05-02 12:00", "2024-05-03 12:00"]),  # strictly after
    ("cron(0 12 * * ? *)", "UTC", "2024-05-01 11:59:59", 1, ["2024-05-01 12:00"]),
    ("cron(*/20 * * * ? *)", "UTC", "2024-05-01 23:30", 3,
     ["2024-05-01 23:40", "2024-05-02 00:00", "2024-05-02 00:20"]),
    ("cron(0 18 ? * MON-FRI *)", "UTC", "2024-05-03 18:00", 2,   # Fri -> Mon
     ["2024-05-06 18:00", "2024-05-07 18:00"]),
    # L: last day of month, incl. leap February
    ("cron(0 12 L * ? *)", "UTC", "2024-01-15 00:00", 4,
     ["2024-01-31 12:00", "2024-02-29 12:00", "2024-03-31 12:00", "2024-04-30 12:00"]),
    ("cron(0 12 L 2 ? *)", "UTC", "2023-01-01 00:00", 2, ["2023-02-28 12:00", "2024-02-29 12:00"]),
    # W: nearest weekday in the same month
    ("cron(0 9 1W * ? 2022)", "UTC", "2021-12-31 00:00", 1, ["2022-01-03 09:00"]),  # Sat 1st
    ("cron(0 9 1W * ? *)", "UTC", "2023-01-01 00:00", 1, ["2023-01-02 09:00"]),  # Sun 1st
    ("cron(0 9 1W 4,7 ? 2023)", "UTC", "2023-01-01 00:00", 2,
     ["2023-04-03 09:00", "2023-07-03 09:00"]),  # both Saturdays
    ("cron(0 9 15W 7 ? *)", "UTC", "2023-06-01 00:00", 1, ["2023-07-14 09:00"]),  # Sat -> Fri
    ("cron(0 9 15W 1 ? *)", "UTC", "2023-01-01 00:00", 1, ["2023-01-16 09:00"]),  # Sun -> Mon
    ("cron(0 9 31W * ? *)", "UTC", "2023-10-01 00:00", 3,  # skips November; Sun 31st -> Fri
     ["2023-10-31 09:00", "2023-12-29 09:00", "2024-01-31 09:00"]),
    ("cron(0 9 30W 9 ? *)", "UTC", "2023-01-01 00:00", 1, ["2023-09-29 09:00"]),  # Sat 30th
    ("cron(0 9 15W * ? *)", "UTC", "2024-05-15 08:00", 1, ["2024-05-15 09:00"]),  # a Wednesday
    # LW: last weekday of the month
    ("cron(0 17 LW * ? *)", "UTC", "2023-09-01 00:00", 4,
     ["2023-09-29 17:00", "2023-10-31 17:00", "2023-11-30 17:00", "2023-12-29 17:00"]),
    ("cron(0 17 LW 2,3 ? 2024)", "UTC", "2024-01-01 00:00", 2,
     ["2024-02-29 17:00", "2024-03-29 17:00"]),
    # #: n-th weekday; months without a fifth Monday are skipped
    ("cron(0 10 ? * 3#2 *)", "UTC", "2024-01-01 00:00", 3,
     ["2024-01-09 10:00", "2024-02-13 10:00", "2024-03-12 10:00"]),
    ("cron(0 10 ? * MON#5 *)", "UTC", "2024-01-01 00:00", 3,
     ["2024-01-29 10:00", "2024-04-29 10:00", "2024-07-29 10:00"]),
    ("cron(0 10 ? * 1#1 *)", "UTC", "2024-09-01 10:00", 2,  # Sunday 1st is itself the first
     ["2024-10-06 10:00", "2024-11-03 10:00"]),
    # nL: last given weekday; year-bounded: fewer than count when the schedule ends
    ("cron(15 10 ? * 6L 2019-2022)", "UTC", "2019-01-01 00:00", 2,
     ["2019-01-25 10:15", "2019-02-22 10:15"]),
    ("cron(15 10 ? * 6L 2019-2022)", "UTC", "2022-11-01 00:00", 5,
     ["2022-11-25 10:15", "2022-12-30 10:15"]),
    ("cron(15 10 ? * 6L 2019-2022)", "UTC", "2023-01-01 00:00", 5, []),
    # L alone in day-of-week is "the last day of the week" (AWS docs): every Saturday
    ("cron(0 0 ? * L *)", "UTC", "2024-06-01 00:00", 3,
     ["2024-06-08 00:00", "2024-06-15 00:00", "2024-06-22 00:00"]),
    ("cron(0 0 1 1 ? 2030)", "UTC", "2029-06-01 00:00", 3, ["2030-01-01 00:00"]),
    ("cron(0 0 1 1 ? 2020-2030/5)", "UTC", "2020-01-01 00:00", 5,
     ["2025-01-01 00:00", "2030-01-01 00:00"]),
    # 31st skips short months; 29 February only in leap years (2100 is not one)
    ("cron(0 0 31 * ? *)", "UTC", "2024-01-01 00:00", 7,
     ["2024-01-31 00:00", "2024-03-31 00:00", "2024-05-31 00:00", "2024-07-31 00:00",
      "2024-08-31 00:00", "2024-10-31 00:00", "2024-12-31 00:00"]),
    ("cron(0 0 29 2 ? *)", "UTC", "2025-01-01 00:00", 3,
     ["2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"]),
    ("cron(0 0 29 FEB ? *)", "UTC", "2096-03-01 00:00", 1, ["2104-02-29 00:00"]),
    ("cron(0 0 29 2 ? *)", "UTC", "2196-03-01 00:00", 3, []),  # 2200 is beyond AWS's range
    ("cron(0 0 30 2 ? *)", "UTC", "2024-01-01 00:00", 1, []),  # never: ends, does not loop
    ("cron(0 0 31 4,6,9,11 ? *)", "UTC", "1970-01-01 00:00", 1, []),
    ("cron(0 0 ? 2 2#5 *)", "UTC", "2024-01-01 00:00", 2, ["2044-02-29 00:00", "2072-02-29 00:00"]),
    # wrapping hour range from the AWS docs; each fire also needs a Monday-Friday day
    ("cron(0/30 20-2 ? * MON-FRI *)", "UTC", "2024-03-08 22:59", 5,
     ["2024-03-08 23:00", "2024-03-08 23:30", "2024-03-11 00:00", "2024-03-11 00:30",
      "2024-03-11 01:00"]),
    # evaluated in the zone: 09:00 Berlin is 08:00 UTC in winter, 07:00 in summer
    ("cron(0 9 ? * MON *)", "Europe/Berlin", "2024-03-20 00:00", 2,
     ["2024-03-25 08:00", "2024-04-01 07:00"]),
    ("cron(0 9 ? * MON *)", "Europe/Berlin", "2024-03-15 00:00", 1, ["2024-03-18 08:00"]),
    # the zone decides the day: 23:30 New York on the 31st is 04:30 UTC on the 1st
    ("cron(30 23 L * ? *)", "America/New_York", "2024-01-01 05:00", 2,
     ["2024-02-01 04:30", "2024-03-01 04:30"]),
]


@pytest.mark.parametrize(("expression", "zone", "after", "count", "expected"), CASES)
def test_fire_times(expression: str, zone: str, after: str, count: int,
                    expected: list[str]) -> None:
    assert fires(expression, after, count, zone) == expected


DST_CASES = [
    # Europe/Berlin spring: 2024-03-31 02:00 CET -> 03:00 CEST; 02:30 does not exist
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2024-03-29 12:00", 3, "skip",
     ["2024-03-30 01:30", "2024-04-01 00:30", "2024-04-02 00:30"]),
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2024-03-29 12:00", 3, "shift",
     ["2024-03-30 01:30", "2024-03-31 01:00", "2024-04-01 00:30"]),
    # Europe/Berlin autumn: 2024-10-27 03:00 CEST -> 02:00 CET; 02:30 fires once (CEST)
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2024-10-25 12:00", 3, "skip",
     ["2024-10-26 00:30", "2024-10-27 00:30", "2024-10-28 01:30"]),
    ("cron(0/30 * * * ? *)", "Europe/Berlin", "2024-10-27 00:00", 3, "skip",
     ["2024-10-27 00:30", "2024-10-27 02:00", "2024-10-27 02:30"]),
    # America/New_York spring: 2024-03-10 02:00 EST -> 03:00 EDT
    ("cron(30 2 * * ? *)", "America/New_York", "2024-03-09 00:00", 3, "skip",
     ["2024-03-09 07:30", "2024-03-11 06:30", "2024-03-12 06:30"]),
    ("cron(30 2 * * ? *)", "America/New_York", "2024-03-09 00:00", 3, "shift",
     ["2024-03-09 07:30", "2024-03-10 07:00", "2024-03-11 06:30"]),
    ("cron(*/30 * * * ? *)", "America/New_York", "2024-03-10 06:00", 3, "skip",
     ["2024-03-10 06:30", "2024-03-10 07:00", "2024-03-10 07:30"]),
    ("cron(*/30 * * * ? *)", "America/New_York", "2024-03-10 06:00", 3, "shift",
     ["2024-03-10 06:30", "2024-03-10 07:00", "2024-03-10 07:30"]),  # gap fires merge at 03:00
    # America/New_York autumn: 2024-11-03 02:00 EDT -> 01:00 EST; 01:30 fires once (EDT)
    ("cron(30 1 * * ? *)", "America/New_York", "2024-11-02 00:00", 3, "skip",
     ["2024-11-02 05:30", "2024-11-03 05:30", "2024-11-04 06:30"]),
    ("cron(0 * * * ? *)", "America/New_York", "2024-11-03 04:30", 3, "skip",
     ["2024-11-03 05:00", "2024-11-03 07:00", "2024-11-03 08:00"]),  # 01:00 EST not repeated
    # a gap at midnight (Africa/Cairo 2024-04-26 00:00 -> 01:00) does not lose the whole day
    ("cron(0 0 * * ? *)", "Africa/Cairo", "2024-04-24 12:00", 2, "skip",
     ["2024-04-24 22:00", "2024-04-26 21:00"]),
    ("cron(0 */2 * * ? *)", "Africa/Cairo", "2024-04-25 20:30", 2, "skip",
     ["2024-04-25 23:00", "2024-04-26 01:00"]),
    ("cron(0 0 * * ? *)", "Africa/Cairo", "2024-04-24 12:00", 3, "shift",
     ["2024-04-24 22:00", "2024-04-25 22:00", "2024-04-26 21:00"]),
    # a half-hour DST change (Australia/Lord_Howe 2024-10-06 02:00 -> 02:30)
    ("cron(15 2 * * ? *)", "Australia/Lord_Howe", "2024-10-04 00:00", 2, "skip",
     ["2024-10-04 15:45", "2024-10-06 15:15"]),
    ("cron(15 2 * * ? *)", "Australia/Lord_Howe", "2024-10-04 00:00", 2, "shift",
     ["2024-10-04 15:45", "2024-10-05 15:30"]),
]


@pytest.mark.parametrize(("expression", "zone", "after", "count", "on_gap", "expected"),
                         DST_CASES)
def test_fire_times_across_dst(expression: str, zone: str, after: str, count: int,
                               on_gap: str, expected: list[str]) -> None:
    assert fires(expression, after, count, zone, on_gap=on_gap) == expected


RATE_CASES = [
    # (expression, after, anchor, count, expected)
    ("rate(5 minutes)", "2024-05-01 10:00:30", None, 3,
     ["2024-05-01 10:05", "2024-05-01 10:10", "2024-05-01 10:15"]),
    ("rate(5 minutes)", "2024-05-01 10:00:30", "2024-05-01 09:58", 2,
     ["2024-05-01 10:03", "2024-05-01 10:08"]),
    ("rate(5 minutes)", "2024-05-01 10:03", "2024-05-01 09:58", 1, ["2024-05-01 10:08"]),
    ("rate(1 hour)", "2024-05-01 10:00", "2024-05-01 11:00", 2,
     ["2024-05-01 11:00", "2024-05-01 12:00"]),  # the start itself fires when still ahead
    ("rate(1 day)", "2024-03-09 12:00", "2024-03-01 12:00", 2,
     ["2024-03-10 12:00", "2024-03-11 12:00"]),  # 24-hour days whatever DST does
]


@pytest.mark.parametrize(("expression", "after", "anchor", "count", "expected"), RATE_CASES)
def test_rate_fire_times(expression: str, after: str, anchor: str | None, count: int,
                         expected: list[str]) -> None:
    anchor_time = utc(anchor) if anchor else None
    for zone in ("UTC", "America/New_York"):
        assert fires(expression, after, count, zone, anchor=anchor_time) == expected


def test_after_in_another_offset_is_the_same_instant() -> None:
    after = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))  # 12:00 UTC
    assert schedule.next_fire_times("cron(0 12 * * ? *)", "UTC", after, 1) == [
        utc("2024-05-02 12:00")]


def test_count_zero_gives_nothing() -> None:
    assert schedule.next_fire_times("cron(0 12 * * ? *)", "UTC", utc("2024-05-01 00:00"), 0) == []


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: schedule.next_fire_times("cron(0 12 * * ? *)", "UTC", datetime(2024, 1, 1), 1),
     ValueError, "after must be a timezone-aware datetime"),
    (lambda: schedule.next_fire_times("rate(5 minutes)", "UTC", utc("2024-01-01 00:00"), 1,
                                      anchor=datetime(2024, 1, 1)),
     ValueError, "anchor must be a timezone-aware datetime"),
    (lambda: schedule.next_fire_times("cron(0 12 * * ? *)", "UTC", utc("2024-01-01 00:00"), -1),
     ValueError, "count must be zero or more, got -1"),
    (lambda: schedule.next_fire_times("cron(0 12 * * *)", "UTC", utc("2024-01-01 00:00"), 1),
     ScheduleError, r"cron\(\) needs 6 fields"),
    (lambda: schedule.next_fire_times("cron(0 12 * * ? *)", "Nowhere/City",
                                      utc("2024-01-01 00:00"), 1),
     ScheduleError, "unknown time zone 'Nowhere/City'"),
    (lambda: schedule.next_fire_times("cron(0 12 * * ? *)", "UTC", utc("2024-01-01 00:00"), 1,
                                      on_gap="later"),
     ValueError, "on_gap must be one of"),
])
def test_bad_arguments_are_rejected(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_far_future_schedules_end_at_2199() -> None:
    times = schedule.next_fire_times("cron(0 0 1 1 ? *)", "UTC", utc("2195-06-01 00:00"), 10)
    assert [t.year for t in times] == [2196, 2197, 2198, 2199]


def test_huge_rate_does_not_overflow() -> None:
    assert schedule.next_fire_times("rate(99999999999999 days)", "UTC",
                                    utc("2024-01-01 00:00"), 2) == []
