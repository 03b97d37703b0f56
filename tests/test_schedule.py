"""Schedule expressions: validation messages, AWS-recorded vectors, parsing, descriptions."""

from __future__ import annotations

import json

import pytest

from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule.expressions import CronExpression, RateExpression, ScheduleError
from reconciler.core.schedule.model import (
    DaysOfMonth,
    DaysOfWeek,
    LastDayOfMonth,
    LastWeekdayInMonth,
    LastWeekdayOfMonth,
    NearestWeekday,
    NthWeekdayInMonth,
)
from tests.support.fixtures import FIXTURES

FIXTURE = FIXTURES / "schedules" / "schedule_expressions.json"
EXAMPLES = json.loads(FIXTURE.read_text())["examples"]

VALID = [
    "cron(0 10 * * ? *)",
    "cron(*/10 * * * ? *)",
    "cron(0/15 * * * ? *)",
    "cron(1/10 * * * ? *)",
    "cron(5-30/5 * * * ? *)",
    "cron(0 0-23/6 * * ? *)",
    "cron(0 12 ? * MON-FRI *)",
    "cron(0 12 ? * 2-6 *)",
    "cron(0 12 ? * SUN,SAT *)",
    "cron(0 12 ? * FRI-MON *)",
    "cron(0/30 20-2 ? * MON-FRI *)",
    "cron(0 8 1 JAN,JUL ? *)",
    "cron(0 8 1 JAN-MAR ? *)",
    "cron(0 8 1 */3 ? *)",
    "cron(0 8 L * ? *)",
    "cron(0 8 LW * ? *)",
    "cron(0 8 15W * ? *)",
    "cron(0 8 1W * ? *)",
    "cron(0 8 ? * 5L *)",
    "cron(0 8 ? * FRIL *)",
    "cron(0 8 ? * L *)",
    "cron(0 8 ? * 3#2 *)",
    "cron(0 8 ? * MON#1 *)",
    "cron(0 8 ? * 7#5 *)",
    "cron(59 23 31 12 ? 2199)",
    "cron(0 0 1 1 ? 1970)",
    "cron(0 0 1 1 ? 2020-2030/2)",
    "cron(0 0 1 1 ? 2025,2027)",
    "cron(0 0 29 2 ? *)",
    "cron(0 0 1,15 * ? *)",
    "rate(1 minute)",
    "rate(2 minutes)",
    "rate(1 hour)",
    "rate(12 hours)",
    "rate(1 day)",
    "rate(7 days)",
    "rate(1440 minutes)",
]


@pytest.mark.parametrize("expression", VALID)
def test_valid_expressions_have_no_problems(expression: str) -> None:
    assert schedule.validate(expression) == []
    assert schedule.parse(expression).text == expression


