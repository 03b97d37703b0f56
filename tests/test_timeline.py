"""The fleet's timeline: `core.schedule.timeline`, `cronctl schedule` and the busy-minute
warnings of `cronctl validate`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.core.schedule.timeline import BusyMinute, fleet_timeline, offset_hint
from tests.support.specs import make_spec


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


START = utc("2026-12-01 22:00")


# -- the core: tables of crons in, fires and minutes out ------------------------------------

@pytest.mark.parametrize("specs, hours, anchors, expected_runs, busiest", [
    pytest.param([make_spec("a", schedule="cron(0 * * * ? *)")], 3, {}, 3,
                 ("2026-12-01 22:00", 1), id="hourly: three runs in three hours"),
    pytest.param([make_spec("a", schedule="cron(0 0 * * ? *)"),
                  make_spec("b", schedule="cron(0 0 * * ? *)"),
                  make_spec("c", schedule="cron(30 23 * * ? *)")], 3, {}, 3,
                 ("2026-12-02 00:00", 2), id="two at midnight: the busiest minute"),
    pytest.param([make_spec("a", schedule="cron(0 9 * * ? *)", timezone="Europe/Berlin")],
                 24, {}, 1, ("2026-12-02 08:00", 1), id="a zoned cron fires on its clock"),
    pytest.param([make_spec("a", schedule="rate(30 minutes)")], 2, {}, 4,
                 ("2026-12-01 22:00", 1), id="rate without a known start: from the window's"),
    pytest.param([make_spec("a", schedule="rate(30 minutes)")], 2,
                 {"a": utc("2026-12-01 21:10")}, 4, ("2026-12-01 22:10", 1),
                 id="rate from its schedule's creation"),
    pytest.param([make_spec("a", schedule="cron(0 * * * ? *)", suspend=True)], 3, {}, 0, None,
                 id="suspended: nothing"),
])
def test_fleet_timeline(specs, hours, anchors, expected_runs, busiest):
    timeline = fleet_timeline(specs, START, START + timedelta(hours=hours), anchors)
    assert len(timeline.fires) == expected_runs
    assert [f.at for f in timeline.fires] == sorted(f.at for f in timeline.fires)
    assert all(START <= f.at < START + timedelta(hours=hours) for f in timeline.fires)
    if busiest is None:
        assert timeline.minutes == ()
    else:
        top = timeline.busiest(1)[0]
        assert (top.minute, top.starts) == (utc(busiest[0]), busiest[1])


def test_the_window_end_is_excluded_and_its_start_included():
    spec = make_spec("a", schedule="cron(0 * * * ? *)")
    timeline = fleet_timeline([spec], START, START + timedelta(hours=1))
    assert [f.at for f in timeline.fires] == [START]


def test_rate_crons_without_a_start_are_named_and_suspended_ones_left_out():
    timeline = fleet_timeline([make_spec("r", schedule="rate(5 minutes)"),
                               make_spec("s", schedule="rate(5 minutes)", suspend=True),
                               make_spec("c")], START, START + timedelta(hours=1),
                              {"c": START})
    assert timeline.assumed_anchor == ("r",)
    assert timeline.suspended == ("s",)
    assert timeline.crons == 2


@pytest.mark.parametrize("starts, late, over_burst, over_minute", [
    (100, 0.0, False, False),
    (101, 0.05, True, False),
    (300, 10.0, True, False),
    (1300, 60.0, True, False),
    (1301, 60.05, True, True),
])
def test_runtask_bucket_arithmetic(starts, late, over_burst, over_minute):
    minute = BusyMinute(START, tuple(f"c{i}" for i in range(starts)))
    assert minute.late_s() == pytest.approx(late)
    assert minute.over_burst() is over_burst
    assert minute.over_minute() is over_minute


def test_the_hint_says_how_late_and_how_many_to_move():
    minute = BusyMinute(START, tuple(f"c{i}" for i in range(160)))
    assert offset_hint(minute) == (
        "160 task starts at 2026-12-01 22:00 UTC, over RunTask's burst of 100: the last starts "
        "about 3 s late; move 60 of them to another minute (e.g. minute 1 instead of 0)")


def test_a_window_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="must end after it starts"):
        fleet_timeline([], START, START)


# -- the commands -----------------------------------------------------------------------

def crons(root: Path, count: int, schedule: str = "cron(0 0 * * ? *)") -> None:
    folder = root / "crons.d"
    folder.mkdir(exist_ok=True)
    for index in range(count):
        (folder / f"job-{index:03}.yaml").write_text(
            f"# a nightly job\nschedule: \"{schedule}\"\ncontainer:\n  image: busybox\n")


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("CRONCTL_PATH", "CRONCTL_REPO", "CRONCTL_REF"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_schedule_json_lists_every_run_and_the_busiest_minutes(here, capsys):
    crons(here, 3)
    (here / "crons.d" / "tick.yaml").write_text(
        'schedule: "cron(*/30 * * * ? *)"\ncontainer:\n  image: busybox\n')
    assert main(["schedule", "--next", "24h", "--output", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["crons"] == 4
    assert out["runs"] == 3 + 48
    assert len(out["fires"]) == out["runs"]
    top = out["busiest_minutes"][0]
    assert top["minute"].endswith("T00:00:00Z")
    assert top["task_starts"] == 4  # three nightly jobs and tick
    assert sorted(top["crons"]) == ["job-000", "job-001", "job-002", "tick"]
    assert top["over_burst"] is False


def test_schedule_text_shows_minutes_and_a_hint_over_the_burst(here, capsys):
    crons(here, 105)
    assert main(["schedule", "--next", "24h"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("105 crons, 105 runs")
    assert "over the burst: the last starts ~0 s late" in out
    assert "hint: 105 task starts at" in out
    assert "move 5 of them to another minute" in out


@pytest.mark.parametrize("flag, message", [
    ("soon", "is not a duration"),
    ("40d", "at most 31d"),
])
def test_schedule_refuses_a_bad_window(here, capsys, flag, message):
    crons(here, 1)
    assert main(["schedule", "--next", flag]) == 2
    assert message in capsys.readouterr().err


def test_schedule_leaves_out_invalid_files_and_says_so(here, capsys):
    crons(here, 2)
    (here / "crons.d" / "broken.yaml").write_text('schedule: "rate(0 minutes)"\n')
    assert main(["schedule", "--output", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["crons"] == 2
    assert "1 invalid file left out; `cronctl validate` shows why" in captured.err


def test_validate_warns_at_each_schedule_line_of_an_over_burst_minute(here, capsys):
    crons(here, 101)
    (here / "crons.d" / "quiet.yaml").write_text(
        'schedule: "cron(15 3 * * ? *)"\ncontainer:\n  image: busybox\n')
    assert main(["validate", "--output", "json"]) == 0  # warnings never fail
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == 101
    assert {w["file"] for w in warnings} == {f"crons.d/job-{i:03}.yaml" for i in range(101)}
    assert {(w["line"], w["column"], w["field"]) for w in warnings} == {(2, 1, "schedule")}
    assert "101 task starts at" in warnings[0]["message"]
    assert main(["validate", "--output", "github"]) == 0
    out = capsys.readouterr().out
    assert out.count("::warning file=crons.d/job-") == 101
    assert "::error" not in out


def test_validate_has_no_warning_within_the_burst(here, capsys):
    crons(here, 100)
    assert main(["validate"]) == 0
    assert "warnings:" not in capsys.readouterr().out
