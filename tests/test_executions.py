"""The execution state machine: ids, event parsing and final-status rules (pure, table-driven)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from reconciler.core.executions import records as ex
from tests.support.ecs_events import lifecycle, task_event
from tests.support.fixtures import FIXTURES as ALL_FIXTURES

FIXTURES = ALL_FIXTURES / "ecs"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/test/0123456789abcdef0123456789abcdef"
EID = ex.execution_id("my-cron", "2018-02-26T13:50:00Z")


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def pending(**changes) -> ex.Execution:
    base = ex.Execution(execution_id=EID, cron="my-cron", scheduled_at="2018-02-26T13:50:00.000Z",
                        created_at="2018-02-26T13:50:00.500Z")
    return ex.Execution(**{**base.__dict__, **changes})


# -- ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("2018-02-26T13:50:00Z", "2018-02-26T13:50:00.000Z"),
    ("2018-02-26T13:50:00Z", "2018-02-26T14:50:00+01:00"),
    ("2018-02-26T13:50:00z", "2018-02-26T13:50:00.400+00:00"),
])
def test_execution_id_is_the_same_for_every_form_of_the_same_time(a, b):
    assert ex.execution_id("my-cron", a) == ex.execution_id("my-cron", b)


def test_execution_id_differs_by_cron_and_time_and_fits_started_by():
    ids = {ex.execution_id(c, t) for c in ("a", "b") for t in
           ("2018-02-26T13:50:00Z", "2018-02-26T13:51:00Z")}
    assert len(ids) == 4
    assert all(len(i) <= 36 for i in ids)
    assert len({ex.manual_execution_id() for _ in range(50)}) == 50


@pytest.mark.parametrize("bad", ["", "yesterday", "2018-02-26T13:50:00", None, 5])
def test_execution_id_refuses_times_without_zone_or_unparseable(bad):
    with pytest.raises((ValueError, TypeError)):
        ex.execution_id("my-cron", bad)


# -- every fixture ----------------------------------------------------------------------

def _with(envelope: dict, **detail) -> dict:
    copied = copy.deepcopy(envelope)
    copied.setdefault("detail-type", "ECS Task State Change")
    copied["detail"].update(detail)
    return copied


def _api_task_as_event(task: dict) -> dict:
    """The StopTask output (API shape, epoch times) as the event ECS sends (ISO times)."""
    detail = copy.deepcopy(task)
    for key, value in list(detail.items()):
        if key.endswith("At") and isinstance(value, (int, float)):
            detail[key] = datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
    return {"version": "0", "detail-type": "ECS Task State Change", "source": "aws.ecs",
            "time": "2019-07-18T03:44:57Z", "detail": detail}


# (envelope, expected status after applying to a PENDING record, exit code, started, stopped)
FIXTURE_CASES = [
    pytest.param(fixture("task_state_change_RUNNING_fargate_awsdocs.json"),
                 ex.RUNNING, None, "2020-01-23T17:57:58.103Z", None, id="running-fargate"),
    pytest.param(fixture("task_state_change_RUNNING_container_STOPPED_exit0_awsdocs2016.json"),
                 ex.RUNNING, None, "2016-12-06T16:41:06.800Z", None,
                 id="running-while-a-container-stopped"),
    pytest.param(fixture(
        "task_state_change_DEPROVISIONING_desiredSTOPPED_exit0_EssentialContainerExited_captured_2019.json"),
                 ex.SUCCESS, 0, "2019-11-19T20:38:27.975Z", "2019-11-19T21:13:24.000Z",
                 id="deprovisioning-exit0-is-final"),
    pytest.param(_with(fixture("task_state_change_SNIPPET_fargate_spot_TerminationNotice_awsdocs.json"),
                       version=5),
                 ex.RUNNING, None, None, None, id="spot-termination-notice-not-final"),
    pytest.param(_with(fixture(
        "task_state_change_detail_STOPPED_exit1_EssentialContainerExited_captured_2017_PARTIAL.json"),
                       version=3),
                 ex.FAILED, 1, "2017-04-13T21:37:28.746Z", "2017-04-13T21:37:28.867Z",
                 id="stopped-exit1"),
    pytest.param(_api_task_as_event(
        fixture("stop_task_output_STOPPED_TaskFailedToStart_awscli_example.json")["task"]),
                 ex.FAILED_TO_START, None, None, "2019-07-18T03:44:57.252Z",
                 id="task-failed-to-start"),
]


@pytest.mark.parametrize("envelope, status, exit_code, started, stopped", FIXTURE_CASES)
def test_fixture_events_give_the_right_record(envelope, status, exit_code, started, stopped):
    event = ex.parse_task_event(envelope)
    record = ex.apply_event(pending(), event)
    assert record.status == status
    assert record.exit_code == exit_code
    assert record.started_at == started
    assert record.stopped_at == stopped
    assert record.version == envelope["detail"]["version"]
    assert record.task_arn == envelope["detail"]["taskArn"]


def test_deprovisioning_fixture_duration_and_later_stopped_event_keeps_outcome():
    envelope = fixture(
        "task_state_change_DEPROVISIONING_desiredSTOPPED_exit0_EssentialContainerExited_captured_2019.json")
    record = ex.apply_event(pending(), ex.parse_task_event(envelope))
    assert record.duration_s() == pytest.approx(2096.025)
    stopped = _with(envelope, lastStatus="STOPPED", version=5,
                    stoppedAt="2019-11-19T21:14:00.000Z")
    final = ex.apply_event(record, ex.parse_task_event(stopped))
    assert (final.status, final.exit_code, final.version) == (ex.SUCCESS, 0, 5)
    assert final.stopped_at == "2019-11-19T21:14:00.000Z"


@pytest.mark.parametrize("envelope, message", [
    (fixture("task_state_change_SNIPPET_fargate_spot_TerminationNotice_awsdocs.json"),
     "detail.version"),
    (fixture("task_state_change_detail_STOPPED_exit1_EssentialContainerExited_captured_2017_PARTIAL.json"),
     "detail-type"),
    ({"detail-type": "ECS Task State Change", "detail": fixture(
        "stop_task_output_STOPPED_TaskFailedToStart_awscli_example.json")["task"]},
     "detail.createdAt"),
    ({"detail-type": "ECS Task State Change"}, "detail object"),
    ({"detail-type": "ECS Task State Change", "detail": {"lastStatus": "RUNNING", "version": 1}},
     "detail.taskArn"),
    ({"detail-type": "ECS Task State Change",
      "detail": {"taskArn": TASK, "lastStatus": "RUNNING", "version": "2"}}, "detail.version"),
    ({"detail-type": "ECS Task State Change",
      "detail": {"taskArn": TASK, "lastStatus": "STOPPED", "version": 2,
                 "containers": [{"name": "main", "exitCode": "0"}]}}, "exitCode"),
    ([1, 2], "JSON object"),
])
def test_malformed_events_are_refused_with_a_specific_message(envelope, message):
    with pytest.raises(ex.MalformedEvent, match=message):
        ex.parse_task_event(envelope)


def test_other_detail_types_are_not_task_events():
    service = fixture("service_action_SERVICE_TASK_PLACEMENT_FAILURE_RESOURCE_FARGATE_awsdocs.json")
    assert ex.parse_task_event(service) is None
    assert ex.parse_task_event({"detail-type": "Scheduled Event", "detail": {}}) is None


# -- final-status rules -----------------------------------------------------------------

def stopped(**kwargs) -> ex.TaskEvent:
    args = {"task_arn": TASK, "started_by": EID, "last_status": "STOPPED", "version": 4,
            "desired_status": "STOPPED", "started_at": datetime(2018, 2, 26, 13, 50, 3, tzinfo=UTC),
            "stopped_at": datetime(2018, 2, 26, 13, 50, 7, tzinfo=UTC),
            "stop_code": "EssentialContainerExited",
            "stopped_reason": "Essential container in task exited"}
    args.update(kwargs)
    return ex.parse_task_event(task_event(**args))


RULES = [
    ({"main_exit": 0}, ex.SUCCESS, 0, None),
    ({"main_exit": 3}, ex.FAILED, 3, "Essential container in task exited"),
    ({"main_exit": 137, "timeout_exit": 124}, ex.TIMEOUT, 137,
     "timed out (timeout sidecar exited 124)"),
    ({"main_exit": 143, "stop_code": "UserInitiated", "stopped_reason": "replaced by abc"},
     ex.FAILED, 143, "replaced by abc"),
    ({"started_at": None, "stop_code": "TaskFailedToStart",
      "stopped_reason": "CannotPullContainerError: pull image manifest has been retried 5 times"},
     ex.FAILED_TO_START, None,
     "CannotPullContainerError: pull image manifest has been retried 5 times"),
    ({"started_at": None, "stop_code": "TaskFailedToStart",
      "stopped_reason": "ResourceInitializationError: unable to pull secrets"},
     ex.FAILED_TO_START, None, "ResourceInitializationError: unable to pull secrets"),
    ({"started_at": None, "stopped_reason": "Task failed to start"},
     ex.FAILED_TO_START, None, "Task failed to start"),
    ({"stop_code": "SpotInterruption", "stopped_reason": "Your Spot Task was interrupted."},
     ex.FAILED, None, "Your Spot Task was interrupted."),
]


@pytest.mark.parametrize("changes, status, exit_code, reason", RULES)
def test_final_status_rules(changes, status, exit_code, reason):
    record = ex.apply_event(pending(), stopped(**changes))
    assert (record.status, record.exit_code, record.reason) == (status, exit_code, reason)
    assert record.terminal


def test_lifecycle_in_order_gives_pending_running_then_success_with_duration():
    record = pending()
    statuses = []
    for envelope in lifecycle(TASK, EID, main_exit=0, run_seconds=4):
        record = ex.apply_event(record, ex.parse_task_event(envelope)) or record
        statuses.append(record.status)
    assert statuses == [ex.PENDING, ex.RUNNING, ex.SUCCESS, ex.SUCCESS]
    assert record.duration_s() == 4.0
    assert record.version == 4


def test_stopped_before_running_and_duplicates_change_nothing():
    events = [ex.parse_task_event(e) for e in lifecycle(TASK, EID, main_exit=3)]
    record = ex.apply_event(pending(), events[3])
    assert (record.status, record.exit_code) == (ex.FAILED, 3)
    for stale in (events[0], events[1], events[2], events[3]):
        assert ex.apply_event(record, stale) is None
    running = ex.apply_event(pending(), events[1])
    assert ex.apply_event(running, events[1]) is None
    assert ex.apply_event(running, events[0]) is None


def test_events_of_another_task_or_a_skipped_record_change_nothing():
    event = ex.parse_task_event(lifecycle(TASK, EID)[1])
    assert ex.apply_event(pending(task_arn=TASK + "ff"), event) is None
    assert ex.apply_event(pending(status=ex.SKIPPED), event) is None


def test_a_late_stopped_event_settles_a_lost_execution():
    event = ex.parse_task_event(lifecycle(TASK, EID, main_exit=0)[3])
    record = ex.apply_event(pending(status=ex.LOST, version=2), event)
    assert record.status == ex.SUCCESS


def test_record_round_trips_through_its_stored_form():
    record = ex.apply_event(pending(expires_at=1700000000), stopped(main_exit=3))
    stored = json.loads(json.dumps(record.to_dict()))
    assert ex.Execution.from_dict(stored) == record


def test_timeout_decided_before_main_stopped_gets_mains_exit_code_from_the_final_event():
    deactivating = ex.parse_task_event(task_event(
        task_arn=TASK, started_by=EID, last_status="DEACTIVATING", version=3,
        desired_status="STOPPED", timeout_exit=124, main_status="RUNNING",
        started_at=datetime(2018, 2, 26, 13, 50, 3, tzinfo=UTC),
        stopped_at=datetime(2018, 2, 26, 14, 50, 3, tzinfo=UTC)))
    record = ex.apply_event(pending(), deactivating)
    assert (record.status, record.exit_code) == (ex.TIMEOUT, None)
    final = ex.apply_event(record, stopped(version=4, timeout_exit=124, main_exit=137))
    assert (final.status, final.exit_code, final.version) == (ex.TIMEOUT, 137, 4)
