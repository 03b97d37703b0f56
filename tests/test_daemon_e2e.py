"""The daemon end to end against the moto server: a schedule's message published to the topic
reaches POST /sns, a task starts, ECS events (injected in AWS's shape through the real SQS
queue, as moto emits none) finish the execution, and `cronctl status` shows it."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.adapters import sns
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.cli import main
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.wiring import build_daemon
from tests.support.ecs_events import lifecycle, send_event
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
def daemon(settings, tmp_path):
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    certs = tmp_path / "certs"                 # CRONCTL_SNS_CERTS: trusted test signer
    certs.mkdir()
    TestSigner().write_cert(certs)
    settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1,
                              cluster="test", sns_certs_dir=str(certs))
    clients = AwsClients(settings)
    infra = bootstrap(clients, settings)
    built = build_daemon(settings, cert_fetch=moto_cert_fetcher)
    built.daemon.start()
    try:
        sns.subscribe_endpoint(clients, infra.topic_arn, f"{built.http.url}/sns")
        wait_for(lambda: built.loop.last_result is not None, timeout=20,
                 message="the first reconcile pass")
        assert not built.loop.last_result.errors, built.loop.last_result.errors
        yield built, clients, infra
    finally:
        assert built.daemon.stop(budget_s=30)


def _tasks(clients, settings, started_by):
    ecs = clients.client("ecs")
    arns = ecs.list_tasks(cluster=settings.cluster_name, startedBy=started_by)["taskArns"]
    return arns


@pytest.mark.parametrize(("main_exit", "timeout_exit", "status", "code"), [
    (0, None, "SUCCESS", "0"),
    (3, None, "FAILED", "3"),
    (None, 124, "TIMEOUT", "137"),
])
def test_published_schedule_runs_and_status_shows_the_result(daemon, capsys, main_exit,
                                                              timeout_exit, status, code):
    built, clients, infra = daemon
    settings = built.settings
    scheduled_at = "2026-11-27T10:05:00Z"
    message = json.dumps({"cron": "hello", "scheduled_at": scheduled_at})
    sns.publish(clients, infra.topic_arn, message)

    eid = execution_id("hello", scheduled_at)
    store = ExecutionStore(clients, settings)
    record = wait_for(lambda: (r := store.get(eid)) and r.task_arn and r, timeout=10,
                      message="the execution to start")
    assert _tasks(clients, settings, eid) == [record.task_arn]

    sqs = clients.client("sqs")
    for envelope in lifecycle(record.task_arn, eid, main_exit=main_exit,
                              timeout_exit=timeout_exit):
        send_event(sqs, settings, envelope)
    wait_for(lambda: store.get(eid).status == status, timeout=15, message=f"status {status}")

    capsys.readouterr()
    assert main(["status", "hello", "--namespace", settings.namespace]) == 0
    out = capsys.readouterr().out
    assert "Name     = hello" in out
    assert f"Status   = {status}" in out
    row = next(line for line in out.splitlines() if line.startswith(eid[:15]))
    assert row.split()[-2:] == [status, code]
    assert " 4s " in row


def test_duplicate_deliveries_start_one_task(daemon):
    built, clients, infra = daemon
    message = json.dumps({"cron": "hello", "scheduled_at": "2026-11-27T10:10:00Z"})
    for _ in range(5):
        sns.publish(clients, infra.topic_arn, message)
    eid = execution_id("hello", "2026-11-27T10:10:00Z")
    assert len(_tasks(clients, built.settings, eid)) == 1


def test_forged_message_is_refused_and_starts_nothing(daemon):
    built, clients, _ = daemon
    body = json.dumps({"Type": "Notification", "MessageId": "x", "TopicArn": "arn:aws:sns:us-east-1:123456789012:test-dispatch",
                       "Message": json.dumps({"cron": "hello", "scheduled_at": "2026-11-27T10:15:00Z"}),
                       "Timestamp": "2026-11-27T10:15:00.000Z", "SignatureVersion": "2",
                       "Signature": "AAAA", "SigningCertURL": "https://s3.amazonaws.com/x.pem"}).encode()
    request = urllib.request.Request(f"{built.http.url}/sns", data=body, method="POST",
                                     headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 400
    eid = execution_id("hello", "2026-11-27T10:15:00Z")
    assert _tasks(clients, built.settings, eid) == []
    assert ExecutionStore(clients, built.settings).get(eid) is None


def test_healthz_and_readyz(daemon):
    built, _, _ = daemon
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"{built.http.url}{path}", timeout=5) as response:
            assert response.status == 200


def _nothing_started(clients, settings) -> bool:
    executions = clients.client("dynamodb").scan(TableName=settings.executions_table)["Items"]
    tasks = clients.client("ecs").list_tasks(cluster=settings.cluster_name)["taskArns"]
    return executions == [] and tasks == []


def _signed_notification(topic_arn: str, scheduled_at: str, sent_at: datetime | None = None,
                         **fields) -> dict:
    message = json.dumps({"cron": "hello", "scheduled_at": scheduled_at, **fields})
    return TestSigner().message("Notification", topic_arn, sent_at or datetime.now(UTC),
                                Message=message)


CERT = TestSigner.cert_name


def _refused_variants(topic_arn: str) -> dict[str, tuple[bytes, int]]:
    """Hostile or broken deliveries of a cron's message, each with the answer it must get."""
    good = _signed_notification(topic_arn, "2026-11-27T10:20:00Z")

    def body(message: dict) -> bytes:
        return json.dumps(message).encode()

    other_topic = topic_arn.rsplit(":", 1)[0] + ":someone-elses-topic"
    stale = datetime.now(UTC) - timedelta(hours=1, minutes=1)
    return {
        "cert on s3": (body({**good, "SigningCertURL": f"https://s3.amazonaws.com/{CERT}"}), 400),
        "cert host suffix": (body({**good, "SigningCertURL":
                                   f"https://sns.us-east-1.amazonaws.com.evil.example/{CERT}"}),
                             400),
        "cert over http": (body({**good, "SigningCertURL":
                                 f"http://sns.us-east-1.amazonaws.com/{CERT}"}), 400),
        "tampered message": (body({**good, "Message": good["Message"].replace("10:20", "10:25")}),
                             400),
        "signature version 3": (body({**good, "SignatureVersion": "3"}), 400),
        "signature version 1 on a SHA256 signature": (body({**good, "SignatureVersion": "1"}),
                                                      400),
        "another topic": (body(_signed_notification(other_topic, "2026-11-27T10:20:00Z")), 400),
        "stale timestamp": (body(_signed_notification(topic_arn, "2026-11-27T10:20:00Z",
                                                      sent_at=stale)), 400),
        "not JSON": (b"{this is not json", 400),
        "oversized": (body(_signed_notification(topic_arn, "2026-11-27T10:20:00Z",
                                                padding="x" * 300_000)), 413),
    }


