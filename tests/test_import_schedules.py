"""5-field cron -> AWS cron(): exact conversions, refusals, and equal fire times (cronsim)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from reconciler.core.importers.cron5 import every_to_rate, expand_macro, to_aws
from reconciler.core.importers.model import Refusal
from reconciler.core.importers.verify import fire_time_difference
from reconciler.core.schedule.expressions import next_fire_times

START = datetime(2026, 1, 15, 10, 7, tzinfo=UTC)

CONVERSIONS = [
    ("*/5 * * * *", "cron(*/5 * * * ? *)"),
    ("0 9 * * 1-5", "cron(0 9 ? * 2-6 *)"),
    ("0 0 * * 0", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 7", "cron(0 0 ? * 1 *)"),
    ("0 0 * * 5-7", "cron(0 0 ? * 1,6-7 *)"),
    ("0 0 * * */2", "cron(0 0 ? * 1,3,5,7 *)"),
    ("0 0 * * 0,6", "cron(0 0 ? * 1,7 *)"),
    ("0 12 * * MON-FRI", "cron(0 12 ? * MON-FRI *)"),
    ("0 12 * * sun", "cron(0 12 ? * SUN *)"),
    ("30 8 1 * *", "cron(30 8 1 * ? *)"),
    ("15 10 * JAN,jul *", "cron(15 10 * JAN,JUL ? *)"),
    ("0 0 1-31 * 1", "cron(0 0 * * ? *)"),
    ("0 0 * * 5#2", "cron(0 0 ? * 6#2 *)"),
    ("0 0 * * 5L", "cron(0 0 ? * 6L *)"),
    ("0 18 L * *", "cron(0 18 L * ? *)"),
    ("5/10 1-23/2 */3 * *", "cron(5/10 1-23/2 */3 * ? *)"),
    ("0,30 8-18 * 3-10 *", "cron(0,30 8-18 * 3-10 ? *)"),
    ("0 6 ? * 1", "cron(0 6 ? * 2 *)"),
    ("@yearly", "cron(0 0 1 1 ? *)"),
    ("@annually", "cron(0 0 1 1 ? *)"),
    ("@monthly", "cron(0 0 1 * ? *)"),
    ("@weekly", "cron(0 0 ? * 1 *)"),
    ("@daily", "cron(0 0 * * ? *)"),
    ("@midnight", "cron(0 0 * * ? *)"),
    ("@hourly", "cron(0 * * * ? *)"),
    ("@every 5m", "rate(5 minutes)"),
    ("@every 1m", "rate(1 minute)"),
    ("@every 1h30m", "rate(90 minutes)"),
    ("@every 2h", "rate(2 hours)"),
    ("@every 24h", "rate(1 day)"),
]


@pytest.mark.parametrize(("source", "expected"), CONVERSIONS)
def test_conversion_is_exact(source, expected):
    assert to_aws(source) == expected


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("source", [s for s, e in CONVERSIONS if e.startswith("cron(")])
def test_next_100_fire_times_equal_cronsim(source, zone):
    aws = to_aws(source)
    tz = ZoneInfo(zone)
    fields = expand_macro(source).replace("?", "*")
    reference = CronSim(fields, START.astimezone(tz))
    expected = [next(reference).astimezone(UTC) for _ in range(100)]
    if any(_in_gap(moment, tz) for moment in expected):
        pytest.skip("a daylight-saving gap: covered by test_a_dst_gap_is_refused")
    assert next_fire_times(aws, zone, START, 100) == expected


def _in_gap(moment: datetime, tz: ZoneInfo) -> bool:
    local = moment.astimezone(tz).replace(tzinfo=None)
    return local.replace(tzinfo=tz).astimezone(UTC) != moment or local.minute != \
        local.replace(tzinfo=tz).minute


@pytest.mark.parametrize(("source", "words"), [
    ("0 6 1 * 1", "days matching either"),
    ("0 6 */2 * 1", "allows only one of them"),
    ("@every 90s", "whole minutes"),
    ("@every 30s", "whole minutes"),
    ("@every soon", "not a duration"),
    ("@reboot", "@reboot"),
    ("0 0 * *", "has 4 fields"),
    ("0 0 * * 1 2026", "has 6 fields"),
    ("61 * * * *", "outside 0-59"),
    ("0 0 * * 8", "outside 0-7"),
    ("0 0 15W * *", "not a number"),
    ("0 0 * * 5-1", "runs backwards"),
])
def test_what_has_no_faithful_aws_equivalent_is_refused(source, words):
    with pytest.raises(Refusal) as refused:
        to_aws(source)
    assert refused.value.field.startswith("schedule")
    assert words in refused.value.reason


def test_a_dst_gap_is_refused_with_the_first_difference():
    # 02:30 does not exist in Berlin on 2026-03-29: standard cron runs it at 03:00, AWS skips.
    start = datetime(2026, 3, 1, tzinfo=UTC)
    difference = fire_time_difference("30 2 * * *", "Europe/Berlin", to_aws("30 2 * * *"), start)
    assert difference is not None
    assert "run 29 is at 2026-03-29 01:00 UTC in the source" in difference
    assert fire_time_difference("30 2 * * *", "UTC", to_aws("30 2 * * *"), start) is None


def test_a_question_mark_source_is_compared_as_a_star():
    assert fire_time_difference("0 6 ? * 1", "UTC", "cron(0 6 ? * 2 *)", START) is None
    assert "run 1" in fire_time_difference("0 6 ? * 1", "UTC", "cron(0 6 ? * 3 *)", START)


def test_every_is_whole_minutes_in_the_largest_unit():
    assert every_to_rate("45m") == "rate(45 minutes)"
    assert every_to_rate("3h") == "rate(3 hours)"
    assert every_to_rate("48h") == "rate(2 days)"
    assert every_to_rate("1h0m0s") == "rate(1 hour)"
