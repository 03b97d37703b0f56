"""The monitor's schedule against the schedule engine: cronsim (Healthchecks' own parser) over
the 5-field expression in its zone fires exactly when ``next_fire_times`` says the cron fires;
what cannot be expressed exactly is refused with a message naming the feature."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.monitors.desired import desired_monitor
from reconciler.core.monitors.schedule import MonitorRefused, monitor_timing, render
from reconciler.core.schedule.expressions import next_fire_times
from tests.support.specs import make_spec

FIRES = 50
STARTS = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 27, 12, tzinfo=UTC),
          datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2028, 2, 27, tzinfo=UTC))

EXACT = [
    ("cron(*/10 * * * ? *)", "UTC", "*/10 * * * *"),
    ("cron(0 5 * * ? *)", "UTC", "0 5 * * *"),
    ("cron(15 10 ? * MON-FRI *)", "Europe/Berlin", "15 10 * * 1-5"),
    ("cron(0 9 ? * 2,4,6 *)", "America/New_York", "0 9 * * 1,3,5"),
    ("cron(0 20-2 ? * FRI-MON *)", "UTC", "0 0-2,20-23 * * 0,1,5,6"),
    ("cron(5/15 1-3 * * ? *)", "Asia/Tokyo", "5/15 1-3 * * *"),
    ("cron(0 0 L * ? *)", "UTC", "0 0 L * *"),
    ("cron(30 1 LW * ? *)", "Europe/Berlin", "30 1 LW * *"),
    ("cron(0 12 ? * 6L *)", "America/New_York", "0 12 * * 5L"),
    ("cron(0 8 ? * 2#1 *)", "Australia/Sydney", "0 8 * * 1#1"),
    ("cron(0 8 ? * 1#5 *)", "UTC", "0 8 * * 0#5"),
    ("cron(0 0 1,15 JAN,JUL ? *)", "Europe/London", "0 0 1,15 1,7 *"),
    ("cron(0 4 1-31/2 * ? *)", "America/Sao_Paulo", "0 4 */2 * *"),
    ("cron(45 23 ? * SUN *)", "Pacific/Auckland", "45 23 * * 0"),
    ("cron(0 1 ? * * *)", "Europe/Berlin", "0 1 * * *"),
    ("cron(30 2 ? * * *)", "Asia/Kolkata", "30 2 * * *"),
    # a fixed time in the repeated hour: AWS and cronsim both fire once, at the first one
    ("cron(30 2 1-25 10 ? *)", "Europe/Berlin", "30 2 1-25 10 *"),
    ("cron(30 2 ? 11 * *)", "Europe/Berlin", "30 2 * 11 *"),
]


def cronsim_fires(expression: str, timezone: str, after: datetime, count: int) -> list:
    iterator = CronSim(expression, after.astimezone(ZoneInfo(timezone)))
    return [next(iterator).astimezone(UTC) for _ in range(count)]


@pytest.mark.parametrize(("aws", "timezone", "five"), EXACT)
def test_healthchecks_schedule_fires_exactly_when_the_cron_does(aws, timezone, five):
    timing = monitor_timing(aws, timezone, "healthchecks", 2026)
    assert (timing.schedule, timing.tz) == (five, timezone)
    for start in STARTS:
        assert cronsim_fires(five, timezone, start, FIRES) == \
            next_fire_times(aws, timezone, start, FIRES), (aws, timezone, start)


def test_a_fixed_time_in_the_repeated_hour_fires_once_on_both_sides():
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    assert [t.isoformat() for t in cronsim_fires("30 2 * * *", "Europe/Berlin", start, 2)] == \
        ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    assert next_fire_times("cron(30 2 * * ? *)", "Europe/Berlin", start, 1)[0] == \
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(("aws", "timezone", "feature"), [
    ("cron(30 2 * * ? *)", "Europe/Berlin", "2026-03-29 02:30 Europe/Berlin"),
    ("cron(*/10 * * * ? *)", "America/New_York", "daylight-saving change"),
    ("cron(0 * * * ? *)", "Europe/Berlin", "daylight-saving change"),
    ("cron(15 2 ? * SUN *)", "America/New_York", "skips"),
    ("cron(0 0 1 1 ? 2030)", "UTC", "year '2030'"),
    ("cron(0 0 15W * ? *)", "UTC", "15W (the weekday nearest day 15)"),
])
def test_what_healthchecks_would_read_otherwise_is_refused(aws, timezone, feature):
    with pytest.raises(MonitorRefused, match=feature.replace("(", r"\(").replace(")", r"\)")):
        monitor_timing(aws, timezone, "healthchecks", 2026)


def test_the_refusal_is_right_cronsim_really_disagrees_at_the_changeover():
    start = datetime(2026, 3, 28, tzinfo=UTC)
    aws = next_fire_times("cron(30 2 * * ? *)", "Europe/Berlin", start, 2)
    assert cronsim_fires("30 2 * * *", "Europe/Berlin", start, 2) != aws
    start = datetime(2026, 10, 24, 23, tzinfo=UTC)
    aws = next_fire_times("cron(*/30 * * * ? *)", "Europe/Berlin", start, 8)
    assert cronsim_fires("*/30 * * * *", "Europe/Berlin", start, 8) != aws


@pytest.mark.parametrize("aws", ["cron(0 0 L * ? *)", "cron(0 0 LW * ? *)",
                                 "cron(0 0 ? * 6L *)", "cron(0 0 ? * 2#1 *)"])
def test_cronitor_refuses_the_extensions_it_does_not_document(aws):
    with pytest.raises(MonitorRefused, match="Cronitor documents no such cron syntax"):
        monitor_timing(aws, "UTC", "cronitor", 2026)


def test_cronitor_gets_the_same_five_fields_and_rates_as_intervals():
    assert monitor_timing("cron(0 20-2 ? * FRI-MON *)", "UTC", "cronitor",
                          2026).schedule == "0 0-2,20-23 * * 0,1,5,6"
    assert monitor_timing("rate(1 hour)", "UTC", "cronitor").schedule == "every 1 hour"
    assert monitor_timing("rate(15 minutes)", "UTC", "cronitor").schedule == \
        "every 15 minutes"


def test_a_rate_is_a_period_never_a_round_time_schedule():
    timing = monitor_timing("rate(15 minutes)", "Europe/Berlin", "healthchecks")
    assert (timing.schedule, timing.period_s) == (None, 900)
    with pytest.raises(MonitorRefused, match="31536000"):
        monitor_timing("rate(400 days)", "UTC", "healthchecks")


def test_grace_covers_the_longest_run_at_healthchecks_and_is_clamped_and_said():
    spec = make_spec("job", notifications={"no_run_threshold_s": 30},
                     timeout_s=45)
    wanted = desired_monitor(spec, "ns", "healthchecks", 2026)
    assert wanted.fields.grace_s == 60
    assert any("minimum of 60 s" in note for note in wanted.notes)
    spec = make_spec("job", notifications={"no_run_threshold_s": 600,
                                           "ran_longer_than_threshold_s": 1800})
    wanted = desired_monitor(spec, "ns", "healthchecks", 2026)
    assert wanted.fields.as_dict() == {
        "name": "ns/job", "slug": "ns-job", "tags": "cronctl cronctl-ns-ns", "grace": 1800,
        "schedule": "*/5 * * * *", "tz": "UTC"}
    cronitor = desired_monitor(spec, "ns", "cronitor", 2026)
    assert cronitor.fields.as_dict() == {
        "type": "job", "key": "ns-job", "name": "ns/job", "tags": ["cronctl", "cronctl-ns:ns"],
        "schedule": "*/5 * * * *", "timezone": "UTC", "grace_seconds": 600,
        "assertions": ["metric.duration < 1800s"]}


MINUTES = st.frozensets(st.integers(0, 59), min_size=1, max_size=6)
HOURS = st.frozensets(st.integers(0, 23), min_size=1, max_size=4)
DAYS = st.frozensets(st.integers(1, 31), min_size=1, max_size=4)
WEEKDAYS = st.frozensets(st.integers(1, 7), min_size=1, max_size=3)
ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                         "Australia/Lord_Howe", "America/Santiago"])


def _aws_field(values) -> str:
    return ",".join(str(v) for v in sorted(values))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minutes=MINUTES, hours=HOURS, days=DAYS, weekdays=WEEKDAYS, by_weekday=st.booleans(),
       zone=ZONES, start=st.datetimes(datetime(2026, 1, 1), datetime(2030, 1, 1)))
def test_property_any_accepted_schedule_agrees_with_cronsim(minutes, hours, days, weekdays,
                                                            by_weekday, zone, start):
    dom, dow = ("?", _aws_field(weekdays)) if by_weekday else (_aws_field(days), "?")
    aws = f"cron({_aws_field(minutes)} {_aws_field(hours)} {dom} * {dow} *)"
    try:
        timing = monitor_timing(aws, zone, "healthchecks", 2026)
    except MonitorRefused:
        return
    after = start.replace(tzinfo=UTC)
    assert cronsim_fires(timing.schedule, zone, after, 20) == \
        next_fire_times(aws, zone, after, 20), (aws, zone, timing.schedule)


@given(st.frozensets(st.integers(0, 59), min_size=1))
def test_property_render_means_the_same_values(values):
    text = render(values, 0, 59)
    iterator = CronSim(f"{text} * * * *", datetime(2026, 1, 1))
    seen = {next(iterator).minute for _ in range(len(values))}
    assert seen == set(values)


def test_changeovers_of_a_zone_without_daylight_saving_are_none():
    assert monitor_timing("cron(*/10 * * * ? *)", "Asia/Tokyo", "healthchecks", 2026).schedule \
        == "*/10 * * * *"
