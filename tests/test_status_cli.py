"""`cronctl status`, `list` and `trigger` end to end: dispatch -> task -> events -> status."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from reconciler import cli
from reconciler.adapters.registry import from_wire
from reconciler.core.executions import records as ex
from reconciler.core.registry_model import RegistryItem
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.http.status_page import StatusPages
from tests.support.ecs_events import (
    lifecycle,
    put_cron,
    send_events,
    tasks_started_by,
)
from tests.support.reconcile_env import cron_yaml, prepare, write_crons

AT = "2018-02-26T13:50:00Z"
NS = ["--namespace", "test"]


def registry_item(clients, settings, name: str) -> RegistryItem:
    raw = clients.client("dynamodb").get_item(
        TableName=settings.registry_table, Key={"name": {"S": name}}, ConsistentRead=True)
    return from_wire(raw["Item"])


def rewrite(clients, settings, item: RegistryItem) -> None:
    serializer = TypeSerializer()
    clients.client("dynamodb").put_item(TableName=settings.registry_table, Item={
        k: serializer.serialize(v) for k, v in item.to_item().items()})


def put_cron_as(clients, settings, name: str, td: str, *, timezone: str | None = None,
                schedule: str = "cron(*/5 * * * ? *)", since: str | None = None) -> None:
    """``put_cron`` with a time zone and the schedule's recorded start."""
    put_cron(clients, settings, name, td, schedule=schedule)
    item = registry_item(clients, settings, name)
    spec = replace(item.spec, timezone=timezone) if timezone else item.spec
    rewrite(clients, settings, replace(item, spec=spec, schedule_since=since))


def consume_all(clients, settings) -> None:
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    while consumer.process_batch():
        pass