INVALID = [
    # the cases the product spec names, each with its own message
    ("cron(0 12 * * ?)",
     "cron() needs 6 fields (minute hour day-of-month month day-of-week year), got 5"),
    ("cron(0 12 * * MON *)",
     "day-of-month (*) and day-of-week (MON) are both set; AWS requires ? in one of them"),
    ("cron(0 12 1 * 2 *)", "day-of-month (1) and day-of-week (2) are both set"),
    ("cron(0 12 ? * ? *)", "day-of-month and day-of-week are both ?; exactly one of them must be ?"),
    ("rate(1 minutes)", "rate(): value 1 needs the singular unit 'minute', not 'minutes'"),
    ("rate(0 minutes)", "rate(): value must be a positive whole number, got '0'"),
    ("rate(5 seconds)", "rate(): unit 'seconds' is not supported; use minute(s), hour(s) or day(s)"),
    ("cron(0 12 ? * 3#1,6#3 *)",
     "day-of-week: # can't be used in a list (3#1,6#3); AWS allows only one n#k expression"),
    ("cron(60 12 * * ? *)", "minute: 60 is out of range 0-59"),
    ("cron(0 12 * * ? 2300)", "year: 2300 is out of range 1970-2199"),
    # one-time at(yyyy-mm-ddThh:mm:ss), Scheduler's grammar exactly
    ("at(2030-02-30T00:00:00)", "at(): 2030-02-30 is not a date (the month has no day 30)"),
    ("at(2030-13-01T00:00:00)", "at(): month must be 01-12, got 13"),
    ("at(2030-01-01T24:00:00)", "at(): 24:00:00 is not a time of day"),
    ("at(2030-01-01T12:60:00)", "at(): 12:60:00 is not a time of day"),
    ("at(2030-01-01T12:00)", "at(): seconds are required (hh:mm:ss)"),
    ("at(2030-01-01)", "at(): a time is required after the date"),
    ("at(2030-01-01 12:00:00)", "at(): separate the date and the time with T, not a space"),
    ("at(2030-01-01T12:00:00Z)", "at(): no time zone offset or Z"),
    ("at(2030-01-01T12:00:00+01:00)", "at(): no time zone offset or Z"),
    ("at(2030-01-01T12:00:00.5)", "at(): fractions of a second are not allowed"),
    ("at(2300-01-01T12:00:00)", "at(): year must be 1970-2199, got 2300"),
    ("at(30-01-01T12:00:00)", "at(): '30-01-01T12:00:00' is not a date and time"),
    ("at( 2030-01-01T12:00:00 )", "at(): no spaces allowed directly inside the parentheses"),
    ("at()", "at() needs a date and time"),
    ("AT(2030-01-01T12:00:00)", "write at(...) in lower case, not AT(...)"),
    # garbage, empty, parentheses, whitespace
    ("", "schedule expression is empty"),
    ("   ", "schedule expression is empty"),
    ("every day", "schedule expression must be cron(...), rate(...) or at(...), got 'every day'"),
    ("*/5 * * * *", "schedule expression must be cron(...), rate(...) or at(...)"),
    ("cron 0 12 * * ? *", "cron needs parentheses, e.g. cron(0 12 * * ? *)"),
    ("rate 5 minutes", "rate needs parentheses, e.g. rate(5 minutes)"),
    ("cron(0 12 * * ? *", "cron( is missing its closing parenthesis"),
    ("cron(0 12 * * ? *) UTC", "cron(...): unexpected text after the closing parenthesis"),
    ("rate(5 minutes)x", "rate(...): unexpected text after the closing parenthesis"),
    ("at 2030-01-01", "at needs parentheses, e.g. at(2026-12-24T18:00:00)"),
    ("cronjob(0 12 * * ? *)", "unknown schedule type 'cronjob'"),
    ("Cron(0 12 * * ? *)", "write cron(...) in lower case, not Cron(...)"),
    ("RATE(5 minutes)", "write rate(...) in lower case"),
    ("every(5 minutes)", "unknown schedule type 'every'"),
    (" cron(0 12 * * ? *)", "schedule expression has leading or trailing whitespace"),
    ("cron(0 12 * * ? *)\n", "schedule expression has leading or trailing whitespace"),
    ("cron( 0 12 * * ? * )", "cron(): no spaces allowed directly inside the parentheses"),
    ("cron(0  12 * * ? *)", "cron(): fields must be separated by single spaces"),
    ("cron(0\t12 * * ? *)", "cron(): fields must be separated by single spaces"),
    ("rate(5  minutes)", "rate(): write a value and a unit separated by one space"),
    ("rate(5\tminutes)", "rate(): write a value and a unit separated by one space"),
    ("cron(0 12 * * ? * *)", "cron() needs 6 fields (minute hour day-of-month month day-of-week "
                             "year), got 7"),
    # field values
    ("cron(0 24 * * ? *)", "hour: 24 is out of range 0-23"),
    ("cron(0 12 0 * ? *)", "day-of-month: 0 is out of range 1-31"),
    ("cron(0 12 32 * ? *)", "day-of-month: 32 is out of range 1-31"),
    ("cron(0 12 * 13 ? *)", "month: 13 is out of range 1-12"),
    ("cron(0 12 ? * 0 *)", "day-of-week: 0 is out of range 1-7"),
    ("cron(0 12 ? * 8 *)", "day-of-week: 8 is out of range 1-7"),
    ("cron(0 12 * * ? 1969)", "year: 1969 is out of range 1970-2199"),
    ("cron(0 12 * JANUARY ? *)", "month: 'JANUARY' is not a valid value (expected 1-12 or JAN-DEC)"),
    ("cron(0 12 * jan ? *)", "month: names must be upper case (JAN), got 'jan'"),
    ("cron(0 12 ? * mon *)", "day-of-week: names must be upper case (MON), got 'mon'"),
    ("cron(0 12 ? * MON-XYZ *)", "day-of-week: 'XYZ' is not a valid value"),
    ("cron(0 12 * * ? 2030-2020)", "year: range '2030-2020' runs backwards"),
    ("cron(0,,30 12 * * ? *)", "minute: empty value in list '0,,30'"),
    ("cron(0 - * * ? *)", "hour: '(nothing)' is not a valid value"),
    ("cron(*/0 * * * ? *)", "minute: step 0 in '*/0' must be 1-59"),
    ("cron(*/60 * * * ? *)", "minute: step 60 in '*/60' must be 1-59"),
    ("cron(*/x * * * ? *)", "minute: step after / must be a whole number, got '*/x'"),
    ("cron(1.5 * * * ? *)", "minute: '1.5' is not a valid value (expected 0-59)"),
    # wildcards where AWS does not allow them
    ("cron(? 12 * * ? *)", "minute: ? is only allowed in day-of-month or day-of-week"),
    ("cron(0 12 ?,1 * ? *)", "day-of-month: ? must stand alone, got '?,1'"),
    ("cron(0 L * * ? *)", "hour: L is only allowed in day-of-month and day-of-week"),
    ("cron(0 12 * 5W ? *)", "month: W is only allowed in day-of-month"),
    ("cron(0 12 ? * 5W *)", "day-of-week: W is only allowed in day-of-month"),
    ("cron(0 12 3#2 * ? *)", "day-of-month: # is only allowed in day-of-week"),
    ("cron(0 12 ? * 3#6 *)", "day-of-week: the number after # must be 1-5, got 6"),
    ("cron(0 12 ? * 3#0 *)", "day-of-week: the number after # must be 1-5, got 0"),
    ("cron(0 12 ? * 9#2 *)", "day-of-week: 9 is out of range 1-7"),
    ("cron(0 12 ? * 3# *)", "day-of-week: '3#' is not a valid # expression"),
    ("cron(0 12 L,15 * ? *)", "day-of-month: L and W can't be used in a list (L,15)"),
    ("cron(0 12 1-15W * ? *)", "day-of-month: '1-15W' is not a valid use of L or W"),
    ("cron(0 12 32W * ? *)", "day-of-month: 32 is out of range 1-31"),
    ("cron(0 12 L-3 * ? *)", "day-of-month: offsets from the last day (L-3) are not supported"),
    ("cron(0 12 ? * 5L,6 *)", "day-of-week: L can't be combined with lists, ranges or steps"),
    ("cron(0 12 ? * 8L *)", "day-of-week: 8 is out of range 1-7"),
]


