"""Rendering of `status` and `list` (pure): the design's exact text shape, and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core.executions.records import Execution
from reconciler.core.spec import CronSpec
from reconciler.core.status import render
from tests.support.specs import make_spec

DESIGN_EXAMPLE = """\
Name     = my-cron-job
Status   = SUCCESS
Schedule = cron(*/5 * * * ? *)
Next Run = 2018-Feb-26 13:55:00 UTC

Last Executions:
ID                  Started At                Duration  Status   Exit Code
ce5a1529-6aa5-4...  2018-Feb-26 13:50:03 UTC  4s        SUCCESS  0
"""


def run(eid="ce5a1529-6aa5-4f1e-9c1a-3b2d8d1e0f00", started="2018-02-26T13:50:03.000Z",
        stopped="2018-02-26T13:50:07.000Z", status="SUCCESS", exit_code=0,
        scheduled_at="2018-02-26T13:50:00.000Z", **kw) -> Execution:
    return Execution(execution_id=eid, cron="my-cron-job", scheduled_at=scheduled_at,
                     status=status, started_at=started, stopped_at=stopped, exit_code=exit_code,
                     **kw)


def test_status_text_has_the_design_shape():
    view = render.CronStatus(name="my-cron-job", schedule="cron(*/5 * * * ? *)", suspended=False,
                             next_run=datetime(2018, 2, 26, 13, 55, tzinfo=UTC),
                             executions=[run()])
    assert render.status_text(view) == DESIGN_EXAMPLE


def test_status_text_columns_grow_and_missing_values_show_dash():
    view = render.CronStatus(
        name="my-cron-job", schedule="rate(5 minutes)", suspended=False, next_run=None,
        executions=[run(eid="b" * 36, started=None, stopped=None, status="FAILED_TO_START",
                        exit_code=None, created_at="2018-02-26T13:55:00.100Z"),
                    run(status="FAILED", exit_code=3)])
    lines = render.status_text(view).splitlines()
    assert lines[:4] == ["Name     = my-cron-job", "Status   = FAILED_TO_START",
                         "Schedule = rate(5 minutes)", "Next Run = -"]
    assert lines[6] == "ID                  Started At                Duration  Status           Exit Code"
    assert lines[7] == "bbbbbbbbbbbbbbb...  2018-Feb-26 13:55:00 UTC  -         FAILED_TO_START  -"
    assert lines[8] == "ce5a1529-6aa5-4...  2018-Feb-26 13:50:03 UTC  4s        FAILED           3"
    assert all(line == line.rstrip() for line in lines)


def test_status_without_executions_or_suspended():
    view = render.CronStatus(name="x", schedule="rate(1 day)", suspended=True, next_run=None,
                             executions=[])
    text = render.status_text(view)
    assert "Status   = SUSPENDED" in text
    assert text.endswith("Last Executions:\n(none)\n")
    assert render.status_json(view)["status"] == "SUSPENDED"


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0, "0s"), (4, "4s"), (4.4, "4s"), (59, "59s"), (60, "1m 0s"), (125, "2m 5s"),
    (3600, "1h 0m"), (3720, "1h 2m"), (86399, "23h 59m"), (93600, "1d 2h"),
])
def test_durations(seconds, text):
    assert render.format_duration(seconds) == text


@pytest.mark.parametrize("moment, text", [
    ("2018-02-26T13:50:03.999Z", "2018-Feb-26 13:50:03 UTC"),
    ("2018-12-01T01:02:03+02:00", "2018-Nov-30 23:02:03 UTC"),
    (datetime(2020, 1, 5, 0, 0, 0, tzinfo=UTC), "2020-Jan-05 00:00:00 UTC"),
    (None, "-"),
])
def test_moments(moment, text):
    assert render.format_moment(moment) == text


def test_status_json_shape():
    view = render.CronStatus(name="my-cron-job", schedule="cron(*/5 * * * ? *)", suspended=False,
                             next_run=datetime(2018, 2, 26, 13, 55, tzinfo=UTC),
                             executions=[run(trigger="manual")])
    assert render.status_json(view) == {
        "name": "my-cron-job", "status": "SUCCESS", "schedule": "cron(*/5 * * * ? *)",
        "next_run": "2018-02-26T13:55:00Z",
        "executions": [{
            "id": "ce5a1529-6aa5-4f1e-9c1a-3b2d8d1e0f00",
            "scheduled_at": "2018-02-26T13:50:00.000Z",
            "started_at": "2018-02-26T13:50:03.000Z", "stopped_at": "2018-02-26T13:50:07.000Z",
            "duration_s": 4.0, "status": "SUCCESS", "exit_code": 0, "trigger": "manual"}],
    }


def test_list_text_and_json():
    rows = [render.CronSummary("alpha", "rate(5 minutes)", False,
                               datetime(2018, 2, 26, 13, 55, tzinfo=UTC), run()),
            render.CronSummary("beta-long-name", "cron(0 12 * * ? *)", True, None, None)]
    assert render.list_text(rows).splitlines() == [
        "Name            Schedule            Last Status  Last Run                  Next Run",
        "alpha           rate(5 minutes)     SUCCESS      2018-Feb-26 13:50:03 UTC  2018-Feb-26 13:55:00 UTC",
        "beta-long-name  cron(0 12 * * ? *)  SUSPENDED    -                         -",
    ]
    assert render.list_json(rows)[1] == {
        "name": "beta-long-name", "schedule": "cron(0 12 * * ? *)", "suspended": True,
        "last_status": None, "last_run": None, "next_run": None}
    assert render.list_text([]) == "No crons.\n"


# -- the next run: a pure function of the spec, now and the schedule's start ---------------

def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(schedule: str, timezone: str = "UTC", suspend: bool = False) -> CronSpec:
    return make_spec("job", schedule=schedule, timezone=timezone, suspend=suspend)


@pytest.mark.parametrize("cron, now, since, expected", [
    # rate(): fires at since + k * interval (the start taken to the minute), not from now.
    pytest.param(spec("rate(5 minutes)"), "2026-12-01 16:10:00", "2026-12-01T16:03:25+00:00",
                 "2026-12-01 16:13:00", id="rate counted from the schedule's creation"),
    pytest.param(spec("rate(5 minutes)"), "2026-12-01 16:13:00", "2026-12-01T16:03:25+00:00",
                 "2026-12-01 16:18:00", id="rate: strictly after now"),
    pytest.param(spec("rate(5 minutes)"), "2026-12-01 16:04:10", "2026-12-01T16:03:59Z",
                 "2026-12-01 16:08:00", id="rate: first fire one interval after creation"),
    pytest.param(spec("rate(1 hour)"), "2026-12-01 10:00:00", "2026-11-30T22:17:40Z",
                 "2026-12-01 10:17:00", id="rate(1 hour) keeps its minute past the hour"),
    pytest.param(spec("rate(1 day)", "Europe/Berlin"), "2026-12-01 08:00:00",
                 "2026-10-20T07:45:10Z", "2026-12-02 07:45:00",
                 id="rate(1 day): 24 h steps, the zone and DST play no part"),
    pytest.param(spec("rate(7 minutes)"), "2026-12-01 16:10:00",
                 datetime(2026, 12, 1, 17, 3, 30, tzinfo=UTC), "2026-12-01 17:03:00",
                 id="rate created after now (clock skew): its start"),
    pytest.param(spec("rate(5 minutes)"), "2026-12-01 16:10:00", None, None,
                 id="rate with no recorded start: unknown, not guessed"),
    # cron(): the start plays no part; the zone does.
    pytest.param(spec("cron(*/5 * * * ? *)"), "2026-12-01 16:11:00", "2026-12-01T16:03:25Z",
                 "2026-12-01 16:15:00", id="cron ignores the start"),
    pytest.param(spec("cron(*/5 * * * ? *)"), "2026-12-01 16:11:00", None,
                 "2026-12-01 16:15:00", id="cron needs no start"),
    pytest.param(spec("cron(30 7 ? * MON-FRI *)", "Europe/Berlin"), "2026-12-01 16:00:00", None,
                 "2026-12-02 06:30:00", id="cron in its zone"),
    # nothing to show
    pytest.param(spec("rate(5 minutes)", suspend=True), "2026-12-01 16:10:00",
                 "2026-12-01T16:03:25Z", None, id="suspended"),
    pytest.param(spec("cron(0 12 * * *)"), "2026-12-01 16:10:00", None, None,
                 id="invalid expression"),
    pytest.param(spec("cron(0 12 * * ? *)", "Nowhere/City"), "2026-12-01 16:10:00", None, None,
                 id="unknown zone"),
    pytest.param(spec("rate(5 minutes)"), "2026-12-01 16:10:00", "yesterday", None,
                 id="unreadable start"),
    pytest.param(spec(""), "2026-12-01 16:10:00", None, None, id="empty schedule"),
])
def test_next_run_of(cron, now, since, expected):
    assert render.next_run_of(cron, utc(now), since) == (utc(expected) if expected else None)


# -- the cron's state: which execution gives it ----------------------------------------------

def at(minute: int, status: str, eid: str | None = None) -> Execution:
    return Execution(execution_id=eid or f"run-{minute:02d}", cron="my-cron-job",
                     scheduled_at=f"2018-02-26T14:{minute:02d}:00.000Z", status=status)


@pytest.mark.parametrize("suspended, executions, status, current", [
    pytest.param(False, [], "NEVER_RUN", None, id="never ran"),
    pytest.param(False, [at(10, "SUCCESS"), at(5, "FAILED")], "SUCCESS", "run-10",
                 id="all ended: the newest"),
    pytest.param(False, [at(5, "FAILED"), at(10, "SUCCESS")], "SUCCESS", "run-10",
                 id="any order: newest by scheduled time"),
    pytest.param(False, [at(15, "SKIPPED"), at(10, "SKIPPED"), at(5, "RUNNING")], "RUNNING",
                 "run-05", id="forbid: a run in progress behind SKIPPED fires"),
    pytest.param(False, [at(15, "SKIPPED"), at(5, "PENDING")], "PENDING", "run-05",
                 id="a run being started behind a SKIPPED fire"),
    pytest.param(False, [at(15, "SUCCESS"), at(5, "RUNNING")], "RUNNING", "run-05",
                 id="allow: an older run still running"),
    pytest.param(False, [at(15, "PENDING"), at(10, "RUNNING"), at(5, "RUNNING")], "RUNNING",
                 "run-10", id="running before pending; the newest running one"),
    pytest.param(False, [at(15, "SKIPPED"), at(5, "SUCCESS")], "SKIPPED", "run-15",
                 id="nothing open: the newest, SKIPPED included"),
    pytest.param(False, [at(15, "SKIPPED"), at(5, "RUNNING"), at(5, "RUNNING")], "RUNNING",
                 "run-05", id="the same run twice (window and open runs)"),
    pytest.param(True, [at(5, "RUNNING")], "SUSPENDED", "run-05", id="suspended wins"),
])
def test_cron_state(suspended, executions, status, current):
    assert render.cron_status(suspended, executions) == status
    found = render.current_execution(executions)
    assert (found.execution_id if found else None) == current


def test_status_counts_open_runs_older_than_the_ones_shown():
    view = render.CronStatus(name="my-cron-job", schedule="cron(*/5 * * * ? *)",
                             suspended=False, next_run=None,
                             executions=[at(15, "SKIPPED"), at(10, "SKIPPED")],
                             open_runs=(at(5, "RUNNING"),))
    lines = render.status_text(view).splitlines()
    assert lines[1] == "Status   = RUNNING"
    assert [line.split()[0] for line in lines[7:]] == ["run-15", "run-10"]  # listed: the window
    assert render.status_json(view)["status"] == "RUNNING"


def test_list_shows_the_state_of_each_cron():
    running = at(5, "RUNNING")
    rows = [render.CronSummary("alpha", "rate(5 minutes)", False, None,
                               render.current_execution([at(15, "SKIPPED"), running]))]
    assert render.list_text(rows).splitlines()[1].split()[3] == "RUNNING"
    assert render.list_json(rows)[0]["last_status"] == "RUNNING"


# -- a cron in a time zone: its clock beside UTC -----------------------------------------------

@pytest.mark.parametrize("moment, zone, text", [
    (datetime(2026, 12, 2, 6, 30, tzinfo=UTC), "Europe/Berlin",
     "2026-Dec-02 06:30:00 UTC (07:30 CET)"),
    ("2026-07-01T05:30:00.000Z", "Europe/Berlin", "2026-Jul-01 05:30:00 UTC (07:30 CEST)"),
    (datetime(2026, 12, 2, 23, 30, tzinfo=UTC), "Europe/Berlin",
     "2026-Dec-02 23:30:00 UTC (Dec-03 00:30 CET)"),
    ("2026-12-02T02:00:00Z", "America/New_York", "2026-Dec-02 02:00:00 UTC (Dec-01 21:00 EST)"),
    ("2026-12-02T06:30:00Z", "Asia/Kolkata", "2026-Dec-02 06:30:00 UTC (12:00 IST)"),
    ("2026-12-02T06:30:00Z", "UTC", "2026-Dec-02 06:30:00 UTC"),
    ("2026-12-02T06:30:00Z", "Etc/UTC", "2026-Dec-02 06:30:00 UTC"),
    ("2026-12-02T06:30:00Z", None, "2026-Dec-02 06:30:00 UTC"),
    ("2026-12-02T06:30:00Z", "Nowhere/City", "2026-Dec-02 06:30:00 UTC"),
    (None, "Europe/Berlin", "-"),
])
def test_moments_in_the_crons_zone(moment, zone, text):
    assert render.format_moment_in_zone(moment, zone) == text


ZONED = """\
Name     = nightly-report
Status   = SUCCESS
Schedule = cron(30 7 ? * MON-FRI *)
Next Run = 2026-Dec-02 06:30:00 UTC (07:30 CET)