def status_json(name: str, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert cli.main(["status", name, "--output", "json", *extra, *NS]) == 0
    return json.loads(capsys.readouterr().out)


def moment(text: str) -> datetime:
    return ex.parse_time(text)


def run_to_the_end(clients, settings, cron: str, **outcome) -> str:
    """Dispatch one scheduled run, check ECS has the task, deliver its events, consume them."""
    run = Dispatcher(clients, settings).handle_sns_message(
        {"Type": "Notification", "Message": json.dumps({"cron": cron, "scheduled_at": AT})})
    assert run[0] == 200
    eid = json.loads(run[1])["execution_id"]
    [task] = tasks_started_by(clients, settings, eid)
    send_events(clients.client("sqs"), settings, lifecycle(task["taskArn"], eid, **outcome))
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    while consumer.process_batch():
        pass
    return eid


@pytest.mark.parametrize("outcome, status, duration, code", [
    ({"main_exit": 0, "run_seconds": 4}, "SUCCESS", "4s", "0"),
    ({"main_exit": 3, "run_seconds": 125}, "FAILED", "2m 5s", "3"),
    ({"main_exit": None, "timeout_exit": 124, "run_seconds": 3720}, "TIMEOUT", "1h 2m", "137"),
])
def test_status_shows_the_finished_run(plane, settings, capsys, outcome, status, duration, code):
    clients, td = plane
    put_cron(clients, settings, "my-cron-job", td)
    eid = run_to_the_end(clients, settings, "my-cron-job", **outcome)
    capsys.readouterr()
    assert cli.main(["status", "my-cron-job", *NS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == ["Name     = my-cron-job", f"Status   = {status}",
                         "Schedule = cron(*/5 * * * ? *)"]
    assert lines[3].startswith("Next Run = ")
    status_width = max(len("Status"), len(status))
    assert lines[5:7] == ["Last Executions:",
                          "ID                  Started At                Duration  "
                          f"{'Status'.ljust(status_width)}  Exit Code"]
    assert lines[7].split("  ")[0] == eid[:15] + "..."
    cells = [c for c in lines[7].split("  ") if c.strip()]
    assert [c.strip() for c in cells[1:]] == ["2018-Feb-26 13:50:03 UTC", duration, status, code]


def test_status_json(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "my-cron-job", td)
    eid = run_to_the_end(clients, settings, "my-cron-job", main_exit=3, run_seconds=10)
    capsys.readouterr()
    assert cli.main(["status", "my-cron-job", "--output", "json", *NS]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {k: data[k] for k in ("name", "status", "schedule")} == {
        "name": "my-cron-job", "status": "FAILED", "schedule": "cron(*/5 * * * ? *)"}
    assert "next_run" in data
    assert data["executions"] == [{
        "id": eid, "scheduled_at": "2018-02-26T13:50:00.000Z",
        "started_at": "2018-02-26T13:50:03.000Z", "stopped_at": "2018-02-26T13:50:13.000Z",
        "duration_s": 10.0, "status": "FAILED", "exit_code": 3, "trigger": "schedule"}]


def test_status_limit_orders_newest_first(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="allow")
    dispatcher = Dispatcher(clients, settings)
    for minute in ("00", "05", "10"):
        dispatcher.dispatch("hello", f"2018-02-26T14:{minute}:00Z")
    capsys.readouterr()
    assert cli.main(["status", "hello", "--limit", "2", "--output", "json", *NS]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["scheduled_at"] for e in data["executions"]] == [
        "2018-02-26T14:10:00.000Z", "2018-02-26T14:05:00.000Z"]
    assert data["status"] == "PENDING"


def test_status_of_an_unknown_cron_is_an_error(plane, capsys):
    assert cli.main(["status", "nobody", *NS]) == 1
    captured = capsys.readouterr()
    assert "no cron named 'nobody' in namespace 'test'" in captured.err
    assert captured.out == ""


def test_list_shows_every_cron_with_its_last_run(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "alpha", td)
    put_cron(clients, settings, "beta", td, suspend=True, schedule="rate(1 day)")
    run_to_the_end(clients, settings, "alpha", main_exit=0)
    capsys.readouterr()
    assert cli.main(["list", *NS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Name", "Schedule", "Last", "Status", "Last", "Run", "Next", "Run"]
    assert lines[1].startswith("alpha") and "SUCCESS" in lines[1]
    assert "2018-Feb-26 13:50:03 UTC" in lines[1]
    assert lines[2].startswith("beta") and "SUSPENDED" in lines[2]
    assert cli.main(["list", "--output", "json", *NS]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["last_status"]) for r in data] == [("alpha", "SUCCESS"), ("beta", None)]
    # A suspended cron starts nothing, so it has no next run; an active one has.
    assert data[0]["next_run"] is not None and data[1]["next_run"] is None
    assert lines[2].split()[-1] == "-"
    assert cli.main(["status", "beta", "--output", "json", *NS]) == 0
    assert json.loads(capsys.readouterr().out)["next_run"] is None


def test_trigger_runs_now_and_respects_the_policy_unless_forced(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    capsys.readouterr()
    assert cli.main(["trigger", "hello", *NS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hello: started (execution ")
    eid = out.split("(execution ")[1].split(")")[0]
    [task] = tasks_started_by(clients, settings, eid)
    assert {t["key"]: t["value"] for t in task["tags"]}["cronctl:execution"] == eid
    assert cli.main(["trigger", "hello", *NS]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and f"previous execution {eid} is still running" in err
    assert "--force starts it anyway" in err
    assert cli.main(["trigger", "hello", "--force", *NS]) == 0
    capsys.readouterr()
    assert cli.main(["status", "hello", "--output", "json", *NS]) == 0
    runs = json.loads(capsys.readouterr().out)["executions"]
    assert sorted(r["status"] for r in runs) == ["PENDING", "PENDING", "SKIPPED"]
    assert {r["trigger"] for r in runs} == {"manual"}


def test_trigger_of_an_unknown_cron_fails(plane, capsys):
    assert cli.main(["trigger", "nobody", *NS]) == 1
    err = capsys.readouterr().err
    assert "unknown_cron" in err and "no cron named 'nobody' in namespace 'test'" in err


def test_execution_ids_in_status_are_the_dispatch_ids(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    eid = run_to_the_end(clients, settings, "hello", main_exit=0)
    assert eid == ex.execution_id("hello", AT)


@pytest.mark.parametrize("command", [["status", "hello"], ["list"], ["trigger", "hello"]])
def test_commands_on_a_namespace_never_bootstrapped_say_so(aws, capsys, command):
    assert cli.main([*command, "--namespace", "elsewhere"]) == 1
    captured = capsys.readouterr()
    assert f"cronctl {command[0]}: registry table elsewhere-registry not found: namespace " \
           "'elsewhere' is not bootstrapped here (run `cronctl bootstrap --namespace " \
           "elsewhere`)" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("limit", ["0", "-2"])
def test_status_limit_below_one_is_a_usage_error(plane, capsys, limit):
    assert cli.main(["status", "hello", "--limit", limit, *NS]) == 2
    captured = capsys.readouterr()
    assert "cronctl status: --limit must be at least 1" in captured.err
    assert captured.out == ""


# -- the cron's state: a run in progress, even behind newer SKIPPED fires --------------------

def test_a_run_in_progress_is_the_state_even_behind_skipped_fires(plane, settings, capsys):
    clients, td = plane
    put_cron(clients, settings, "hello", td)  # concurrency: forbid
    dispatcher = Dispatcher(clients, settings)
    dispatcher.dispatch("hello", "2018-02-26T14:00:00Z")
    running = ex.execution_id("hello", "2018-02-26T14:00:00Z")
    [task] = tasks_started_by(clients, settings, running)
    events = lifecycle(task["taskArn"], running, main_exit=0)
    send_events(clients.client("sqs"), settings, events[:2])  # PENDING, RUNNING
    consume_all(clients, settings)
    for minute in ("05", "10"):  # fires while it runs: skipped
        dispatcher.dispatch("hello", f"2018-02-26T14:{minute}:00Z")

    # --limit 1 shows only the newest (SKIPPED) run; the state comes from the open one
    data = status_json("hello", capsys, "--limit", "1")
    assert [(e["scheduled_at"], e["status"]) for e in data["executions"]] == [
        ("2018-02-26T14:10:00.000Z", "SKIPPED")]
    assert data["status"] == "RUNNING"
    assert cli.main(["status", "hello", *NS]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "Status   = RUNNING"
    assert cli.main(["list", "--output", "json", *NS]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["last_status"], row["last_run"]) == ("RUNNING", "2018-02-26T13:50:03.000Z")
    assert cli.main(["list", *NS]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[7] == "RUNNING"
    # the daemon's status page says the same (its overview and the cron's page)
    pages = StatusPages(clients, settings)
    for path in ("/", "/crons/hello"):
        text = pages.answer("GET", path).text
        assert 'data-status="RUNNING"' in text.split("Recent executions")[0], path

    # once it ended, nothing is open: the newest execution's status again
    send_events(clients.client("sqs"), settings, events[2:])
    consume_all(clients, settings)
    assert status_json("hello", capsys)["status"] == "SKIPPED"


# -- a time-zoned cron: its clock beside UTC -------------------------------------------------

def test_status_of_a_zoned_cron_shows_its_clock_beside_utc(plane, settings, capsys):
    clients, td = plane
    put_cron_as(clients, settings, "report", td, schedule="cron(30 7 ? * MON-FRI *)",
                timezone="Europe/Berlin")
    eid = run_to_the_end(clients, settings, "report", main_exit=0, run_seconds=4)
    capsys.readouterr()
    assert cli.main(["status", "report", *NS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"Next Run = \d{4}-[A-Z][a-z]{2}-\d\d 0[56]:30:00 UTC \(07:30 CES?T\)",
                        lines[3]), lines[3]
    assert lines[7].startswith(eid[:15] + "...  2018-Feb-26 13:50:03 UTC (14:50 CET)  4s  ")
    data = status_json("report", capsys)
    assert data["timezone"] == "Europe/Berlin"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT07:30:00\+0[12]:00", data["next_run_local"])
    assert moment(data["next_run_local"]) == moment(data["next_run"])
    [run] = data["executions"]
    assert (run["started_at"], run["started_at_local"]) == (
        "2018-02-26T13:50:03.000Z", "2018-02-26T14:50:03.000+01:00")
    assert run["scheduled_at_local"] == "2018-02-26T14:50:00.000+01:00"


# -- rate(): the next run counts from when the schedule was put in place ---------------------

def test_next_run_of_a_rate_counts_from_the_recorded_start(plane, settings, capsys):
    clients, td = plane
    put_cron_as(clients, settings, "beat", td, schedule="rate(7 minutes)",
                since="2020-01-01T09:14:42+00:00")
    put_cron_as(clients, settings, "unknown", td, schedule="rate(7 minutes)")
    before = datetime.now(UTC)
    next_run = moment(status_json("beat", capsys)["next_run"])
    after = datetime.now(UTC)
    anchor = datetime(2020, 1, 1, 9, 14, 42, tzinfo=UTC)  # the start, as the clock counts
    assert (next_run - anchor) % timedelta(minutes=7) == timedelta(0)
    assert before < next_run <= after + timedelta(minutes=7)
    # a start nobody recorded (an item written before) is not guessed
    assert status_json("unknown", capsys)["next_run"] is None


@pytest.fixture
def control_plane(settings, tmp_path):
    clients = prepare(settings)
    return clients, settings.with_(repo=str(tmp_path)), tmp_path


OLD = "2020-01-01T00:00:00+00:00"


def _stamp_old(clients, settings, name: str) -> None:
    rewrite(clients, settings, replace(registry_item(clients, settings, name),
                                       schedule_since=OLD))


def _delete_schedule_outside(clients, backend: str) -> None:
    if backend == "rules":
        events = clients.client("events")
        events.remove_targets(Rule="test-beat", Ids=["cronctl-dispatch"])
        events.delete_rule(Name="test-beat")
    else:
        clients.client("scheduler").delete_schedule(GroupName="test", Name="beat")


@pytest.mark.parametrize("backend", ["rules", "scheduler"])
def test_apply_records_when_the_schedule_got_its_expression(control_plane, capsys, backend):
    clients, settings, root = control_plane
    settings = settings.with_(scheduler=backend)

    def reconcile(schedule: str, env: dict | None = None):
        write_crons(root, {"beat": cron_yaml(schedule, "busybox", env=env)})
        started = datetime.now(UTC).replace(microsecond=0)
        result = run_pass(clients, settings, dry_run=False)
        assert result.ok, result
        return started, result

    # created: its start is recorded, and status counts the rate from it
    started, _ = reconcile("rate(7 minutes)")
    since = moment(registry_item(clients, settings, "beat").schedule_since)
    assert started <= since <= datetime.now(UTC)
    next_run = moment(status_json("beat", capsys)["next_run"])
    assert (next_run - since) % timedelta(minutes=7) == timedelta(0)  # to the second

    # another change (the registry item is rewritten, the schedule keeps its expression): kept
    _stamp_old(clients, settings, "beat")
    reconcile("rate(7 minutes)", env={"A": "1"})
    assert registry_item(clients, settings, "beat").schedule_since == OLD

    # a new expression: a new start
    started, _ = reconcile("rate(9 minutes)", env={"A": "1"})
    assert moment(registry_item(clients, settings, "beat").schedule_since) >= started

    # the schedule deleted outside cronctl and created again, the registry item otherwise up
    # to date: the item is rewritten for the new start, which is not a change of the plan
    _stamp_old(clients, settings, "beat")
    _delete_schedule_outside(clients, backend)
    started, result = reconcile("rate(9 minutes)", env={"A": "1"})
    assert [(c.resource, c.action) for c in result.applied] == [("schedule", "create")]
    assert moment(registry_item(clients, settings, "beat").schedule_since) >= started


# -- a run the embedded runner made without Docker: status says the image was not used ------

def test_status_says_when_a_run_did_not_use_its_image(plane, settings, capsys):
    from reconciler.adapters.executions import ExecutionStore, started_pending
    from reconciler.adapters.registry_read import RegistryReader
    from reconciler.service.embedded.runner import LocalTaskRunner
    from tests.support.waiting import wait_for

    clients, td = plane
    put_cron(clients, settings, "local", td)
    put_cron(clients, settings, "on-ecs", td)
    run = Dispatcher(clients, settings).handle_sns_message(
        {"Type": "Notification", "Message": json.dumps({"cron": "local", "scheduled_at": AT})})
    eid = json.loads(run[1])["execution_id"]
    sqs = clients.client("sqs")
    runner = LocalTaskRunner(
        list_started=lambda: started_pending(clients, settings.executions_table),
        registry_get=RegistryReader(clients, settings).get,
        send_event=lambda event: send_events(sqs, settings, [event]), region="us-east-1",
        account="123456789012", cluster_arn="arn:cluster/test", poll_s=0.05,
        use_docker=False, note_execution=ExecutionStore(clients, settings).add_note)
    runner.start()
    try:
        store = ExecutionStore(clients, settings)

        def finished():
            consume_all(clients, settings)
            return (record := store.get(eid)) and record.terminal and record

        record = wait_for(finished, timeout=20, message="the local run to end")
    finally:
        assert runner.stop(timeout=10)
    assert record.status == "SUCCESS"
    note = ("ran as a local process on the embedded daemon's machine: the image "
            "public.ecr.aws/docker/library/busybox:stable was not used (no Docker engine "
            "answered)")
    capsys.readouterr()
    assert cli.main(["status", "local", *NS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"Note: {eid[:15]}... {note}"
    assert status_json("local", capsys)["executions"][0]["note"] == note
    # a run on ECS (or with Docker) has no note
    run_to_the_end(clients, settings, "on-ecs")
    assert cli.main(["status", "on-ecs", *NS]) == 0
    assert "Note:" not in capsys.readouterr().out
    assert "note" not in status_json("on-ecs", capsys)["executions"][0]