@pytest.mark.parametrize(("expression", "fragment"), INVALID)
def test_invalid_expressions_get_specific_messages(expression: str, fragment: str) -> None:
    problems = schedule.validate(expression)
    assert problems, expression
    assert any(fragment in p for p in problems), problems
    with pytest.raises(ScheduleError) as raised:
        schedule.parse(expression)
    assert str(raised.value) == problems[0]


def test_all_problems_are_reported_not_only_the_first() -> None:
    problems = schedule.validate("cron(60 24 32 13 ? 2300)")
    assert problems == [
        "minute: 60 is out of range 0-59",
        "hour: 24 is out of range 0-23",
        "month: 13 is out of range 1-12",
        "year: 2300 is out of range 1970-2199",
        "day-of-month: 32 is out of range 1-31",
    ]


def test_non_string_expression_is_rejected() -> None:
    assert schedule.validate(None) == ["schedule expression must be a string, got NoneType"]  # type: ignore[arg-type]


def _fixture_ids(example: dict) -> str:
    return repr(example["expression"])


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["valid"] is True
                                     and not e["expression"].startswith("at(")], ids=_fixture_ids)
def test_every_expression_aws_accepted_validates(example: dict) -> None:
    assert schedule.validate(example["expression"]) == []


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e["valid"] is False], ids=_fixture_ids)
def test_every_expression_aws_rejected_is_rejected(example: dict) -> None:
    assert schedule.validate(example["expression"]) != []


