"""The chaos suite's tools, proven with real clients: every fault mode of the proxy as a boto3
client (pointed at the proxy) sees it, and a `cronctl serve` process behind the proxy that
serves, dispatches a signed SNS delivery, is killed while a call is in flight, and is gone."""

from __future__ import annotations

import socket
import threading

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.retries.standard import RetryContext, ThrottlingErrorDetector

from reconciler.adapters.aws import translate
from reconciler.errors import TransientError
from tests.support.faultproxy import (
    ABORTED,
    DROPPED,
    FORWARDED,
    INJECTED,
    STALLED,
    FaultProxy,
)
from tests.support.moto import REGION
from tests.support.serve_process import process_exists
from tests.support.sns import request as http_request
from tests.support.sns_delivery import SnsDelivery, answer_json
from tests.support.waiting import wait_for

# One attempt per call: the client must see each fault itself, not botocore's retry of it.
ONE_ATTEMPT = botocore.config.Config(retries={"total_max_attempts": 1}, connect_timeout=5,
                                     read_timeout=20)
SCHEDULED_AT = "2026-11-27T10:05:00Z"
TARGET = {"Arn": "arn:aws:sns:us-east-1:123456789012:chaos-dispatch",
          "RoleArn": "arn:aws:iam::123456789012:role/chaos-scheduler"}


def client(url: str, service: str):
    return boto3.client(service, endpoint_url=url, config=ONE_ATTEMPT, region_name=REGION)


