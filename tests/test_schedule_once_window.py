"""One-time ``at()`` schedules and ``active`` windows as tables of inputs and outputs (pure):
parsing and evaluation, the window's bounds, the loader's errors, desired state, the plan's
decisions (rules backend, a past ``at()``, a one-time run done, a rule outside its window),
the monitor refusal, status, the timeline and the embedded clock."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from reconciler.core.cronfile.loader import load_file
from reconciler.core.desired import CRON_TAG, Deployment, ours_tags
from reconciler.core.monitors.schedule import MonitorRefused, monitor_timing
from reconciler.core.plan.model import Observed, ObservedSchedule, ObservedTaskDefinition
from reconciler.core.plan.planner import ONE_TIME_DONE, desired_state, make_plan
from reconciler.core.registry_model import RegistryItem
from reconciler.core.schedule import expressions as schedule
from reconciler.core.schedule import window
from reconciler.core.schedule.timeline import fleet_timeline
from reconciler.core.spec import ActiveWindow, ContainerSpec, CronSpec
from reconciler.core.status.render import next_run_note, next_run_of
from reconciler.service.embedded.clock import LocalClock

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = SimpleNamespace(namespace="test", max_deletes=None, allow_mass_delete=False)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(name: str = "job", schedule_text: str = "cron(0 5 * * ? *)", **kw) -> CronSpec:
    return CronSpec(name=name, file=f"crons.d/{name}.yaml", schedule=schedule_text,
                    container=ContainerSpec(image="perl"), **kw)


def dep(backend: str, now: datetime | None = NOW) -> Deployment:
    return Deployment(namespace="test", region="us-east-1", account="123456789012",
                      backend=backend, sidecar_image="busybox", log_group="/cronctl/test",
                      execution_role_arn="arn:aws:iam::123456789012:role/x", now=now)


# --- at(): evaluation and description ----------------------------------------------------

@pytest.mark.parametrize(("expression", "zone", "after", "expected"), [
    ("at(2026-12-24T18:00:00)", "Europe/Berlin", "2026-12-01T00:00:00", ["2026-12-24T17:00:00"]),
    ("at(2026-12-24T18:00:00)", "UTC", "2026-12-24T17:59:59", ["2026-12-24T18:00:00"]),
    ("at(2026-12-24T18:00:00)", "UTC", "2026-12-24T18:00:00", []),  # strictly after
    ("at(2026-12-24T18:00:00)", "UTC", "2027-01-01T00:00:00", []),
    # a spring-forward gap: a one-time run is never dropped, it fires when the gap ends
    ("at(2026-03-29T02:30:00)", "Europe/Berlin", "2026-03-01T00:00:00",
     ["2026-03-29T01:00:00"]),
    # a repeated hour: its first occurrence
    ("at(2026-10-25T02:30:00)", "Europe/Berlin", "2026-10-01T00:00:00",
     ["2026-10-25T00:30:00"]),
])
def test_at_fires_once_at_its_wall_clock_time(expression, zone, after, expected):
    times = schedule.next_fire_times(expression, zone, utc(after), 5)
    assert [t.strftime("%Y-%m-%dT%H:%M:%S") for t in times] == expected


@pytest.mark.parametrize(("expression", "zone", "text"), [
    ("at(2026-12-24T18:00:00)", "Europe/Berlin", "once, at 18:00 on 2026-12-24 (Europe/Berlin)"),
    ("at(2026-12-24T18:00:00)", "UTC", "once, at 18:00 on 2026-12-24"),
    ("at(2026-12-24T18:00:30)", "UTC", "once, at 18:00:30 on 2026-12-24"),
])
def test_at_is_described(expression, zone, text):
    assert schedule.describe(expression, zone) == text


# --- the active window ---------------------------------------------------------------------

@pytest.mark.parametrize(("start", "until", "zone", "bounds"), [
    ("2026-12-01", "2027-03-31", "UTC", ("2026-12-01T00:00:00", "2027-04-01T00:00:00")),
    ("2026-12-01", "2027-03-31", "Europe/Berlin",
     ("2026-11-30T23:00:00", "2027-03-31T22:00:00")),  # until is inclusive: to the day's end
    ("2026-12-01T08:30:00", "2026-12-01T17:00:00", "UTC",
     ("2026-12-01T08:30:00", "2026-12-01T17:00:01")),  # a datetime until includes itself
    (None, "2027-03-31", "UTC", (None, "2027-04-01T00:00:00")),
    ("2026-12-01", None, "UTC", ("2026-12-01T00:00:00", None)),
])
def test_window_bounds(start, until, zone, bounds):
    found = window.bounds(ActiveWindow(start, until), zone)
    shown = tuple(m.strftime("%Y-%m-%dT%H:%M:%S") if m else None for m in (found.start, found.end))
    assert shown == bounds


@pytest.mark.parametrize(("expression", "after", "expected"), [
    # before the window: the first fires are the window's first
    ("cron(0 5 * * ? *)", "2026-11-01T00:00:00", ["2026-12-01T05:00:00", "2026-12-02T05:00:00"]),
    # inside: as usual
    ("cron(0 5 * * ? *)", "2027-03-30T00:00:00", ["2027-03-30T05:00:00", "2027-03-31T05:00:00"]),
    # after: none
    ("cron(0 5 * * ? *)", "2027-04-01T00:00:00", []),
    # an at() outside its window never fires
    ("at(2027-05-01T00:00:00)", "2026-11-01T00:00:00", []),
])
def test_fire_times_respect_the_window(expression, after, expected):
    cron = spec(schedule_text=expression, active=ActiveWindow("2026-12-01", "2027-03-31"))
    times = window.spec_fire_times(cron, utc(after), 2)
    assert [t.strftime("%Y-%m-%dT%H:%M:%S") for t in times] == expected


def test_outside_reason_names_the_window():
    cron = spec(active=ActiveWindow("2026-12-01", "2027-03-31"), timezone="Europe/Berlin")
    assert window.outside_reason(cron, utc("2026-12-05T05:00:00")) is None
    assert window.outside_reason(cron, utc("2027-04-01T05:00:00")) == (
        "outside the active window (from 2026-12-01 until 2027-03-31, Europe/Berlin)")


# --- the loader ----------------------------------------------------------------------------

def load(text: str):
    return load_file("crons.d/job.yaml", text.encode())


@pytest.mark.parametrize(("active", "line", "field", "message"), [
    ("  from: 2026-12-01\n  until: 2026-11-30\n", 5, "active.until",
     "'until' (2026-11-30) is before 'from' (2026-12-01): nothing would run"),
    ("  from: next week\n", 4, "active.from",
     "'next week' is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[:SS])"),
    ("  from: 5\n", 4, "active.from",
     "must be a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[:SS]), got int"),
    ("  till: 2026-12-01\n", 4, "active.till", "unknown field 'till' (did you mean 'until'?)"),
])
def test_active_errors_are_located(active, line, field, message):
    cron, problems = load('schedule: "rate(1 hour)"\ncontainer: {image: perl}\nactive:\n'
                          + active)
    assert cron is None
    assert [(d.line, d.field, d.message) for d in problems] == [(line, field, message)]


def test_active_and_at_load_into_the_spec_and_its_stored_form():
    cron, problems = load('schedule: "at(2026-12-24T18:00:00)"\ntimezone: Europe/Berlin\n'
                          "container: {image: perl}\n"
                          "active: {from: 2026-12-01, until: 2027-03-31T18:00}\n")
    assert problems == []
    assert cron.active == ActiveWindow("2026-12-01", "2027-03-31T18:00:00")
    stored = cron.to_dict()
    assert stored["active"] == {"from": "2026-12-01", "until": "2027-03-31T18:00:00"}
    assert CronSpec.from_dict(stored, cron.file) == cron
    assert "active" not in spec().to_dict()  # older specs keep their hash


def test_a_bad_at_is_an_error_at_the_schedule_line():
    cron, problems = load('container: {image: perl}\nschedule: "at(2026-12-24T18:00)"\n')
    assert [(d.line, d.field) for d in problems] == [(2, "schedule")]
    assert "seconds are required" in problems[0].message


# --- desired state -------------------------------------------------------------------------

def test_scheduler_schedule_carries_the_window_and_deletes_a_one_time_schedule_after():
    cron = spec(schedule_text="at(2026-12-24T18:00:00)", timezone="Europe/Berlin",
                active=ActiveWindow("2026-12-02", "2027-03-31"))
    wanted = desired_state((cron,), dep("scheduler"), commit="c").crons[0].schedule
    assert (wanted.start_date, wanted.end_date, wanted.after_completion) == (
        "2026-12-01T23:00:00Z", "2027-03-31T22:00:00Z", "DELETE")
    # a start already passed is left out (AWS refuses one more than 5 minutes ago)
    late = dep("scheduler", now=utc("2026-12-10T00:00:00"))
    wanted = desired_state((cron,), late, commit="c").crons[0].schedule
    assert (wanted.start_date, wanted.end_date) == (None, "2027-03-31T22:00:00Z")
    plain = desired_state((spec(),), dep("scheduler"), commit="c").crons[0].schedule
    assert set(plain.fields()) == {"expression", "state", "description", "target", "input",
                                   "timezone", "role"}


@pytest.mark.parametrize(("now", "state"), [
    ("2026-11-30T23:59:59", "DISABLED"),
    ("2026-12-01T00:00:00", "ENABLED"),
    ("2027-03-31T23:59:59", "ENABLED"),
    ("2027-04-01T00:00:00", "DISABLED"),
])
def test_a_rule_is_disabled_outside_its_window(now, state):
    cron = spec(active=ActiveWindow("2026-12-01", "2027-03-31"))
    wanted = desired_state((cron,), dep("rules", now=utc(now)), commit="c").crons[0].schedule
    assert wanted.state == state


# --- the plan ------------------------------------------------------------------------------

def applied(cron: CronSpec, deployment: Deployment, *, live: bool) -> Observed:
    """What AWS holds after applying ``cron`` (its schedule gone unless ``live``)."""
    dc = desired_state((cron,), deployment, commit="c1").crons[0]
    td = dc.task_definition
    arn = f"arn:aws:ecs:us-east-1:123456789012:task-definition/{td.family}:1"
    schedules = {dc.schedule.name: ObservedSchedule(
        arn=dc.schedule.arn, current=dc.schedule,
        tags=ours_tags("test", **{CRON_TAG: cron.name}))} if live else {}
    return Observed(
        registry={cron.name: RegistryItem(
            name=cron.name, spec=cron, spec_hash=cron.spec_hash(), commit="c1",
            file=cron.file, schedule_backend=deployment.backend, schedule_arn=dc.schedule.arn,
            task_definition_arn=arn, task_definition_hash=td.td_hash, overrides=dc.overrides)},
        schedules=schedules,
        task_definitions={td.family: ObservedTaskDefinition(td.family, arn, ours_tags("test"))})


def plan(cron: CronSpec, observed: Observed, deployment: Deployment):
    return make_plan(desired_state((cron,), deployment, commit="c2"), observed, SETTINGS)


def test_at_on_the_rules_backend_is_an_error_naming_the_scheduler_backend():
    p = plan(spec(schedule_text="at(2026-12-24T18:00:00)"), Observed(), dep("rules"))
    (error,) = p.errors
    assert error.cron == "job" and p.pending == ()
    assert "needs the EventBridge Scheduler backend" in error.message
    assert "cronctl bootstrap --scheduler scheduler" in error.message


def test_a_new_at_in_the_past_is_an_error():
    p = plan(spec(schedule_text="at(2026-11-30T18:00:00)"), Observed(), dep("scheduler"))
    (error,) = p.errors
    assert error.message.startswith("schedule at(2026-11-30T18:00:00) (UTC) is in the past")
    assert p.pending == ()


def test_a_future_at_is_created_with_delete_after_completion():
    p = plan(spec(schedule_text="at(2026-12-24T18:00:00)"), Observed(), dep("scheduler"))
    assert p.errors == ()
    create = [c for c in p.pending if c.resource == "schedule"][0]
    assert ("after_completion", None, "DELETE") in create.diff


def test_a_one_time_run_done_is_a_no_op_not_a_re_create():
    cron = spec(schedule_text="at(2026-12-01T11:00:00)")
    before = dep("scheduler", now=utc("2026-12-01T10:00:00"))
    gone = applied(cron, before, live=False)  # it fired and deleted itself
    p = plan(cron, gone, dep("scheduler"))
    assert p.errors == () and p.pending == ()
    schedule_change = [c for c in p.changes if c.resource == "schedule"][0]
    assert (schedule_change.action, schedule_change.reason) == ("no-op", ONE_TIME_DONE)
    # still there (AWS has not deleted it yet): in sync, no error either
    assert plan(cron, applied(cron, before, live=True), dep("scheduler")).errors == ()
    # a different at() in the past is not done: an error
    moved = replace(cron, schedule="at(2026-12-01T11:30:00)")
    assert plan(moved, gone, dep("scheduler")).errors[0].message.startswith("schedule at(")


def test_a_rule_entering_its_window_is_enabled_by_the_plan():
    cron = spec(active=ActiveWindow("2026-12-01", "2027-03-31"))
    before = dep("rules", now=utc("2026-11-30T12:00:00"))
    observed = applied(cron, before, live=False)
    rule = desired_state((cron,), before, commit="c1").crons[0].schedule
    assert rule.state == "DISABLED"
    observed = replace(observed, rules={rule.name: ObservedSchedule(
        arn=rule.arn, current=rule, tags=ours_tags("test", **{CRON_TAG: "job"}))})
    p = plan(cron, observed, dep("rules"))
    (change,) = p.pending
    assert (change.resource, change.action, change.reason) == (
        "schedule", "update", "active window: inside it, rule enabled")
    assert ("state", "DISABLED", "ENABLED") in change.diff


# --- monitors, status, timeline, embedded clock --------------------------------------------

@pytest.mark.parametrize("provider", ["cronitor", "healthchecks"])
def test_a_monitor_for_a_one_time_cron_is_refused(provider):
    with pytest.raises(MonitorRefused, match="runs once"):
        monitor_timing("at(2026-12-24T18:00:00)", "UTC", provider)


@pytest.mark.parametrize(("cron", "now", "next_run", "note"), [
    (spec(schedule_text="at(2026-12-24T18:00:00)"), NOW, "2026-12-24T18:00:00", None),
    (spec(schedule_text="at(2026-11-24T18:00:00)"), NOW, None, "one-time run done"),
    (spec(active=ActiveWindow("2027-01-01", None)), NOW, "2027-01-01T05:00:00",
     "active window not begun (from 2027-01-01, UTC)"),
    (spec(active=ActiveWindow(None, "2026-11-30")), NOW, None,
     "active window ended (until 2026-11-30, UTC)"),
])
def test_status_next_run_and_its_note(cron, now, next_run, note):
    found = next_run_of(cron, now, None)
    assert (found.strftime("%Y-%m-%dT%H:%M:%S") if found else None) == next_run
    assert next_run_note(cron, now) == note


def test_the_timeline_has_the_one_time_run_and_nothing_outside_windows():
    crons = [spec("once", "at(2026-12-01T12:30:00)"),
             spec("hourly", "cron(0 * * * ? *)", active=ActiveWindow("2026-12-01T13:30", None)),
             spec("gone", "cron(* * * * ? *)", active=ActiveWindow(None, "2026-11-30"))]
    timeline = fleet_timeline(crons, NOW, NOW + timedelta(hours=3))
    assert [(f.at.strftime("%H:%M"), f.cron) for f in timeline.fires] == [
        ("12:30", "once"), ("14:00", "hourly")]  # the window [12:00, 15:00) ends before 15:00


def test_the_embedded_clock_fires_a_one_time_schedule_once_and_nothing_outside_windows():
    once = spec("once", "at(2026-12-01T12:02:00)")
    late = spec("late", "cron(* * * * ? *)", active=ActiveWindow("2026-12-01T12:03", None))
    items = [RegistryItem(name=c.name, spec=c, spec_hash=c.spec_hash(), file=c.file,
                          schedule_backend="scheduler") for c in (once, late)]
    fired: list[tuple[str, str]] = []
    now = [NOW]

    def publish(message: str) -> None:
        data = json.loads(message)
        fired.append((data["cron"], data["scheduled_at"]))

    clock = LocalClock(lambda: items, publish, now=lambda: now[0])
    clock._anchor = NOW
    while now[0] < NOW + timedelta(minutes=5):
        clock.tick()
        now[0] += timedelta(seconds=10)
    assert fired == [("once", "2026-12-01T12:02:00Z"), ("late", "2026-12-01T12:03:00Z"),
                     ("late", "2026-12-01T12:04:00Z")]


def test_status_text_says_a_one_time_run_is_done():
    from reconciler.core.status.render import CronStatus, status_text

    cron = spec(schedule_text="at(2026-11-24T18:00:00)")
    view = CronStatus(name="job", schedule=cron.schedule, suspended=False,
                      next_run=next_run_of(cron, NOW, None), executions=[],
                      next_run_note=next_run_note(cron, NOW))
    assert "Next Run = - (one-time run done)" in status_text(view)


def test_the_next_window_boundary_is_the_first_start_or_end_after_now():
    from reconciler.core.schedule.window import next_boundary
    from tests.support.specs import make_spec

    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    specs = [make_spec("a", active={"from": "2026-12-03", "until": "2026-12-10"}),
             make_spec("b", active={"from": "2026-11-01", "until": "2026-12-05"},
                       timezone="Europe/Berlin"),
             make_spec("c")]
    # b ends at the end of 2026-12-05 in Berlin (23:00 UTC); a starts 2026-12-03 00:00 UTC
    assert next_boundary(specs, now) == datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    assert next_boundary(specs, datetime(2026, 12, 4, tzinfo=UTC)) == \
        datetime(2026, 12, 5, 23, 0, tzinfo=UTC)
    assert next_boundary([make_spec("c")], now) is None
