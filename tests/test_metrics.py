"""``GET /metrics``: a real daemon (``build_daemon``) whose AWS traffic goes through a fault
proxy in front of the moto server runs a pass, takes SNS deliveries (one throttled by AWS,
one duplicate, one skipped, one for an unknown cron, one that AWS throttles until dispatch
gives up and the watchdog resumes), consumes ECS events, and then shows every series with the
values that happened. The throttle counting is also checked against the wire: one count per
attempt AWS throttled, whatever retries the caller makes."""

from __future__ import annotations

import http.client
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from reconciler.adapters.aws import AwsClients, CallCounter, call_retrying, is_throttling
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.core.executions.records import execution_id, format_time
from reconciler.errors import TransientError
from reconciler.service.bootstrap import bootstrap
from reconciler.service.metrics import Metrics
from reconciler.service.wiring import build_daemon
from tests.support.ecs_events import lifecycle, send_event
from tests.support.faultproxy import INJECTED, FaultProxy
from tests.support.sns import TestSigner, post
from tests.support.waiting import wait_for

CRON = """\
schedule: "cron(0 0 1 1 ? *)"  # yearly: the real clock fires nothing in a test
container:
  image: busybox
  arguments: ["sh", "-c", "echo hello"]
timeout: 10m
"""


@pytest.fixture
def proxy(aws):
    fault_proxy = FaultProxy(aws).start()
    try:
        yield fault_proxy
    finally:
        assert fault_proxy.stop(), "the fault proxy did not stop in time"


@pytest.fixture
def daemon(settings, tmp_path, proxy):
    """A daemon whose AWS endpoint is the proxy, after its first pass; (built, infra)."""
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    certs = tmp_path / "certs"
    certs.mkdir()
    TestSigner().write_cert(certs)
    settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1,
                              cluster="test", sns_certs_dir=str(certs), interval_s=3600,
                              watchdog_interval_s=0.2)
    infra = bootstrap(AwsClients(settings), settings)       # straight to the emulator
    built = build_daemon(settings.with_(endpoint_url=proxy.url), cert_fetch=moto_cert_fetcher)
    built.daemon.start()
    try:
        wait_for(lambda: built.loop.last_result is not None, timeout=20,
                 message="the first reconcile pass")
        assert built.loop.last_result.ok, built.loop.last_result.errors
        yield built, infra
    finally:
        assert built.daemon.stop(budget_s=30)


