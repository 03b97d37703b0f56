"""The daemon's HTTP endpoint, against moto's real SNS deliveries and genuine AWS vectors."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime

import boto3
import pytest
from structlog.testing import capture_logs

from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.errors import NotFound, PermanentError
from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier
from tests.support.sns import (
    CERTS_DIR,
    CountingFetch,
    TestSigner,
    post,
    raw_exchange,
    request,
    status_of,
    vector,
)
from tests.support.waiting import wait_for


class Recorder:
    """The daemon's callbacks, recording what reached them."""

    def __init__(self, answer: tuple[int, str] = (200, "started")) -> None:
        self.answer = answer
        self.notifications: list[dict] = []
        self.confirmations: list[tuple[str, str]] = []
        self.ready = (True, "ready")
        self.entered = threading.Event()
        self.release: threading.Event | None = None
        self.error: Exception | None = None

    def on_notification(self, message: dict) -> tuple[int, str]:
        self.entered.set()
        if self.release is not None:
            assert self.release.wait(10), "test never released the callback"
        if self.error is not None:
            raise self.error
        self.notifications.append(message)
        return self.answer

    def on_confirmation(self, topic_arn: str, token: str) -> None:
        self.confirmations.append((topic_arn, token))

    def readiness(self) -> tuple[bool, str]:
        if isinstance(self.ready, Exception):
            raise self.ready
        return self.ready