@pytest.mark.parametrize("variant", list(_refused_variants("arn:aws:sns:r:1:t")))
def test_refused_deliveries_start_nothing(daemon, variant):
    built, clients, infra = daemon
    body, status = _refused_variants(infra.topic_arn)[variant]
    assert post(built.http.url, "/sns", body)[0] == status
    assert _nothing_started(clients, built.settings)


def test_signed_delivery_from_the_certificate_directory_starts_the_run(daemon):
    """The control for the refusals above: the same message, untouched, is dispatched."""
    built, clients, infra = daemon
    good = _signed_notification(infra.topic_arn, "2026-11-27T10:20:00Z")
    status, text = post(built.http.url, "/sns", json.dumps(good).encode())
    eid = execution_id("hello", "2026-11-27T10:20:00Z")
    assert (status, json.loads(text)["status"]) == (200, "started")
    assert len(_tasks(clients, built.settings, eid)) == 1


def test_subscription_confirmation_uses_the_api_and_never_fetches_subscribe_url(daemon):
    built, clients, infra = daemon
    with socket.create_server(("127.0.0.1", 0)) as trap:      # SubscribeURL points here
        trap.setblocking(False)
        subscribe_url = f"http://127.0.0.1:{trap.getsockname()[1]}/?Action=ConfirmSubscription"
        signer = TestSigner()
        ours = signer.message("SubscriptionConfirmation", infra.topic_arn, datetime.now(UTC),
                              SubscribeURL=subscribe_url)
        other_topic = infra.topic_arn.rsplit(":", 1)[0] + ":someone-elses-topic"
        theirs = signer.message("SubscriptionConfirmation", other_topic, datetime.now(UTC),
                                SubscribeURL=subscribe_url)
        before = built.dispatcher._clients.counter.snapshot().get("sns.ConfirmSubscription", 0)
        assert post(built.http.url, "/sns", json.dumps(theirs).encode())[0] == 400
        assert post(built.http.url, "/sns", json.dumps(ours).encode()) == (200, "confirmed\n")
        with pytest.raises(BlockingIOError):
            trap.accept()                                      # nobody came to SubscribeURL
    # The emulator keeps no state for ConfirmSubscription: the daemon's own call counter is
    # the only witness that the API (for our topic only) was used.
    after = built.dispatcher._clients.counter.snapshot().get("sns.ConfirmSubscription", 0)
    assert after - before == 1


