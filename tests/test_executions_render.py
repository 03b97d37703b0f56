"""Rendering of `status` and `list` (pure): the design's exact text shape, and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.core import status_render as render
from reconciler.core.executions import Execution

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
        stopped="2018-02-26T13:50:07.000Z", status="SUCCESS", exit_code=0, **kw) -> Execution:
    return Execution(execution_id=eid, cron="my-cron-job", scheduled_at="2018-02-26T13:50:00.000Z",
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