class Call:
    """A call made on a thread of its own (so the test can watch it in flight)."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.result, self.error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs),
                                        name="chaos-test-call", daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 10.0):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not end"
        return self


def make_table(url: str, name: str = "items") -> None:
    client(url, "dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])


def put(url: str, key: str, table: str = "items"):
    return client(url, "dynamodb").put_item(TableName=table, Item={"id": {"S": key}})


def stored(url: str, key: str, table: str = "items") -> bool:
    return "Item" in client(url, "dynamodb").get_item(TableName=table, Key={"id": {"S": key}})


# -- forwarding ---------------------------------------------------------------------------

def test_every_protocol_is_forwarded_and_named_by_its_operation(proxy, aws):
    sts, ddb, sqs, sns = (client(proxy.url, s) for s in ("sts", "dynamodb", "sqs", "sns"))
    assert sts.get_caller_identity()["Account"] == "123456789012"
    make_table(proxy.url)
    put(proxy.url, "a")
    queue = sqs.create_queue(QueueName="chaos-q")["QueueUrl"]
    assert queue.startswith(proxy.url)              # the emulator built it from our Host
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"][0]["Body"] == \
        "hello"
    sns.create_topic(Name="chaos-dispatch")
    client(proxy.url, "events").put_rule(Name="chaos-r", ScheduleExpression="rate(5 minutes)")
    client(proxy.url, "ecs").create_cluster(clusterName="chaos")
    client(proxy.url, "ec2").describe_vpcs()
    scheduler = client(proxy.url, "scheduler")
    window = {"Mode": "OFF"}
    scheduler.create_schedule(Name="s", ScheduleExpression="rate(5 minutes)",
                              FlexibleTimeWindow=window, Target=TARGET)
    scheduler.get_schedule(Name="s")
    scheduler.update_schedule(Name="s", ScheduleExpression="rate(10 minutes)",
                              FlexibleTimeWindow=window, Target=TARGET)
    assert [s["Name"] for s in scheduler.list_schedules()["Schedules"]] == ["s"]
    scheduler.delete_schedule(Name="s")

    assert proxy.operations() == [
        "sts.GetCallerIdentity", "dynamodb.CreateTable", "dynamodb.PutItem",
        "sqs.CreateQueue", "sqs.SendMessage", "sqs.ReceiveMessage", "sns.CreateTopic",
        "events.PutRule", "ecs.CreateCluster", "ec2.DescribeVpcs",
        "scheduler.CreateSchedule", "scheduler.GetSchedule", "scheduler.UpdateSchedule",
        "scheduler.ListSchedules", "scheduler.DeleteSchedule"]
    for record in proxy.requests():
        assert (record.outcome, record.status, record.upstream_status, record.reached_server,
                record.in_flight) == (FORWARDED, 200, 200, True, False), record.op
    assert proxy.requests("sns.*")[0].params()["Name"] == "chaos-dispatch"
    assert proxy.requests("dynamodb.PutItem")[0].json()["Item"] == {"id": {"S": "a"}}
    # The effects are in the emulator itself.
    assert stored(aws, "a")
    assert client(aws, "events").describe_rule(Name="chaos-r")["ScheduleExpression"] == \
        "rate(5 minutes)"


# -- injected errors ----------------------------------------------------------------------

ERROR_CASES = [
    # service, call, the rule, code and status the client sees, botocore calls it throttling
    ("dynamodb", "list_tables", {"code": "ThrottlingException"}, "ThrottlingException", 400,
     True),
    ("dynamodb", "list_tables", {"code": "ProvisionedThroughputExceededException"},
     "ProvisionedThroughputExceededException", 400, True),
    ("dynamodb", "list_tables", {"status": 503}, "ServiceUnavailable", 503, False),
    ("dynamodb", "list_tables", {"status": 500}, "InternalServerError", 500, False),
    ("ecs", "list_clusters", {"code": "ThrottlingException"}, "ThrottlingException", 400, True),
    ("ecs", "list_clusters", {"status": 500}, "ServerException", 500, False),
    ("events", "list_rules", {}, "ThrottlingException", 400, True),
    ("sqs", "list_queues", {}, "RequestThrottled", 400, True),
    ("sqs", "list_queues", {"status": 503}, "ServiceUnavailable", 503, False),
    ("sns", "list_topics", {}, "Throttled", 429, None),    # modelled, not botocore-retryable
    ("sns", "list_topics", {"status": 500}, "InternalError", 500, False),
    ("sts", "get_caller_identity", {}, "Throttling", 400, True),
    ("ec2", "describe_vpcs", {}, "RequestLimitExceeded", 503, True),
    ("scheduler", "list_schedules", {}, "ThrottlingException", 429, True),
    ("scheduler", "list_schedules", {"status": 500}, "InternalServerException", 500, False),
]


@pytest.mark.parametrize(("service", "call", "rule", "code", "status", "throttling"),
                         ERROR_CASES, ids=[f"{c[0]}-{c[3]}" for c in ERROR_CASES])
def test_an_injected_error_is_the_aws_error_of_that_protocol(proxy, service, call, rule, code,
                                                              status, throttling):
    proxy.fail(f"{service}.*", times=1, **rule)
    aws_client = client(proxy.url, service)
    with pytest.raises(ClientError) as raised:
        getattr(aws_client, call)()
    response = raised.value.response
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    protocol = aws_client.meta.service_model.protocol
    if protocol in ("json", "rest-json"):
        assert headers["x-amzn-errortype"] == code
    else:
        assert headers["content-type"].startswith("text/xml")
    if throttling is not None:
        operation = aws_client.meta.service_model.operation_model(raised.value.operation_name)
        context = RetryContext(attempt_number=1, operation_model=operation,
                               parsed_response=response)
        detector = ThrottlingErrorDetector(retry_event_adapter=None)
        assert detector.is_throttling_error_from_context(context) is throttling
    assert isinstance(translate(raised.value), TransientError)   # what the daemon retries
    [record] = proxy.requests()
    assert (record.outcome, record.status, record.reached_server) == (INJECTED, status, False)
    getattr(aws_client, call)()                     # times=1: the next call goes through
    assert proxy.requests()[-1].outcome == FORWARDED


def test_failing_n_times_then_forwarding(proxy):
    rule = proxy.fail("ecs.ListClusters", code="ThrottlingException", times=2)
    ecs = client(proxy.url, "ecs")
    for _ in range(2):
        with pytest.raises(ClientError):
            ecs.list_clusters()
    ecs.list_clusters()
    assert [r.outcome for r in proxy.requests()] == [INJECTED, INJECTED, FORWARDED]
    assert (rule.hits, rule.active) == (2, False)


def test_failing_for_a_duration_then_forwarding(proxy):
    rule = proxy.fail("sts.*", status=503, for_s=0.5)
    sts = client(proxy.url, "sts")

    def succeeds() -> bool:
        try:
            sts.get_caller_identity()
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ServiceUnavailable"
            return False
        return True

    assert not succeeds()
    wait_for(succeeds, timeout=10, interval=0.05, message="the fault window to end")
    outcomes = [r.outcome for r in proxy.requests()]
    assert outcomes[0] == INJECTED and outcomes[-1] == FORWARDED
    assert not rule.active


def test_failing_until_cleared_and_only_when_the_predicate_holds(proxy, aws):
    make_table(aws, "a")
    make_table(aws, "b")
    proxy.fail("dynamodb.PutItem", status=500,
               when=lambda request: request.json()["TableName"] == "a")
    for _ in range(3):
        with pytest.raises(ClientError) as raised:
            put(proxy.url, "k", table="a")
        assert raised.value.response["Error"]["Code"] == "InternalServerError"
    put(proxy.url, "k", table="b")                   # the other table is not affected
    proxy.clear()
    put(proxy.url, "k", table="a")
    assert stored(aws, "k", "a") and stored(aws, "k", "b")
    assert [r.outcome for r in proxy.requests()] == [INJECTED] * 3 + [FORWARDED] * 2


# -- stalls -------------------------------------------------------------------------------

def test_a_stalled_call_is_in_flight_and_reaches_the_server_only_once_released(proxy, aws):
    make_table(aws)
    stall = proxy.stall("dynamodb.PutItem", forward_first=False)
    call = Call(put, proxy.url, "held")
    held = stall.wait_entered(timeout=10)
    assert proxy.wait_request("dynamodb.PutItem", lambda r: r.in_flight) is held
    assert (held.outcome, held.reached_server, held.stalled) == (STALLED, False, True)
    assert proxy.in_flight("dynamodb.*") == [held] and call.running
    assert not stored(aws, "held")                   # not forwarded while held
    stall.release()
    call.join()
    assert call.error is None and stored(aws, "held")
    assert (held.outcome, held.status, held.reached_server) == (FORWARDED, 200, True)
    put(proxy.url, "after")                          # times=1: the stall holds no more
    assert proxy.requests()[-1].stalled is False


def test_a_call_stalled_after_forwarding_has_its_effect_while_the_answer_is_held(proxy, aws):
    make_table(aws)
    stall = proxy.stall("dynamodb.PutItem", forward_first=True)
    call = Call(put, proxy.url, "done")
    held = stall.wait_entered(timeout=10)
    wait_for(lambda: stored(aws, "done"), timeout=10, message="the effect in the emulator")
    assert call.running and held.in_flight and held.reached_server
    assert held.upstream_status == 200 and held.status is None
    stall.release()
    call.join()
    assert call.error is None and held.outcome == FORWARDED


def test_a_stall_ends_by_itself_at_its_deadline(proxy):
    proxy.stall("sts.GetCallerIdentity", hold_s=0.3)
    client(proxy.url, "sts").get_caller_identity()
    [record] = proxy.requests()
    assert record.stalled and record.outcome == FORWARDED
    assert record.ended - record.started >= 0.3


def test_an_aborted_stall_answers_nothing_and_forwards_nothing(proxy, aws):
    make_table(aws)
    stall = proxy.stall("dynamodb.PutItem")
    call = Call(put, proxy.url, "never")
    held = stall.wait_entered(timeout=10)
    stall.abort()
    call.join()
    assert isinstance(call.error, ConnectionClosedError)
    assert (held.outcome, held.reached_server, held.status) == (ABORTED, False, None)
    assert not stored(aws, "never")


def test_stop_ends_every_held_call_and_joins_its_threads(aws):
    queue = client(aws, "sqs").create_queue(QueueName="chaos-idle")["QueueUrl"]
    own = FaultProxy(aws).start()
    stall = own.stall("sts.*", times=None)
    calls = [Call(client(own.url, "sts").get_caller_identity) for _ in range(2)]
    stall.wait_entered(timeout=10, count=2)
    poll = Call(client(own.url, "sqs").receive_message, QueueUrl=queue, WaitTimeSeconds=20)
    own.wait_request("sqs.ReceiveMessage", lambda r: r.reached_server and r.in_flight)
    assert own.stop(timeout=5)                      # long before the long poll would end
    for call in [*calls, poll]:
        assert isinstance(call.join().error, ConnectionClosedError)
    assert [r.outcome for r in own.requests()] == [ABORTED, ABORTED, DROPPED]


# -- lost responses -----------------------------------------------------------------------

def test_a_dropped_response_has_its_effect_but_the_client_sees_the_connection_closed(proxy,
                                                                                   aws):
    make_table(aws)
    proxy.drop_response("dynamodb.PutItem", times=1)
    with pytest.raises(ConnectionClosedError):
        put(proxy.url, "lost")
    assert stored(aws, "lost")
    [record] = proxy.requests()
    assert (record.outcome, record.reached_server, record.upstream_status, record.status) == \
        (DROPPED, True, 200, None)
    put(proxy.url, "next")                           # times=1
    assert proxy.requests()[-1].outcome == FORWARDED


def test_a_response_replaced_by_a_500_has_its_effect_too(proxy, aws):
    make_table(aws)
    proxy.drop_response("dynamodb.PutItem", answer=500)
    with pytest.raises(ClientError) as raised:
        put(proxy.url, "lost")
    assert raised.value.response["Error"]["Code"] == "InternalServerError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert stored(aws, "lost")
    assert proxy.requests()[0].outcome == DROPPED


# -- SNS deliveries -----------------------------------------------------------------------

def test_redelivery_gives_up_within_its_bounds():
    with socket.socket() as probe:                  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/sns"
    sns = SnsDelivery("arn:aws:sns:us-east-1:123456789012:chaos-dispatch")
    body = sns.notification("hello", SCHEDULED_AT)
    answers = sns.deliver(url, body, attempts=3, backoff_s=0.01)
    assert [status for status, _ in answers] == [0, 0, 0]
    assert "ConnectionRefusedError" in answers[0][1]
    assert len(sns.deliver(url, body, attempts=1000, within_s=0.3, backoff_s=0.05)) < 1000


# -- a daemon process behind the proxy ----------------------------------------------------

def test_a_daemon_behind_the_proxy_serves_dispatches_and_dies_on_kill9(daemon_factory,
                                                                     chaos_ns, proxy):
    daemon = daemon_factory()
    assert http_request(daemon.url, "GET", "/healthz")[0] == 200
    answers = chaos_ns.sns().deliver(daemon.sns_url,
                                     chaos_ns.sns().notification("hello", SCHEDULED_AT))
    assert [(status, answer_json(a).get("status")) for a in answers
            for status in [a[0]]] == [(200, "started")]
    eid = chaos_ns.execution_id(SCHEDULED_AT)
    [task] = chaos_ns.tasks_started_by(eid)
    [run_task] = proxy.requests("ecs.RunTask")
    assert run_task.outcome == FORWARDED and run_task.json()["startedBy"] == eid
    assert answer_json(answers[0])["task_arn"] == task["taskArn"]
    pid = daemon.pid
    assert daemon.kill9() == -9
    assert not process_exists(pid) and not daemon.running
    wait_for(lambda: daemon.output_ended, timeout=10, message="the output pipes to close")


def test_a_daemon_killed_while_run_task_is_held_leaves_the_call_to_aws(daemon_factory,
                                                                      chaos_ns, proxy):
    daemon = daemon_factory()
    stall = proxy.stall("ecs.RunTask", forward_first=False)
    sns = chaos_ns.sns()
    delivery = Call(sns.post, daemon.sns_url, sns.notification("hello", SCHEDULED_AT))
    held = stall.wait_entered(timeout=15)
    eid = chaos_ns.execution_id(SCHEDULED_AT)
    assert held.json()["startedBy"] == eid and not held.reached_server
    daemon.kill9()
    assert delivery.join().result[0] == 0           # SNS got no answer: it would redeliver
    assert chaos_ns.tasks_started_by(eid) == []
    stall.release()                                 # AWS had the request: it runs the task
    wait_for(lambda: not held.in_flight, timeout=10, message="the held RunTask to end")
    assert held.reached_server and held.upstream_status == 200
    assert len(chaos_ns.tasks_started_by(eid)) == 1


def test_sns_redelivers_while_the_daemon_answers_5xx(daemon_factory, chaos_ns, proxy):
    daemon = daemon_factory()
    daemon.wait_event("reconcile.pass", timeout=30)
    outage = proxy.fail("dynamodb.*", status=503)   # DynamoDB unavailable until cancelled

    def on_answer(attempt: int, status: int, _body: str) -> None:
        if status >= 500:
            outage.cancel()

    sns = chaos_ns.sns()
    answers = sns.deliver(daemon.sns_url, sns.notification("hello", SCHEDULED_AT),
                          on_answer=on_answer, backoff_s=0.05)
    assert [status for status, _ in answers] == [503, 200], answers
    assert answer_json(answers[1])["status"] == "started"
    assert proxy.requests("dynamodb.*", outcome=INJECTED)
    assert len(chaos_ns.tasks_started_by(chaos_ns.execution_id(SCHEDULED_AT))) == 1
    assert daemon.terminate(timeout=35) == 0         # SIGTERM: a clean stop
    assert daemon.events("component stopped")