def test_ci_webhook_triggers_a_pass_only_with_the_token(settings, tmp_path):
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1,
                              cluster="test", interval_s=3600, webhook_token="s3cret-token-for-ci")
    bootstrap(AwsClients(settings), settings)
    built = build_daemon(settings, cert_fetch=moto_cert_fetcher)
    assert "POST /reconcile" in built.summary[-1]
    built.daemon.start()
    try:
        wait_for(lambda: built.loop.passes == 1, timeout=20, message="the first pass")

        def post(token: str) -> int:
            request = urllib.request.Request(
                f"{built.http.url}/reconcile", data=b"", method="POST",
                headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status
            except urllib.error.HTTPError as refused:
                return refused.code

        assert post("wrong") == 401
        assert built.loop.passes == 1
        assert post("s3cret-token-for-ci") == 202
        wait_for(lambda: built.loop.passes == 2, timeout=20, message="the webhook's pass")
    finally:
        assert built.daemon.stop(budget_s=30)


def test_readiness_needs_a_readable_registry(settings):
    from reconciler.adapters.tables import ensure_tables
    from reconciler.service.daemon import readiness_check

    clients = AwsClients(settings)
    check = readiness_check(clients, settings.registry_table)
    ready, detail = check()
    assert not ready and "registry not readable" in detail and settings.registry_table in detail
    ensure_tables(clients, settings)
    assert check() == (True, "ready")


def test_a_hundred_concurrent_deliveries_to_the_endpoint_start_one_task(daemon):
    """SNS delivers a burst when many crons share a minute: every delivery must be answered,
    and the duplicates of one scheduled message start one task."""
    built, clients, infra = daemon
    body = json.dumps(_signed_notification(infra.topic_arn, "2026-11-27T10:30:00Z")).encode()
    answers, gate = [], threading.Barrier(100, timeout=30)

    def deliver():
        gate.wait()
        try:
            status, text = post(built.http.url, "/sns", body, timeout=60)
            answers.append((status, json.loads(text)["status"]))
        except OSError as exc:              # recorded: every delivery must be answered
            answers.append((0, type(exc).__name__))

    threads = [threading.Thread(target=deliver, name=f"cronctl-test-sns-{n}") for n in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert not any(thread.is_alive() for thread in threads)
    # One starts it; the others find it started (200 duplicate) or being started by that
    # first attempt (503 in_progress: SNS delivers those again).
    assert answers.count((200, "started")) == 1
    assert set(answers) <= {(200, "started"), (200, "duplicate"), (503, "in_progress")}
    status, text = post(built.http.url, "/sns", body, timeout=60)   # a redelivery
    assert (status, json.loads(text)["status"]) == (200, "duplicate")
    eid = execution_id("hello", "2026-11-27T10:30:00Z")
    assert len(_tasks(clients, built.settings, eid)) == 1


class _EndpointProbe:
    """Wraps a daemon component: when asked to stop, notes whether the endpoint still answers."""

    def __init__(self, inner, url: str) -> None:
        self.inner, self.url = inner, url
        self.endpoint_answered_at_stop: bool | None = None

    def start(self) -> None:
        self.inner.start()

    def stop(self, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                self.endpoint_answered_at_stop = True
        except OSError:
            self.endpoint_answered_at_stop = False
        return self.inner.stop(timeout)


def test_shutdown_stops_accepting_requests_before_it_stops_polling(daemon):
    """Issue order for SIGTERM: stop accepting requests, finish the dispatches in flight, then
    stop polling SQS."""
    built, _, _ = daemon
    components = built.daemon.components
    index = next(i for i, c in enumerate(components) if getattr(c, "target", c) is built.consumer)
    probe = _EndpointProbe(components[index], built.http.url)
    components[index] = probe
    assert built.daemon.stop(budget_s=30)
    assert probe.endpoint_answered_at_stop is False


def test_the_reconciled_rules_input_for_a_scheduled_event_dispatches_the_cron(daemon):
    """What the rule's input transformer sends for AWS's documented scheduled event (the
    emulator never fires it) is published to the topic and starts that scheduled run."""
    from reconciler.core.desired import rule_name
    from tests.support.fixtures import FIXTURES

    built, clients, infra = daemon
    event = json.loads((FIXTURES / "events" / "scheduled_event_awsdocs.json").read_text())
    [target] = clients.client("events").list_targets_by_rule(
        Rule=rule_name(built.settings.namespace, "hello"))["Targets"]
    assert target["Arn"] == infra.topic_arn
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"]["time"] == "$.time"
    sns.publish(clients, infra.topic_arn,
                transformer["InputTemplate"].replace("<time>", event["time"]))
    eid = execution_id("hello", event["time"])
    store = ExecutionStore(clients, built.settings)
    record = wait_for(lambda: (r := store.get(eid)) and r.task_arn and r, timeout=10,
                      message="the scheduled run to start")
    assert (record.cron, record.scheduled_at, record.trigger) == \
        ("hello", "2015-10-08T16:53:06.000Z", "schedule")
    assert _tasks(clients, built.settings, eid) == [record.task_arn]
