"""The daemon end to end against the moto server: a schedule's message published to the topic
reaches POST /sns, a task starts, ECS events (injected in AWS's shape through the real SQS
queue, as moto emits none) finish the execution, and `cronctl status` shows it."""

from __future__ import annotations

import json
import urllib.request

import pytest

from reconciler.adapters import sns
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.cli import main
from reconciler.core.executions import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.wiring import build_daemon
from tests.support.ecs_events import lifecycle, send_event
from tests.support.waiting import wait_for

CRON = """\
schedule: "cron(*/5 * * * ? *)"
container:
  image: busybox
  arguments: ["sh", "-c", "echo hello"]
timeout: 10m
"""


@pytest.fixture
def daemon(settings, tmp_path):
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1,
                              cluster="test")
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
