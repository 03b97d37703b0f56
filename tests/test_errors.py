"""Error translation: which AWS answers are retried, which are permanent, and how a reached
service quota reads; and that an AWS call is attempted exactly as often as we decide."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from reconciler.adapters.aws import AwsClients, call, call_retrying, translate
from reconciler.errors import (
    Conflict,
    NotFound,
    PermanentError,
    QuotaExceeded,
    TransientError,
)
from reconciler.service.control.reconcile import run_pass
from reconciler.settings import Settings
from tests.support.moto import REGION
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons

# AWS's own message for a reached EventBridge quota (PutRule: rules per bus; PutTargets:
# targets per rule), as seen in the error reports of EventBridge users.
EVENTS_QUOTA_MESSAGE = "The requested resource exceeds the maximum number allowed."


def client_error(operation: str, code: str, status: int, message: str) -> ClientError:
    """A ``ClientError`` as botocore builds it from an AWS error answer."""
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


# --- translate: quotas ------------------------------------------------------------------------

QUOTAS = [
    # operation, code, HTTP status, AWS's message, fragments of our message
    ("PutRule", "LimitExceededException", 400, EVENTS_QUOTA_MESSAGE,
     ["the event bus's rules quota (300 by default", "request an increase in Service Quotas",
      "or use the scheduler backend (--scheduler scheduler)"]),
    ("PutTargets", "LimitExceededException", 400, EVENTS_QUOTA_MESSAGE,
     ["the rule's targets quota (5 targets per rule)", "cannot be raised"]),
    ("CreateSchedule", "ServiceQuotaExceededException", 402, "Schedule quota exceeded.",
     ["EventBridge Scheduler schedules quota", "Service Quotas"]),
    ("UpdateSchedule", "ServiceQuotaExceededException", 402, "",
     ["EventBridge Scheduler schedules quota", "Service Quotas"]),
    ("CreateScheduleGroup", "ServiceQuotaExceededException", 402, "",
     ["schedule groups quota (500 per Region by default)", "Service Quotas"]),
    ("RegisterTaskDefinition", "LimitExceededException", 400,
     "The limit for the resource was exceeded.",
     ["Amazon ECS task definition quota", "Service Quotas",
      "deregister and delete task definition revisions"]),
    # ECS says a task definition quota is reached with a ClientException
    ("RegisterTaskDefinition", "ClientException", 400,
     "Too many revisions for task definition family.",
     ["Amazon ECS task definition quota", "'Revisions per task definition family'"]),
    ("CreateTable", "LimitExceededException", 400,
     "Subscriber limit exceeded: There is a limit of 2500 tables per subscriber",
     ["DynamoDB tables quota (2,500 per Region by default)", "Service Quotas"]),
    ("CreateTopic", "TopicLimitExceeded", 403, "Topic limit exceeded",
     ["Amazon SNS topics quota", "Service Quotas"]),
    ("Subscribe", "SubscriptionLimitExceeded", 403, "Subscription limit exceeded",
     ["Amazon SNS subscriptions quota", "Service Quotas"]),
    ("TagResource", "TagLimitExceeded", 400,
     "Could not complete request: tag quota of per resource exceeded",
     ["tags quota (50 tags)", "cannot be raised"]),
    ("ReceiveMessage", "OverLimit", 403, "Too many messages in flight.",
     ["in-flight messages quota"]),
    ("CreateLogGroup", "LimitExceededException", 400, "Resource limit exceeded.",
     ["CloudWatch Logs log groups quota", "Service Quotas"]),
    ("CreateRole", "LimitExceeded", 409, "Cannot exceed quota for RolesPerAccount: 1000",
     ["a service quota of CreateRole", "Service Quotas"]),
    ("CreateTrainingJob", "ResourceLimitExceeded", 400, "The account-level service limit",
     ["a service quota of CreateTrainingJob"]),
    ("RunInstances", "VcpuLimitExceeded", 400, "You have requested more vCPU capacity",
     ["a service quota of RunInstances"]),
]


@pytest.mark.parametrize("operation, code, status, text, fragments", QUOTAS,
                         ids=[f"{q[0]}-{q[1]}" for q in QUOTAS])
def test_a_reached_quota_is_permanent_and_names_the_quota_and_the_way_out(
        operation, code, status, text, fragments):
    error = translate(client_error(operation, code, status, text))
    assert type(error) is QuotaExceeded
    assert isinstance(error, PermanentError) and not isinstance(error, TransientError)
    assert error.code == code
    message = str(error)
    assert message.startswith(f"{operation}: ")
    assert " is reached: " in message
    for fragment in fragments:
        assert fragment in message, message
    assert error.quota and error.quota in message
    assert f"({code}: {text})" in message if text else f"({code})" in message


def test_the_put_rule_message_reads_as_one_sentence():
    error = translate(client_error("PutRule", "LimitExceededException", 400,
                                   EVENTS_QUOTA_MESSAGE))
    assert str(error) == (
        "PutRule: the event bus's rules quota (300 by default, 100 in some Regions) is "
        "reached: request an increase in Service Quotas (service Amazon EventBridge, quota "
        "'Number of rules'), or use the scheduler backend (--scheduler scheduler) "
        f"(LimitExceededException: {EVENTS_QUOTA_MESSAGE})")


# --- translate: throttling and the rest -------------------------------------------------------

OTHERS = [
    # operation, code, HTTP status, AWS's message, expected class
    ("PutRule", "ThrottlingException", 400, "Rate exceeded", TransientError),
    ("CreateSchedule", "ThrottlingException", 429, "Rate exceeded", TransientError),
    ("Publish", "Throttled", 429, "Rate exceeded", TransientError),
    ("Invoke", "TooManyRequestsException", 429, "Rate Exceeded.", TransientError),
    ("DescribeVpcs", "RequestLimitExceeded", 503, "Request limit exceeded.", TransientError),
    ("PutItem", "RequestLimitExceeded", 400,
     "Throughput exceeds the current throughput limit for your account.", TransientError),
    ("PutItem", "ProvisionedThroughputExceededException", 400,
     "The level of configured provisioned throughput for the table was exceeded.",
     TransientError),
    # A quota-named code sent with 429 Too Many Requests is a rate (API Gateway, Kinesis).
    ("GetExport", "LimitExceededException", 429, "Too Many Requests", TransientError),
    # DynamoDB's cap on concurrent control-plane operations passes on its own.
    ("UpdateTimeToLive", "LimitExceededException", 400,
     "Subscriber limit exceeded: Only 10 tables can be created, updated, or deleted "
     "simultaneously", TransientError),
    # ECS refuses concurrent registrations in one family: retry.
    ("RegisterTaskDefinition", "ClientException", 400,
     "Too many concurrent attempts to create a new revision of the specified family.",
     TransientError),
    ("CreateSchedule", "ServiceQuotaExceededException", 402, "Request rate exceeded",
     TransientError),
    ("PutItem", "InternalServerError", 500, "Internal server error", TransientError),
    ("ListRules", "ServiceUnavailable", 503, "", TransientError),
    ("ListRules", "502", 502, "Bad Gateway", TransientError),
    ("GetItem", "ResourceNotFoundException", 400, "Requested resource not found", NotFound),
    ("PutItem", "ConditionalCheckFailedException", 400, "The conditional request failed",
     Conflict),
    ("RegisterTaskDefinition", "ClientException", 400,
     "Actual length: '66420'. Max allowed length is '65536' bytes.", PermanentError),
    ("PutRule", "ValidationException", 400, "Parameter ScheduleExpression is not valid.",
     PermanentError),
    ("RunTask", "AccessDeniedException", 400, "User is not authorized", PermanentError),
]


@pytest.mark.parametrize("operation, code, status, text, expected", OTHERS,
                         ids=[f"{o[0]}-{o[1]}-{o[2]}" for o in OTHERS])
def test_throttling_server_errors_and_the_rest_keep_their_class(
        operation, code, status, text, expected):
    error = translate(client_error(operation, code, status, text))
    assert type(error) is expected
    assert not isinstance(error, QuotaExceeded)
    assert str(error) == f"{operation}: {code}: {text}"


# --- against the moto server: quotas it enforces ----------------------------------------------

def test_a_real_cloudwatch_logs_quota_error_is_not_retried(settings):
    """moto enforces CloudWatch Logs' 10 resource policies per Region with AWS's
    ``LimitExceededException``: once permanent, one call, no retry."""
    clients = AwsClients(settings)
    logs = clients.client("logs")
    document = json.dumps({"Version": "2012-10-17", "Statement": []})
    for index in range(10):
        call_retrying(logs.put_resource_policy, policyName=f"p{index}",
                      policyDocument=document)
    before = clients.counter.total()
    with pytest.raises(QuotaExceeded) as raised:
        call_retrying(logs.put_resource_policy, policyName="p10", policyDocument=document)
    assert clients.counter.total() == before + 1
    assert raised.value.code == "LimitExceededException"
    assert str(raised.value).startswith("PutResourcePolicy: a service quota of "
                                        "PutResourcePolicy is reached: request an increase")


def test_a_real_sns_tag_quota_error_names_the_tags_quota(settings):
    clients = AwsClients(settings)
    sns = clients.client("sns")
    arn = sns.create_topic(Name="tagged")["TopicArn"]
    tags = [{"Key": f"k{index}", "Value": "v"} for index in range(51)]
    with pytest.raises(QuotaExceeded, match=r"the resource's tags quota \(50 tags\) is "
                                            r"reached") as raised:
        call_retrying(sns.tag_resource, ResourceArn=arn, Tags=tags)
    assert raised.value.code == "TagLimitExceeded"
    assert clients.counter.snapshot()["sns.TagResource"] == 1


# --- a quota reached during a reconcile pass --------------------------------------------------

class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


def _events_quota_answer(request) -> AWSResponse:
    """EventBridge's answer when the bus's rules quota is reached: HTTP 400, AWS JSON 1.1 with
    ``__type`` (the shape of every EventBridge error) and AWS's message."""
    body = json.dumps({"__type": "LimitExceededException", "message": EVENTS_QUOTA_MESSAGE})
    return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1",
                                          "x-amzn-RequestId": "0c9e2c1e-quota"},
                       _Body(body.encode()))


