"""Calendar exclusions and pause after failures: the pure parts, as tables of inputs and
outputs (calendar files, exclusion of a moment, the spec's hash, the pause decisions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reconciler.core.alerts import decide
from reconciler.core.alerts.model import KIND_PAUSED, AlertState
from reconciler.core.cronfile.calendars import excluded_by, load_calendar, without_excluded
from reconciler.core.cronfile.loader import is_cron_file, load_snapshot
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.executions.records import Execution
from reconciler.core.schedule.timeline import fleet_timeline
from reconciler.core.spec import ContainerSpec, CronSpec, Exclusion, Notifications

GOOD = b"timezone: Europe/Berlin\ndates:\n  - 2026-12-25\n  - 2026-12-31..2027-01-01\n"


@pytest.mark.parametrize("text, errors", [
    (GOOD, []),
    (b"dates: []\n", []),
    (b"timezone: Mars/Base\ndates: [2026-12-25]\n",
     ["cal.yaml:1:11: timezone: unknown time zone 'Mars/Base'"]),
    (b"dates:\n  - 2026-02-30\n",
     ["cal.yaml:2:5: dates[0]: not a date: '2026-02-30'"]),
    (b"dates:\n  - 2026-12-31..2026-12-01\n",
     ["cal.yaml:2:5: dates[0]: the range '2026-12-31..2026-12-01' ends before it starts"]),
    (b"dates:\n  - 2026-12-01..2026-12-32\n",
     ["cal.yaml:2:5: dates[0]: not a date: '2026-12-01..2026-12-32'"]),
    (b"dates:\n  - christmas\n",
     ["cal.yaml:2:5: dates[0]: must be a date YYYY-MM-DD or a range"]),
    (b"dates:\n  - 2026-12-01 10:00:00\n",
     ["cal.yaml:2:5: dates[0]: must be a date YYYY-MM-DD or a range"]),
    (b"timezone: UTC\n", ["cal.yaml:1:1: missing required field 'dates'"]),
    (b"dates: []\nholidays: 1\n", ["cal.yaml:2:1: holidays: unknown field 'holidays'"]),
    (b"dates: [2026-12-25\n", ["cal.yaml:2:1: invalid YAML"]),
    (b"- 2026-12-25\n", ["cal.yaml:1:1: a calendar file must be a mapping"]),
])
def test_calendar_files_and_their_errors(text, errors):
    calendar, problems = load_calendar("cal.yaml", text)
    assert len(problems) == len(errors), problems
    for problem, expected in zip(problems, errors, strict=True):
        assert str(problem).startswith(expected), str(problem)
    assert (calendar is None) == bool(errors)


def test_a_calendar_is_its_name_zone_and_sorted_ranges():
    calendar, _ = load_calendar("crons.d/calendars/holidays-de.yaml", GOOD)
    assert calendar.exclusion() == Exclusion(
        "holidays-de", "Europe/Berlin", (("2026-12-25", "2026-12-25"),
                                         ("2026-12-31", "2027-01-01")))


BERLIN = Exclusion("holidays-de", "Europe/Berlin", (("2026-12-25", "2026-12-25"),))
NY = Exclusion("us", "America/New_York", (("2026-07-03", "2026-07-04"),))


@pytest.mark.parametrize("moment, expected", [
    (datetime(2026, 12, 25, 9, 0, tzinfo=UTC), ("holidays-de", "2026-12-25")),
    # 23:30 UTC on the 24th is 00:30 on the 25th in Berlin
    (datetime(2026, 12, 24, 23, 30, tzinfo=UTC), ("holidays-de", "2026-12-25")),
    # 23:30 UTC on the 25th is the 26th in Berlin
    (datetime(2026, 12, 25, 23, 30, tzinfo=UTC), None),
    (datetime(2026, 7, 5, 3, 0, tzinfo=UTC), ("us", "2026-07-04")),   # 23:00 in New York
    (datetime(2026, 7, 5, 5, 0, tzinfo=UTC), None),
    (datetime(2026, 12, 25, 9, 0), ("holidays-de", "2026-12-25")),    # naive: UTC
])
def test_excluded_by_is_the_day_in_the_calendars_zone(moment, expected):
    assert excluded_by((BERLIN, NY), moment) == expected


def spec(**fields) -> CronSpec:
    return CronSpec(name="job", file="crons.d/job.yaml", schedule="cron(0 9 * * ? *)",
                    container=ContainerSpec(image="busybox"), **fields)


def test_exclusions_and_the_pause_travel_in_the_spec_and_leave_old_hashes_alone():
    plain = spec()
    assert "exclude" not in plain.to_dict() and "suspend_after_failures" not in plain.to_dict()
    full = spec(exclude=(BERLIN,), suspend_after_failures=3)
    assert CronSpec.from_dict(full.to_dict(), file=full.file) == full
    edited = spec(exclude=(replace(BERLIN, ranges=(("2026-12-26", "2026-12-26"),)),),
                  suspend_after_failures=3)
    assert len({plain.spec_hash(), full.spec_hash(), edited.spec_hash()}) == 3


def test_fire_times_leave_out_excluded_dates():
    times = [datetime(2026, 12, d, 9, tzinfo=UTC) for d in (24, 25, 26)]
    assert without_excluded(spec(exclude=(BERLIN,)), times) == [times[0], times[2]]
    timeline = fleet_timeline([spec(exclude=(BERLIN,))], datetime(2026, 12, 24, tzinfo=UTC),
                              datetime(2026, 12, 27, tzinfo=UTC))
    assert [f.at.day for f in timeline.fires] == [24, 26]


def snapshot(files: dict[str, str]) -> Snapshot:
    return Snapshot(commit=None, files={k: v.encode() for k, v in files.items()})


CRON = 'schedule: "cron(0 9 * * ? *)"\nexclude: [holidays-de]\ncontainer: {image: busybox}\n'


def test_the_loader_resolves_calendars_and_holds_back_a_cron_naming_a_missing_one():
    assert not is_cron_file("crons.d/calendars/holidays-de.yaml")
    result = load_snapshot(snapshot({"crons.d/a.yaml": CRON,
                                     "crons.d/b.yaml": CRON.replace("holidays-de", "nope"),
                                     "crons.d/calendars/holidays-de.yaml": GOOD.decode()}))
    assert [s.name for s in result.specs] == ["a"] and result.held_back == {"b"}
    assert result.specs[0].exclude[0].calendar == "holidays-de"
    [error] = result.diagnostics
    assert str(error) == ("crons.d/b.yaml:2:11: exclude[0]: no calendar 'nope': expected the "
                          "file crons.d/calendars/nope.yaml")


def test_an_invalid_calendar_holds_back_its_crons_only():
    result = load_snapshot(snapshot({
        "crons.d/a.yaml": CRON, "crons.d/c.yaml": CRON.replace("exclude: [holidays-de]\n", ""),
        "crons.d/calendars/holidays-de.yaml": "dates: [2026-13-01]\n"}))
    assert [s.name for s in result.specs] == ["c"] and result.held_back == {"a"}
    assert [f"{d.file}:{d.line}" for d in result.diagnostics] == [
        "crons.d/a.yaml:2", "crons.d/calendars/holidays-de.yaml:1"]


@pytest.mark.parametrize("value, message", [
    ("0", "suspend-after-failures: 0 is less than the minimum of 1"),
    ("101", "suspend-after-failures: 101 is greater than the maximum of 100"),
    ('"3"', "suspend-after-failures: must be an integer"),
])
def test_suspend_after_failures_is_1_to_100(value, message):
    text = f'schedule: "rate(1 hour)"\nsuspend-after-failures: {value}\ncontainer: {{image: x}}\n'
    result = load_snapshot(snapshot({"crons.d/a.yaml": text}))
    assert [str(d) for d in result.diagnostics][0].startswith(f"crons.d/a.yaml:2:25: {message}")


# -- the pause decisions ----------------------------------------------------------------------

def run(status: str, n: int = 0) -> Execution:
    return Execution(execution_id=f"e{n}", cron="job", scheduled_at=f"2026-12-01T1{n}:00:00Z",
                     status=status, stopped_at=f"2026-12-01T1{n}:00:30Z")


def fold(spec_: CronSpec, statuses: list[str], state: AlertState | None = None):
    state = state or AlertState(cron="job")
    notices = []
    for n, status in enumerate(statuses):
        decision = decide.evaluate(state, run(status, n), spec_, "crons")
        state, notices = decision.state, notices + list(decision.notices)
    return state, notices


@pytest.mark.parametrize("statuses, paused", [
    (["FAILED"], False),
    (["FAILED", "TIMEOUT"], True),
    (["FAILED_TO_START", "LOST"], True),
    (["FAILED", "SUCCESS", "FAILED"], False),
    (["FAILED", "SKIPPED", "FAILED"], True),
    (["FAILED", "MISSED", "FAILED"], True),       # MISSED neither counts nor breaks it
    (["MISSED", "MISSED", "MISSED"], False),
])
def test_the_nth_consecutive_failed_run_pauses(statuses, paused):
    limited = spec(suspend_after_failures=2)
    state, notices = fold(limited, statuses)
    assert state.paused_for(limited.spec_hash()) == paused
    assert notices == []                   # no notifiers: nothing sent
    if paused:
        assert state.paused_after == 2 and state.paused_at.startswith("2026-12-01T1")
        assert decide.describe_pause(state, limited).startswith(
            "PAUSED since 2026-Dec-01 1")
        assert decide.describe_pause(state, limited).endswith(
            "after 2 consecutive failures; resume: cronctl resume job")


def test_a_new_spec_ends_the_pause_and_resume_restarts_the_count():
    limited = spec(suspend_after_failures=2)
    state, _ = fold(limited, ["FAILED", "FAILED"])
    changed = replace(limited, schedule="cron(0 10 * * ? *)")
    assert not state.paused_for(changed.spec_hash())
    assert decide.describe_pause(state, changed) is None
    after, _ = fold(changed, ["FAILED"], state)    # counts afresh: 1 of 2
    assert after.run_failures == 1 and after.paused_at is None
    resumed = decide.resumed(state)
    assert (resumed.run_failures, resumed.paused_at) == (0, None)
    assert resumed.consecutive_failures == state.consecutive_failures


def test_a_cron_with_notifiers_is_told_once_that_it_paused():
    slack = spec(suspend_after_failures=2, notifications=Notifications(slack="#team"))
    state, notices = fold(slack, ["FAILED", "FAILED", "FAILED"])
    assert [(n.notifier, n.kind) for n in notices] == [
        ("slack", "failed"), ("slack", KIND_PAUSED)]
    assert "paused after 2 consecutive failures" in notices[1].summary
    key = "0123456789abcdef0123456789ABCDEF"
    pd = spec(suspend_after_failures=1, notifications=Notifications(pagerduty=key))
    state, notices = fold(pd, ["FAILED", "SUCCESS"])
    assert [(n.action, n.kind) for n in notices] == [
        ("trigger", "failed"), ("trigger", KIND_PAUSED), ("resolve", "failed"),
        ("resolve", KIND_PAUSED)]
    assert decide.counted(pd) and decide.counted(spec(suspend_after_failures=1))
    assert not decide.counted(spec())


def test_the_next_run_shown_is_the_first_not_excluded():
    from reconciler.core.status.render import next_run_of

    now = datetime(2026, 12, 24, 10, 0, tzinfo=UTC)
    assert next_run_of(spec(), now, None) == datetime(2026, 12, 25, 9, 0, tzinfo=UTC)
    assert next_run_of(spec(exclude=(BERLIN,)), now, None) == \
        datetime(2026, 12, 26, 9, 0, tzinfo=UTC)