Last Executions:
ID                  Started At                                   Duration  Status   Exit Code
ce5a1529-6aa5-4...  2026-Dec-01 06:30:03 UTC (07:30 CET)         4s        SUCCESS  0
bbbbbbbbbbbbbbb...  2026-Nov-30 23:55:00 UTC (Dec-01 00:55 CET)  -         FAILED   -
"""


def zoned_view() -> render.CronStatus:
    return render.CronStatus(
        name="nightly-report", schedule="cron(30 7 ? * MON-FRI *)", suspended=False,
        next_run=datetime(2026, 12, 2, 6, 30, tzinfo=UTC), timezone="Europe/Berlin",
        executions=[run(started="2026-12-01T06:30:03.000Z", stopped="2026-12-01T06:30:07.000Z",
                        scheduled_at="2026-12-01T06:30:00.000Z"),
                    run(eid="b" * 36, started=None, stopped=None, status="FAILED",
                        exit_code=None, scheduled_at="2026-11-30T23:55:00.000Z",
                        created_at="2026-11-30T23:55:00.100Z")])


def test_status_text_of_a_zoned_cron_shows_its_clock_beside_utc():
    assert render.status_text(zoned_view()) == ZONED


def test_status_json_of_a_zoned_cron_adds_local_times():
    data = render.status_json(zoned_view())
    assert data["timezone"] == "Europe/Berlin"
    assert data["next_run"] == "2026-12-02T06:30:00Z"
    assert data["next_run_local"] == "2026-12-02T07:30:00+01:00"
    first, second = data["executions"]
    assert first["started_at"] == "2026-12-01T06:30:03.000Z"
    assert {k: v for k, v in first.items() if k.endswith("_local")} == {
        "scheduled_at_local": "2026-12-01T07:30:00.000+01:00",
        "started_at_local": "2026-12-01T07:30:03.000+01:00",
        "stopped_at_local": "2026-12-01T07:30:07.000+01:00"}
    assert (second["started_at_local"], second["scheduled_at_local"]) == (
        None, "2026-12-01T00:55:00.000+01:00")


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC"])
def test_a_utc_cron_keeps_the_designs_exact_shape(zone):
    view = render.CronStatus(name="my-cron-job", schedule="cron(*/5 * * * ? *)", suspended=False,
                             next_run=datetime(2018, 2, 26, 13, 55, tzinfo=UTC),
                             executions=[run()], timezone=zone)
    assert render.status_text(view) == DESIGN_EXAMPLE
    data = render.status_json(view)
    assert set(data) == {"name", "status", "schedule", "next_run", "executions"}
    assert not any(k.endswith("_local") for k in data["executions"][0])
