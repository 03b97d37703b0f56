"""`cronctl status`, `list` and `trigger` end to end: dispatch -> task -> events -> status."""

from __future__ import annotations

import json

import pytest

from reconciler import cli
from reconciler.core import executions as ex
from reconciler.service.consumer import EventConsumer
from reconciler.service.dispatch import Dispatcher
from tests.support.ecs_events import (
    lifecycle,
    put_cron,
    send_events,
    tasks_started_by,
)

AT = "2018-02-26T13:50:00Z"
NS = ["--namespace", "test"]





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