@pytest.fixture
def serve():
    """Start servers on free ports; stop them (and check they stopped) after the test."""
    started: list[DaemonHttpServer] = []

    def start(verifier: SnsVerifier, recorder: Recorder, **kwargs) -> DaemonHttpServer:
        server = DaemonHttpServer("127.0.0.1:0", verifier, recorder.on_notification,
                                  recorder.on_confirmation, recorder.readiness, **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.stop(timeout=10)


def genuine_verifier(v, topic_arn: str | None = None) -> SnsVerifier:
    store = CertificateStore(CERTS_DIR, fetch=CountingFetch())
    return SnsVerifier(topic_arn or v.message["TopicArn"], store, clock=v.clock())


def test_moto_sns_delivery_reaches_on_notification(serve, settings):
    sns = boto3.client("sns", region_name=settings.region, endpoint_url=settings.endpoint_url)
    topic_arn = sns.create_topic(Name=settings.topic_name)["TopicArn"]
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return moto_cert_fetcher(url)

    recorder = Recorder()
    server = serve(SnsVerifier(topic_arn, CertificateStore(None, fetch=fetch)), recorder)
    sns.subscribe(TopicArn=topic_arn, Protocol="http", Endpoint=f"{server.url}/sns")
    payload = json.dumps({"cron": "nightly", "time": "2026-11-27T06:00:00Z"})
    message_id = sns.publish(TopicArn=topic_arn, Message=payload)["MessageId"]  # no Subject

    (received,) = wait_for(lambda: recorder.notifications, timeout=10,
                           message="the notification to reach the callback")
    assert received["MessageId"] == message_id
    assert received["TopicArn"] == topic_arn
    assert json.loads(received["Message"]) == {"cron": "nightly", "time": "2026-11-27T06:00:00Z"}
    assert received["SignatureVersion"] == "2"
    assert fetched == [received["SigningCertURL"]]


def test_moto_cert_fetcher_refuses_unknown_keys(aws):
    with pytest.raises(NotFound):
        moto_cert_fetcher("https://sns.us-east-1.amazonaws.com/"
                          "SimpleNotificationService-00000000000000000000000000000000.pem")
    with pytest.raises(PermanentError):
        moto_cert_fetcher("https://sns.us-east-1.amazonaws.com.evil.example/x.pem")


def test_subscription_confirmation_calls_back_with_topic_and_token(serve):
    v = vector("verified/subscription_confirmation")
    recorder = Recorder()
    server = serve(genuine_verifier(v), recorder)
    assert post(server.url, "/sns", v.body) == (200, "confirmed\n")
    assert recorder.confirmations == [(v.message["TopicArn"], v.message["Token"])]
    assert recorder.notifications == []


def test_confirmation_for_another_topic_is_refused(serve):
    v = vector("verified/subscription_confirmation")
    recorder = Recorder()
    server = serve(genuine_verifier(v, "arn:aws:sns:us-west-2:843378899134:Ours"), recorder)
    with capture_logs() as logs:
        status, _ = post(server.url, "/sns", v.body)
        rejected = _first(logs, "sns_rejected")
    assert status == 400
    assert recorder.confirmations == []
    assert rejected["reason"] == "topic"


def test_unsubscribe_confirmation_is_acknowledged(serve, tmp_path):
    signer = TestSigner()
    signer.write_cert(tmp_path)
    now = datetime.now(UTC)
    topic = "arn:aws:sns:us-east-1:123456789012:test-dispatch"
    recorder = Recorder()
    verifier = SnsVerifier(topic, CertificateStore(tmp_path, fetch=CountingFetch()))
    server = serve(verifier, recorder)
    body = json.dumps(signer.message("UnsubscribeConfirmation", topic, now)).encode()
    assert post(server.url, "/sns", body)[0] == 200
    assert recorder.confirmations == [] and recorder.notifications == []


def _first(logs: list[dict], event: str) -> dict:
    """The first ``event`` line; waits for it, since a line may follow the response."""
    return wait_for(lambda: next((e for e in logs if e["event"] == event), None),
                    timeout=5, message=f"a {event} log line")


@pytest.mark.parametrize("answer", [(200, "started"), (202, "skipped: overlap"),
                                    (503, "registry unavailable")])
def test_notification_answer_is_the_callbacks(serve, answer):
    v = vector("notification_sigv2")
    recorder = Recorder(answer)
    server = serve(genuine_verifier(v), recorder)
    assert post(server.url, "/sns", v.body) == answer
    assert [m["MessageId"] for m in recorder.notifications] == [v.message["MessageId"]]


@pytest.mark.parametrize("body,reason", [
    (b"not json at all", "malformed"),
    (b"[1, 2]", "malformed"),
    (vector("TAMPERED_message_altered").body, "bad_signature"),
    (vector("notification_sigv2").with_changes(
        SigningCertURL="https://s3.amazonaws.com/x.pem"), "cert_url"),
    (vector("notification_sigv2").with_changes(SignatureVersion="3"), "signature_version"),
])
def test_refused_bodies_answer_400_and_dispatch_nothing(serve, body, reason):
    v = vector("notification_sigv2")
    recorder = Recorder()
    server = serve(genuine_verifier(v), recorder)
    with capture_logs() as logs:
        status, text = post(server.url, "/sns", body)
        line = _first(logs, "http_request")
    assert (status, text) == (400, f"rejected: {reason}\n")
    assert recorder.notifications == []
    assert {k: line[k] for k in ("method", "path", "status", "reason")} == \
        {"method": "POST", "path": "/sns", "status": 400, "reason": reason}
    assert line["duration_ms"] >= 0


def test_unavailable_certificate_answers_503_so_sns_retries(serve):
    v = vector("notification_sigv2")
    recorder = Recorder()
    store = CertificateStore(None, fetch=CountingFetch(error=OSError("unreachable")))
    server = serve(SnsVerifier(v.message["TopicArn"], store, clock=v.clock()), recorder)
    assert post(server.url, "/sns", v.body) == (503, "rejected: cert_unavailable\n")
    assert recorder.notifications == []


def test_oversized_body_is_refused_before_reading(serve):
    v = vector("notification_sigv2")
    recorder = Recorder()
    server = serve(genuine_verifier(v), recorder, max_body=1024)
    # Only the headers are sent: the answer must not wait for the 10 MB body.
    head = (b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 10000000\r\n\r\n")
    assert status_of(raw_exchange(server.address, head)) == 413
    assert recorder.notifications == []
    assert post(server.url, "/sns", v.body)[0] == 200  # within the limit


@pytest.mark.parametrize("head,status", [
    (b"POST /sns HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    (b"POST /sns HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n{}", 400),  # short body
])
def test_body_framing_errors(serve, head, status):
    recorder = Recorder()
    server = serve(genuine_verifier(vector("notification_sigv2")), recorder,
                   read_timeout_s=1)
    assert status_of(raw_exchange(server.address, head, timeout=5, half_close=True)) == status
    assert recorder.notifications == []


def test_callback_exception_answers_500(serve):
    v = vector("notification_sigv2")
    recorder = Recorder()
    recorder.error = RuntimeError("dynamodb exploded")
    server = serve(genuine_verifier(v), recorder)
    with capture_logs() as logs:
        assert post(server.url, "/sns", v.body) == (500, "internal error\n")
        assert _first(logs, "sns_callback_failed")["log_level"] == "error"
        assert _first(logs, "http_request")["reason"] == "callback_error"


def test_health_readiness_and_routing(serve):
    recorder = Recorder()
    server = serve(genuine_verifier(vector("notification_sigv2")), recorder)
    assert request(server.url, "GET", "/healthz") == (200, "ok\n")
    assert request(server.url, "GET", "/readyz") == (200, "ready\n")
    recorder.ready = (False, "registry not readable")
    assert request(server.url, "GET", "/readyz") == (503, "registry not readable\n")
    recorder.ready = RuntimeError("boom")
    assert request(server.url, "GET", "/readyz")[0] == 503
    assert request(server.url, "GET", "/nope")[0] == 404
    assert request(server.url, "POST", "/reconcile", b"")[0] == 404  # webhook not configured
    assert request(server.url, "GET", "/sns")[0] == 405
    assert request(server.url, "POST", "/healthz", b"")[0] == 405
    assert request(server.url, "DELETE", "/sns")[0] == 405
    assert request(server.url, "GET", "/healthz?probe=1") == (200, "ok\n")


def test_stalled_client_does_not_block_others_and_is_dropped(serve):
    recorder = Recorder()
    server = serve(genuine_verifier(vector("notification_sigv2")), recorder,
                   read_timeout_s=1)
    with socket.create_connection(server.address, timeout=10) as stalled:
        stalled.sendall(b"POST /sns HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        assert request(server.url, "GET", "/healthz", timeout=5) == (200, "ok\n")
        # At the request deadline the server answers 408 and closes the stalled connection.
        assert status_of(stalled.recv(1024)) == 408
        assert stalled.recv(1024) == b""
    with socket.create_connection(server.address, timeout=10) as stalled_body:
        stalled_body.sendall(b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert request(server.url, "GET", "/healthz", timeout=5) == (200, "ok\n")
        assert status_of(stalled_body.recv(1024)) == 408
    assert recorder.notifications == []


def test_stop_lets_the_request_in_flight_finish(serve):
    v = vector("notification_sigv2")
    recorder = Recorder()
    recorder.release = threading.Event()
    server = serve(genuine_verifier(v), recorder)
    answers: list[tuple[int, str]] = []
    client = threading.Thread(target=lambda: answers.append(post(server.url, "/sns", v.body)),
                              name="cronctl-test-client")
    client.start()
    assert recorder.entered.wait(10)

    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(server.stop(timeout=10)),
                               name="cronctl-test-stopper")
    stopper.start()

    def refuses_connections() -> bool:
        try:
            socket.create_connection(server.address, timeout=1).close()
        except OSError:
            return True
        return False

    wait_for(refuses_connections, timeout=5, message="the server to stop accepting")
    assert stopped == [] and answers == []  # still waiting for the request in flight
    recorder.release.set()
    stopper.join(10)
    client.join(10)
    assert stopped == [True]
    assert answers == [(200, "started")]
    assert [m["MessageId"] for m in recorder.notifications] == [v.message["MessageId"]]
    assert not [t for t in threading.enumerate() if t.name.startswith("cronctl-http")]


def test_listen_address_is_validated():
    from reconciler.errors import ConfigError

    for listen in ["8080", "host:", ":80", "host:http", "host:70000"]:
        with pytest.raises(ConfigError):
            DaemonHttpServer(listen, None, None, None, None)


def test_a_port_in_use_is_a_one_line_config_error_naming_the_setting(serve):
    from reconciler.errors import ConfigError

    recorder = Recorder()
    first = serve(genuine_verifier(vector("notification_sigv2")), recorder)
    host, port = first.address
    second = DaemonHttpServer(f"{host}:{port}", first.verifier, recorder.on_notification,
                              recorder.on_confirmation, recorder.readiness)
    with pytest.raises(ConfigError) as caught:
        second.start()
    message = str(caught.value)
    assert f"{host}:{port}" in message and "address already in use" in message
    assert "--listen" in message and "CRONCTL_LISTEN" in message and "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert second.stop(timeout=1)  # never started: nothing to stop
    assert request(first.url, "GET", "/healthz") == (200, "ok\n")