def test_aws_accepted_one_time_schedule_is_accepted() -> None:
    """AWS accepts an at() in the past; cronctl's refusal of a past time is the plan's and
    validate's (they know the time), not the grammar's."""
    accepted = [e["expression"] for e in EXAMPLES if e["expression"].startswith("at(")
                and e["valid"] is True]
    assert accepted == ["at(2022-12-31T23:59:59)"]
    assert schedule.validate(accepted[0]) == []


def test_docs_wrapping_hour_range_example_is_accepted() -> None:
    """The docs' ``20-2`` hours example (not AWS-tested) parses as a wrapping range."""
    [example] = [e for e in EXAMPLES if e["valid"] is None]
    parsed = schedule.parse(example["expression"])
    assert isinstance(parsed, CronExpression)
    assert parsed.hours == frozenset({20, 21, 22, 23, 0, 1, 2})


def test_fixture_covers_both_outcomes() -> None:
    assert sum(e["valid"] is True for e in EXAMPLES) >= 15
    assert sum(e["valid"] is False for e in EXAMPLES) >= 20


PARSED = [
    ("cron(*/15 9-17 * * ? *)", dict(minutes={0, 15, 30, 45}, hours=set(range(9, 18)),
                                     days=DaysOfMonth(frozenset(range(1, 32))))),
    ("cron(1/20 20-2/3 ? * MON-FRI *)", dict(minutes={1, 21, 41}, hours={20, 23, 2},
                                            days=DaysOfWeek(frozenset({2, 3, 4, 5, 6})))),
    ("cron(0 0 ? * FRI-MON *)", dict(days=DaysOfWeek(frozenset({6, 7, 1, 2})))),
    ("cron(0 0 1 NOV-FEB ? *)", dict(months={11, 12, 1, 2})),
    ("cron(0 0 1 */5 ? 2020-2030/4)", dict(months={1, 6, 11}, years={2020, 2024, 2028})),
    ("cron(0 0 L * ? *)", dict(days=LastDayOfMonth())),
    ("cron(0 0 LW * ? *)", dict(days=LastWeekdayOfMonth())),
    ("cron(0 0 15W * ? *)", dict(days=NearestWeekday(15))),
    ("cron(0 0 ? * 6L *)", dict(days=LastWeekdayInMonth(6))),
    ("cron(0 0 ? * L *)", dict(days=DaysOfWeek(frozenset({7})))),  # the week's last day
    ("cron(0 0 ? * TUE#2 *)", dict(days=NthWeekdayInMonth(3, 2))),
    ("cron(0 0 * * ? *)", dict(years=set(range(1970, 2200)), months=set(range(1, 13)))),
]


@pytest.mark.parametrize(("expression", "expected"), PARSED)
def test_parsed_model(expression: str, expected: dict) -> None:
    parsed = schedule.parse(expression)
    assert isinstance(parsed, CronExpression)
    for field, value in expected.items():
        actual = getattr(parsed, field)
        assert (set(actual) if isinstance(value, set) else actual) == value, field


def test_parsed_rate() -> None:
    parsed = schedule.parse("rate(90 minutes)")
    assert isinstance(parsed, RateExpression)
    assert (parsed.value, parsed.unit, parsed.interval.total_seconds()) == (90, "minute", 5400)
    assert schedule.parse("rate(1 day)").interval.total_seconds() == 86400