def _scheduler_quota_answer(request) -> AWSResponse:
    """EventBridge Scheduler's answer (REST-JSON): HTTP 402 and ``x-amzn-ErrorType``
    ``ServiceQuotaExceededException`` as its service model declares; the message is ours."""
    body = json.dumps({"Message": "The request exceeds a service quota."})
    return AWSResponse(request.url, 402, {"Content-Type": "application/json",
                                          "x-amzn-ErrorType": "ServiceQuotaExceededException",
                                          "x-amzn-RequestId": "0c9e2c1e-quota"},
                       _Body(body.encode()))


@pytest.mark.parametrize("backend, event, answer, fragment", [
    ("rules", "before-send.events.PutRule", _events_quota_answer,
     "the event bus's rules quota (300 by default, 100 in some Regions) is reached: request an "
     "increase in Service Quotas (service Amazon EventBridge, quota 'Number of rules'), or use "
     "the scheduler backend (--scheduler scheduler)"),
    ("scheduler", "before-send.scheduler.CreateSchedule", _scheduler_quota_answer,
     "EventBridge Scheduler schedules quota (per Region) is reached: request an increase in "
     "Service Quotas"),
])
def test_a_quota_reached_in_a_pass_fails_that_crons_change_with_the_message(
        settings, tmp_path, backend, event, answer, fragment):
    settings = settings.with_(repo=str(tmp_path), scheduler=backend)
    clients = prepare(settings)
    write_crons(tmp_path, {"first": cron_yaml("rate(5 minutes)"),
                           "second": cron_yaml("rate(1 hour)")})
    service = event.split(".")[1]
    refused: list[str] = []

    def quota_reached_for_second(request, **_kwargs):
        name = json.loads(request.body or b"{}").get("Name") or request.url.rsplit("/", 1)[-1]
        if name.endswith("second"):
            refused.append(name)
            return answer(request)
        return None

    clients.client(service).meta.events.register(event, quota_reached_for_second)
    result = run_pass(clients, settings, dry_run=False)

    assert not result.ok and result.errors == ()
    assert [(e.cron, e.resource, e.action) for e in result.apply_errors] == [
        ("second", "schedule", "create")]
    assert fragment in result.apply_errors[0].message
    assert len(refused) == 1  # permanent: the request was not repeated
    state = live_state(clients, settings)
    assert sorted(state["registry"]) == ["first"]
    scheduled = state["rules"] if backend == "rules" else state["schedules"]
    assert [name.rsplit("-", 1)[-1] for name in scheduled] == ["first"]


# --- attempts: botocore makes one, tenacity the rest ------------------------------------------

class _FailingServer:
    """An HTTP server on 127.0.0.1 that answers every request 500 or 503 (alternately) with
    DynamoDB's JSON error shape, and counts the requests it received."""

    def __init__(self) -> None:
        counter = self
        self.requests = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with counter._lock:
                    counter.requests += 1
                    status = 500 if counter.requests % 2 else 503
                body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#"
                                             "InternalServerError",
                                   "message": "Internal server error"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._server.timeout = 0.05
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="cronctl-test-failing-http")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._server.handle_request()

    def __enter__(self) -> _FailingServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.server_close()
        assert not self._thread.is_alive()


def test_botocore_makes_one_attempt_and_call_retrying_five(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "10")  # the client's own setting wins
    with _FailingServer() as server:
        clients = AwsClients(Settings(endpoint_url=server.url, region=REGION))
        dynamodb = clients.client("dynamodb")

        with pytest.raises(TransientError):
            call(dynamodb.list_tables)
        assert server.requests == 1

        with pytest.raises(TransientError):
            call_retrying(dynamodb.list_tables)
        assert server.requests == 1 + 5
        assert clients.counter.snapshot() == {"dynamodb.ListTables": 6}
