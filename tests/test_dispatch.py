"""Dispatch against the moto server: one task per execution, concurrency policies, failures."""

from __future__ import annotations

import json
import threading

import pytest
from botocore.awsrequest import AWSResponse

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.core.executions import records as ex
from reconciler.errors import TransientError
from reconciler.service.execution.dispatch import Dispatcher, RetryLater
from tests.support.ecs_events import put_cron, tasks_started_by

AT = "2018-02-26T13:50:00Z"
LATER = "2018-02-26T13:55:00Z"





def all_executions(clients, settings) -> list[dict]:
    return clients.client("dynamodb").scan(TableName=settings.executions_table)["Items"]


def test_dispatch_starts_one_tagged_task_and_records_it(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    eid = ex.execution_id("hello", AT)
    assert (outcome.status, outcome.execution_id) == ("started", eid)
    [task] = tasks_started_by(clients, settings, eid)
    assert task["taskArn"] == outcome.task_arn
    assert task["taskDefinitionArn"] == td
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["cronctl:cron"] == "hello" and tags["cronctl:execution"] == eid
    assert {c["name"] for c in task["overrides"]["containerOverrides"]} == {"main", "timeout"}
    record = ExecutionStore(clients, settings).get(eid)
    assert (record.status, record.task_arn, record.trigger) == ("PENDING", task["taskArn"], "schedule")
    assert record.scheduled_at == "2018-02-26T13:50:00.000Z"
    created = ex.parse_time(record.created_at).timestamp()
    assert record.expires_at == pytest.approx(created + 30 * 86400, abs=2)
    assert OverlapLocks(clients, settings).holder("hello") == eid


def test_a_hundred_concurrent_deliveries_start_exactly_one_task(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatchers = [Dispatcher(AwsClients(settings), settings) for _ in range(4)]
    outcomes, errors = [], []
    gate = threading.Barrier(100, timeout=30)

    def deliver(n):
        try:
            gate.wait()
            outcomes.append(dispatchers[n % 4].dispatch("hello", AT).status)
        except RetryLater:  # the first attempt was starting it: SNS would deliver again
            outcomes.append("in_progress")
        except Exception as exc:  # recorded and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(n,), name=f"cronctl-test-deliver-{n}")
               for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert outcomes.count("started") == 1
    assert set(outcomes) <= {"started", "duplicate", "in_progress"}
    # SNS's redeliveries of the ones answered 503 find the run started.
    assert {dispatchers[0].dispatch("hello", AT).status for _ in range(3)} == {"duplicate"}
    assert len(tasks_started_by(clients, settings, ex.execution_id("hello", AT))) == 1
    assert len(all_executions(clients, settings)) == 1


def test_forbid_skips_while_the_last_run_is_active_and_starts_once_it_ended(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="forbid")
    dispatcher = Dispatcher(clients, settings)
    first = dispatcher.dispatch("hello", AT)
    second = dispatcher.dispatch("hello", LATER)
    assert second.status == "skipped"
    assert first.execution_id in second.reason
    store = ExecutionStore(clients, settings)
    skipped = store.get(second.execution_id)
    assert (skipped.status, skipped.task_arn) == ("SKIPPED", None)
    assert tasks_started_by(clients, settings, second.execution_id) == []
    # The first run ends (as the consumer would record it): the next one may start.
    done = ex.Execution(**{**store.get(first.execution_id).__dict__, "status": "SUCCESS",
                           "version": 4})
    assert store.apply(done, None)
    third = dispatcher.dispatch("hello", "2018-02-26T14:00:00Z")
    assert third.status == "started"
    assert OverlapLocks(clients, settings).holder("hello") == third.execution_id


def test_replace_stops_the_running_task_and_starts_a_new_one(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="replace")
    dispatcher = Dispatcher(clients, settings)
    first = dispatcher.dispatch("hello", AT)
    second = dispatcher.dispatch("hello", LATER)
    assert (first.status, second.status) == ("started", "started")
    [old] = tasks_started_by(clients, settings, first.execution_id)
    assert old["lastStatus"] == "STOPPED"
    assert old["stoppedReason"] == f"replaced by {second.execution_id}"
    [new] = tasks_started_by(clients, settings, second.execution_id)
    assert new["lastStatus"] != "STOPPED"
    assert OverlapLocks(clients, settings).holder("hello") == second.execution_id


def test_allow_starts_a_second_task_without_a_lock(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="allow")
    dispatcher = Dispatcher(clients, settings)
    outcomes = [dispatcher.dispatch("hello", at) for at in (AT, LATER)]
    assert [o.status for o in outcomes] == ["started", "started"]
    assert all(len(tasks_started_by(clients, settings, o.execution_id)) == 1 for o in outcomes)
    assert OverlapLocks(clients, settings).holder("hello") is None


def test_force_starts_despite_forbid_and_takes_the_lock(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = Dispatcher(clients, settings)
    dispatcher.dispatch("hello", AT)
    forced = dispatcher.dispatch("hello", LATER, trigger="manual", force=True)
    assert forced.status == "started"
    assert OverlapLocks(clients, settings).holder("hello") == forced.execution_id
    assert ExecutionStore(clients, settings).get(forced.execution_id).trigger == "manual"


def test_runtask_refusal_is_failed_to_start_with_the_reason_and_the_lock_released(plane, settings):
    clients, _ = plane
    missing = "arn:aws:ecs:us-east-1:123456789012:task-definition/does-not-exist:1"
    put_cron(clients, settings, "hello", missing)
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert outcome.status == "failed_to_start"
    assert "Unable to describe task definition" in outcome.reason
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    assert (record.status, record.reason) == ("FAILED_TO_START", outcome.reason)
    assert OverlapLocks(clients, settings).holder("hello") is None


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


INSTANCE = "arn:aws:ecs:us-east-1:123456789012:container-instance/test/4b5b2ac6a4f34d8e"


def answer_runtask_with(clients, reason: str):
    """AWS answers 200 with ``failures`` when no capacity fits; the emulator never does, so the
    documented response shape is injected at the HTTP layer of the real client. Returns the
    function that takes the injection away again."""
    body = json.dumps({"tasks": [], "failures": [{"arn": INSTANCE, "reason": reason}]})

    def answer_with_failures(request, **_kwargs):
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _Body(body.encode()))

    events = clients.client("ecs").meta.events
    events.register("before-send.ecs.RunTask", answer_with_failures)
    return lambda: events.unregister("before-send.ecs.RunTask", answer_with_failures)


def test_capacity_failures_are_retried_by_sns_and_the_run_starts_once_capacity_returns(
        plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    restore = answer_runtask_with(clients, "RESOURCE:MEMORY")
    dispatcher = Dispatcher(clients, settings)
    status, body = dispatcher.handle_sns_message(
        {"Message": json.dumps({"cron": "hello", "scheduled_at": AT})})
    assert status == 503 and "RESOURCE:MEMORY" in json.loads(body)["error"]
    eid = ex.execution_id("hello", AT)
    record = ExecutionStore(clients, settings).get(eid)
    assert (record.status, record.task_arn, record.claim_until) == ("PENDING", None, None)
    assert tasks_started_by(clients, settings, eid) == []
    restore()
    again = dispatcher.dispatch("hello", AT)   # SNS's next delivery
    assert (again.status, again.resumed) == ("started", True)
    assert len(tasks_started_by(clients, settings, eid)) == 1
    assert OverlapLocks(clients, settings).holder("hello") == eid


def test_capacity_failures_past_the_start_deadline_end_failed_to_start(plane, settings):
    clients, td = plane
    settings = settings.with_(start_deadline_s=0.001)
    put_cron(clients, settings, "hello", td)
    answer_runtask_with(clients, "RESOURCE:MEMORY")
    dispatcher = Dispatcher(clients, settings)
    with pytest.raises(TransientError):
        dispatcher.dispatch("hello", AT)
    outcome = dispatcher.dispatch("hello", AT)
    assert outcome.status == "failed_to_start"
    assert outcome.reason.startswith("not started by its start deadline")
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    assert (record.status, record.reason) == ("FAILED_TO_START", outcome.reason)
    assert OverlapLocks(clients, settings).holder("hello") is None


def test_runtask_refusals_such_as_attribute_are_failed_to_start(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    answer_runtask_with(clients, "ATTRIBUTE")
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert outcome.status == "failed_to_start"
    assert outcome.reason == f"ATTRIBUTE ({INSTANCE})"
    assert ExecutionStore(clients, settings).get(outcome.execution_id).status == "FAILED_TO_START"
    assert OverlapLocks(clients, settings).holder("hello") is None
    assert tasks_started_by(clients, settings, outcome.execution_id) == []


def test_cron_without_task_definition_fails_to_start(plane, settings):
    clients, _ = plane
    put_cron(clients, settings, "hello", None)
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert outcome.status == "failed_to_start" and "no task definition" in outcome.reason
    assert OverlapLocks(clients, settings).holder("hello") is None


def test_unknown_and_suspended_crons_start_nothing(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "sleepy", td, suspend=True)
    dispatcher = Dispatcher(clients, settings)
    assert dispatcher.dispatch("nobody", AT).status == "unknown_cron"
    assert dispatcher.dispatch("sleepy", AT).status == "suspended"
    assert dispatcher.dispatch("sleepy", AT, trigger="manual").status == "suspended"
    assert all_executions(clients, settings) == []
    assert clients.client("ecs").list_tasks(cluster=settings.cluster_name)["taskArns"] == []


def sns(message: str) -> dict:
    return {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:test-dispatch", "Message": message,
            "Timestamp": "2018-02-26T13:50:00.123Z", "SignatureVersion": "2"}


@pytest.mark.parametrize("message, error", [
    ("{not json", "not JSON"),
    ('["hello"]', "not a JSON object"),
    ('{"cron": "Hello!", "scheduled_at": "2018-02-26T13:50:00Z"}', "Message.cron"),
    ('{"cron": "hello"}', "Message.scheduled_at"),
    ('{"cron": "hello", "scheduled_at": "2018-02-26 13:50"}', "Message.scheduled_at"),
])
def test_sns_garbage_is_acknowledged_and_starts_nothing(plane, settings, message, error):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    status, body = Dispatcher(clients, settings).handle_sns_message(sns(message))
    assert status == 200
    assert json.loads(body)["status"] == "invalid" and error in json.loads(body)["error"]
    assert all_executions(clients, settings) == []


def test_sns_message_dispatches_and_redelivery_is_a_no_op(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = Dispatcher(clients, settings)
    message = sns(json.dumps({"cron": "hello", "scheduled_at": AT}))
    first, second = dispatcher.handle_sns_message(message), dispatcher.handle_sns_message(message)
    assert first[0] == second[0] == 200
    assert json.loads(first[1])["status"] == "started"
    assert json.loads(second[1])["status"] == "duplicate"
    unknown = dispatcher.handle_sns_message(sns(json.dumps({"cron": "nobody", "scheduled_at": AT})))
    assert unknown[0] == 200 and json.loads(unknown[1])["status"] == "unknown_cron"


def test_sns_message_gets_503_when_the_tables_are_unavailable(aws, settings):
    clients = AwsClients(settings)          # nothing bootstrapped: every table is missing
    status, body = Dispatcher(clients, settings).handle_sns_message(
        sns(json.dumps({"cron": "hello", "scheduled_at": AT})))
    assert status == 503 and json.loads(body)["status"] == "retry"


def test_sns_message_gets_503_and_starts_nothing_while_dynamodb_throttles(plane, settings):
    """DynamoDB's throttling answer (HTTP 400, AWS's JSON error shape) is injected at the HTTP
    layer of the real client: the emulator never throttles. SNS must retry, so 503."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    throttled = json.dumps({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded. "
                   "Consider increasing your provisioning level with the UpdateTable API."})

    def throttle(request, **_kwargs):
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"},
                           _Body(throttled.encode()))

    busy = AwsClients(settings)
    for op in ("PutItem", "TransactWriteItems"):   # the record's write (with the lock)
        busy.client("dynamodb").meta.events.register(f"before-send.dynamodb.{op}", throttle)
    message = sns(json.dumps({"cron": "hello", "scheduled_at": AT}))
    status, body = Dispatcher(busy, settings).handle_sns_message(message)
    assert status == 503 and json.loads(body)["status"] == "retry"
    assert all_executions(clients, settings) == []
    assert clients.client("ecs").list_tasks(cluster=settings.cluster_name)["taskArns"] == []
    # SNS's retry, once DynamoDB answers again, starts the run.
    status, body = Dispatcher(clients, settings).handle_sns_message(message)
    assert (status, json.loads(body)["status"]) == (200, "started")


def test_history_days_sets_the_expiry_of_execution_records(plane, settings):
    from reconciler.cli import build_parser
    from reconciler.commands.common import settings_from_args

    clients, td = plane
    put_cron(clients, settings, "hello", td)
    args = build_parser().parse_args(["serve", "--history-days", "7"])
    kept_a_week = settings.with_(history_days=settings_from_args(args).history_days)
    outcome = Dispatcher(clients, kept_a_week).dispatch("hello", AT)
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    created = ex.parse_time(record.created_at).timestamp()
    assert record.expires_at == pytest.approx(created + 7 * 86400, abs=2)


def test_a_warmed_dispatcher_makes_its_first_dispatch_without_the_network_lookup(plane,
                                                                               settings):
    """The daemon looks the default VPC's network up when it is built: the first dispatch
    then makes only the calls of any other (no EC2 call)."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = Dispatcher(clients, settings)
    with clients.counter.scope() as warm_calls:
        dispatcher.warm()
    assert any(op.startswith("ec2.") for op in warm_calls)
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", AT)
    assert outcome.status == "started"
    assert not [op for op in calls if op.startswith("ec2.")], calls
    assert calls.get("ecs.RunTask") == 1