def scrape(url: str) -> tuple[int, str, dict]:
    """GET /metrics: (status, content type, {sample name: {frozen labels: value}})."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
        status, content_type = response.status, response.headers["Content-Type"]
    finally:
        connection.close()
    samples: dict[str, dict[frozenset, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][frozenset(sample.labels.items())] = sample.value
    return status, content_type, samples


def value(samples: dict, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for key, v in samples.get(name, {}).items()
               if set(labels.items()) <= set(key))


def deliver(built, topic_arn: str, cron: str, scheduled_at: str) -> tuple[int, str]:
    message = json.dumps({"cron": cron, "scheduled_at": scheduled_at})
    body = TestSigner().message("Notification", topic_arn, datetime.now(UTC), Message=message)
    status, text = post(built.http.url, "/sns", json.dumps(body).encode(), timeout=30)
    return status, json.loads(text)["status"]


def test_metrics_show_what_the_daemon_did(daemon, proxy):
    built, infra = daemon
    settings = built.settings
    direct = AwsClients(settings.with_(endpoint_url=proxy.upstream_url))  # not through the proxy
    store, sqs = ExecutionStore(direct, settings), direct.client("sqs")
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    first, second, third = (format_time(minute - timedelta(minutes=m)) for m in (15, 10, 5))

    # A run that AWS throttles once (RunTask retried), then a duplicate and an overlap.
    proxy.fail("ecs.RunTask", code="ThrottlingException", times=1)
    assert deliver(built, infra.topic_arn, "hello", first) == (200, "started")
    assert deliver(built, infra.topic_arn, "hello", first) == (200, "duplicate")
    assert deliver(built, infra.topic_arn, "hello", second) == (200, "skipped")
    assert deliver(built, infra.topic_arn, "nope", first) == (200, "unknown_cron")

    # Its ECS events finish it; a malformed message stays on the queue.
    eid = execution_id("hello", first)
    record = store.get(eid)
    for envelope in lifecycle(record.task_arn, eid,
                              created_at=datetime.now(UTC) - timedelta(seconds=30)):
        send_event(sqs, settings, envelope)
    send_event(sqs, settings, "{not json")
    wait_for(lambda: store.get(eid).status == "SUCCESS", timeout=15, message="SUCCESS")

    # AWS throttles every attempt: SNS is asked to deliver again; the watchdog resumes it.
    proxy.fail("ecs.RunTask", code="ThrottlingException", times=5)
    assert deliver(built, infra.topic_arn, "hello", third) == (503, "retry")
    third_id = execution_id("hello", third)
    wait_for(lambda: (r := store.get(third_id)) and r.task_arn, timeout=20,
             message="the watchdog to resume the throttled run")

    def scraped():
        answer = scrape(built.http.url)
        samples = answer[2]
        done = (value(samples, "cronctl_sqs_messages_failed_total", reason="malformed") >= 1
                and value(samples, "cronctl_watchdog_repairs_total", kind="resumed") >= 1
                and value(samples, "cronctl_sqs_event_lag_seconds_count") >= 4)
        return done and answer

    status, content_type, samples = wait_for(scraped, timeout=20, message="every series")
    assert (status, content_type) == (200, CONTENT_TYPE_LATEST)

    # Reconcile passes, their duration, the changes they applied.
    assert value(samples, "cronctl_reconcile_passes_total", result="ok") == 1
    assert value(samples, "cronctl_reconcile_passes_total", result="error") == 0
    assert value(samples, "cronctl_reconcile_pass_duration_seconds_count") == 1
    assert value(samples, "cronctl_reconcile_pass_duration_seconds_sum") > 0
    assert value(samples, "cronctl_reconcile_changes_applied_total", action="create") >= 3
    assert value(samples, "cronctl_reconcile_last_success_timestamp_seconds") > 0

    # AWS calls and throttles by operation: exactly the attempts that crossed the wire.
    run_task = {"service": "ecs", "operation": "RunTask"}
    on_the_wire = proxy.requests("ecs.RunTask")
    assert value(samples, "cronctl_aws_api_calls_total", **run_task) == len(on_the_wire) == 8
    assert value(samples, "cronctl_aws_api_throttles_total", **run_task) == len(
        proxy.requests("ecs.RunTask", outcome=INJECTED)) == 6
    assert value(samples, "cronctl_aws_api_calls_total", service="dynamodb") > 0
    assert value(samples, "cronctl_aws_api_throttles_total", service="dynamodb") == 0

    # Dispatches by outcome; the schedule skew of the two runs whose RunTask answered.
    for outcome, count in (("started", 1), ("duplicate", 1), ("skipped", 1),
                           ("unknown_cron", 1), ("retry", 1), ("in_progress", 0)):
        assert value(samples, "cronctl_dispatches_total", outcome=outcome) == count, outcome
    assert value(samples, "cronctl_dispatch_schedule_skew_seconds_count") == 2
    assert value(samples, "cronctl_dispatch_schedule_skew_seconds_sum") >= 15 * 60 + 5 * 60

    # Executions by final status: the consumer's SUCCESS, dispatch's SKIPPED.
    assert value(samples, "cronctl_executions_finished_total", status="SUCCESS") == 1
    assert value(samples, "cronctl_executions_finished_total", status="SKIPPED") == 1
    assert value(samples, "cronctl_executions_finished_total", status="FAILED") == 0

    # The consumer: messages handled and failed, the events' lag.
    assert value(samples, "cronctl_sqs_messages_processed_total") >= 5
    assert value(samples, "cronctl_sqs_messages_failed_total", reason="contended") == 0
    assert value(samples, "cronctl_sqs_event_lag_seconds_sum") > 0

    # The watchdog's repairs by kind.
    assert value(samples, "cronctl_watchdog_repairs_total", kind="resumed") == 1
    assert value(samples, "cronctl_watchdog_repairs_total", kind="lost") == 0


def test_each_daemon_has_its_own_registry(daemon):
    built, _ = daemon
    other = Metrics()
    other.dispatched("started")
    _, _, samples = scrape(built.http.url)
    assert value(samples, "cronctl_dispatches_total", outcome="started") == 0
    assert other.registry is not built.metrics.registry
    assert "process_open_fds" in samples


def test_throttles_are_counted_once_per_throttled_attempt(settings, proxy):
    """Through the real botocore stack: every attempt is a call; an attempt AWS throttled
    is one throttle, whether the caller retries it or not; other errors are not."""
    calls, throttles = [], []
    clients = AwsClients(settings.with_(endpoint_url=proxy.url),
                         CallCounter(on_call=calls.append, on_throttle=throttles.append))
    dynamodb, sns = clients.client("dynamodb"), clients.client("sns")

    proxy.fail("dynamodb.ListTables", code="ThrottlingException", times=2)
    call_retrying(dynamodb.list_tables)
    assert calls == ["dynamodb.ListTables"] * 3 and throttles == ["dynamodb.ListTables"] * 2

    calls.clear(), throttles.clear()
    proxy.fail("sns.ListTopics", status=429, times=5)        # SNS's "Throttled", HTTP 429
    with pytest.raises(TransientError):
        call_retrying(sns.list_topics)
    assert calls == ["sns.ListTopics"] * 5 and throttles == ["sns.ListTopics"] * 5

    calls.clear(), throttles.clear()
    proxy.fail("dynamodb.ListTables", status=500, times=1)   # transient, not a throttle
    call_retrying(dynamodb.list_tables)
    with pytest.raises(Exception):  # noqa: B017 - any refusal: not found is not a throttle
        dynamodb.describe_table(TableName="absent")
    assert calls == ["dynamodb.ListTables", "dynamodb.ListTables", "dynamodb.DescribeTable"]
    assert throttles == []


@pytest.mark.parametrize("code,status,text,throttled", [
    ("ThrottlingException", 400, "Rate exceeded", True),
    ("ProvisionedThroughputExceededException", 400, "", True),
    ("RequestLimitExceeded", 503, "", True),
    ("Throttled", 429, "", True),
    ("AnyCode", 429, "", True),
    ("LimitExceededException", 400, "Rate exceeded", True),
    ("ClientException", 400, "Too many concurrent attempts to create a new revision", True),
    ("LimitExceededException", 400, "There is a limit of 2500 tables per account", False),
    ("InternalServerError", 500, "", False),
    ("ServiceUnavailable", 503, "", False),
    ("ConditionalCheckFailedException", 400, "", False),
])
def test_what_counts_as_throttling(code, status, text, throttled):
    assert is_throttling(code, status, text) is throttled


def test_a_failing_metrics_listener_never_fails_the_aws_call(settings):
    def broken(_key: str) -> None:
        raise RuntimeError("listener bug")

    clients = AwsClients(settings, CallCounter(on_call=broken, on_throttle=broken))
    assert "TableNames" in clients.client("dynamodb").list_tables()
    assert clients.counter.snapshot() == {"dynamodb.ListTables": 1}