DESCRIPTIONS = [
    ("cron(*/10 * * * ? *)", "UTC", "every 10 minutes"),
    ("cron(0 12 * * ? *)", "UTC", "at 12:00 every day"),
    ("cron(15 10 ? * 6L 2019-2022)", "UTC",
     "at 10:15 on the last Friday of every month, 2019 to 2022"),
    ("rate(5 minutes)", "UTC", "every 5 minutes"),
    ("rate(1 hour)", "Europe/Berlin", "every hour"),
    ("rate(1 day)", "UTC", "every day"),
    ("cron(0 12 * * ? *)", "Europe/Berlin", "at 12:00 every day (Europe/Berlin)"),
    ("cron(5,35 14 * * ? *)", "UTC", "at 14:05 and 14:35 every day"),
    ("cron(0 18 ? * MON-FRI *)", "UTC", "at 18:00 Monday through Friday"),
    ("cron(0 8 1 * ? *)", "UTC", "at 08:00 on day 1 of every month"),
    ("cron(0/10 * ? * MON-FRI *)", "UTC", "every 10 minutes Monday through Friday"),
    ("cron(0/5 8-17 ? * MON-FRI *)", "America/New_York",
     "every 5 minutes between 08:00 and 17:55 Monday through Friday (America/New_York)"),
    ("cron(* * * * ? *)", "UTC", "every minute"),
    ("cron(15 * * * ? *)", "UTC", "at minute 15 of every hour"),
    ("cron(0 */2 * * ? *)", "UTC", "every 2 hours at minute 0"),
    ("cron(0 9 ? * 2#1 *)", "UTC", "at 09:00 on the first Monday of every month"),
    ("cron(0 0 L 2 ? *)", "UTC", "at 00:00 on the last day of the month in February"),
    ("cron(30 6 LW * ? 2027)", "UTC", "at 06:30 on the last weekday of every month, in 2027"),
    ("cron(0 9 15W * ? *)", "UTC", "at 09:00 on the weekday nearest day 15 of every month"),
    ("cron(0 9 ? * SUN,SAT *)", "UTC", "at 09:00 on Sundays and Saturdays"),
    ("cron(0 9 1,15 JUN-AUG ? *)", "UTC", "at 09:00 on days 1 and 15 of the month from June to August"),
    ("cron(0 12 1 1 ? */5)", "UTC", "at 12:00 on day 1 of the month in January, every 5 years from 1970"),
    ("cron(0 12 * * ? 2024/2)", "UTC", "at 12:00 every day, every 2 years from 2024"),
    ("cron(0 12 * * ? 2024-2030/3)", "UTC", "at 12:00 every day, every 3 years from 2024 to 2030"),
    ("cron(0 12 * * ? 2024,2026)", "UTC", "at 12:00 every day, in 2024 and 2026"),
]


@pytest.mark.parametrize(("expression", "timezone", "text"), DESCRIPTIONS)
def test_describe(expression: str, timezone: str, text: str) -> None:
    assert schedule.describe(expression, timezone) == text


def test_describe_rejects_invalid_expression_and_zone() -> None:
    with pytest.raises(ScheduleError, match="minute: 60 is out of range"):
        schedule.describe("cron(60 * * * ? *)")
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        schedule.describe("cron(0 12 * * ? *)", "Mars/Olympus")


@pytest.mark.parametrize(("timezone", "problems"), [
    ("UTC", []),
    ("Europe/Berlin", []),
    ("America/New_York", []),
    ("Mars/Olympus", ["unknown time zone 'Mars/Olympus' (expected an IANA name such as "
                      "Europe/Berlin)"]),
    ("../etc/passwd", ["unknown time zone '../etc/passwd' (expected an IANA name such as "
                       "Europe/Berlin)"]),
    ("", ["time zone must be an IANA name such as Europe/Berlin"]),
])
def test_validate_timezone(timezone: str, problems: list[str]) -> None:
    assert schedule.validate_timezone(timezone) == problems
