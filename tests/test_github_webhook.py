"""The GitHub webhook ``POST /v1/sync``: absent unless a secret is configured, authenticated
by ``X-Hub-Signature-256`` (GitHub's documented test vector), refused with 401 before anything
else is looked at, ``ping`` answered without a pass, its own body bound; end to end it wakes
a real reconcile loop, and deliveries during a pass give exactly one more pass."""

from __future__ import annotations

import http.client
import json
import threading
from email.message import Message
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import PassResult
from reconciler.service.control.reconcile_loop import ReconcileLoop
from reconciler.service.http.routes import (
    GITHUB_MAX_BODY,
    github_signature,
    signature_refusal,
)
from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.wiring import build_daemon
from reconciler.settings import from_environment
from tests.support.endpoint import Trigger, endpoint_servers
from tests.support.reconcile_env import prepare
from tests.support.sns import raw_exchange, status_of
from tests.support.waiting import wait_for

VECTOR = json.loads((Path(__file__).parent / "fixtures" / "github"
                     / "webhook_signature_docs_example.json").read_text())
SECRET = "gh-webhook-s3cret"
PUSH = json.dumps({"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567",
                   "repository": {"full_name": "acme/crons"}}).encode()


@pytest.fixture
def serve():
    """Start servers on free ports; stop them (and check they stopped) after the test."""
    with endpoint_servers() as start:
        yield start


def signed(body: bytes, secret: str = SECRET, event: str = "push") -> dict[str, str]:
    """The headers GitHub sends with a delivery of ``body``."""
    return {"X-Hub-Signature-256": github_signature(secret, body), "X-GitHub-Event": event,
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "Content-Type": "application/json"}


def send(server: DaemonHttpServer, headers: dict[str, str] | None = None, body: bytes = b"",
         method: str = "POST", path: str = "/v1/sync") -> tuple[int, Message, str]:
    """One request; returns (status, response headers (names case-insensitive), body text)."""
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def raw_post(server: DaemonHttpServer, headers: dict[str, str], body: bytes = b"",
             path: str = "/v1/sync") -> int:
    """A POST with exactly these headers (no Content-Length unless given); its status."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    data = f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body
    return status_of(raw_exchange(server.address, data, half_close=True))


def _line(logs: list[dict], event: str) -> dict:
    """The first ``event`` line; waits for it, since a line may follow the response."""
    return wait_for(lambda: next((e for e in logs if e["event"] == event), None),
                    timeout=5, message=f"a {event} log line")


def test_githubs_documented_test_vector():
    body = VECTOR["body"].encode("utf-8")
    assert github_signature(VECTOR["secret"], body) == VECTOR["signature"]
    expected = VECTOR["signature"].removeprefix("sha256=")
    assert signature_refusal(VECTOR["signature"], expected) is None
    assert signature_refusal(VECTOR["signature"][:-1] + "f", expected) == "wrong_signature"


def test_githubs_documented_delivery_is_accepted_by_the_endpoint(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=VECTOR["secret"])
    status, headers, text = send(server, {VECTOR["header"]: VECTOR["signature"],
                                          "X-GitHub-Event": "push"},
                                 VECTOR["body"].encode("utf-8"))
    assert (status, json.loads(text)) == (202, {"status": "accepted"})
    assert headers["Content-Type"] == "application/json"
    assert trigger.calls == 1


@pytest.mark.parametrize("configured", [
    {"webhook_secret": SECRET},                      # no callback
    {"on_reconcile": "trigger"},                     # no secret
    {"on_reconcile": "trigger", "webhook_secret": ""},
    {"on_reconcile": "trigger", "webhook_token": "a-bearer-token"},  # the other webhook only
])
def test_route_does_not_exist_unless_secret_and_callback_are_configured(serve, configured):
    trigger = Trigger()
    server = serve(**{k: (trigger if v == "trigger" else v) for k, v in configured.items()})
    assert send(server, signed(PUSH), PUSH)[0] == 404
    assert send(server, {}, b"")[0] == 404
    assert send(server, method="GET")[0] == 404
    assert trigger.calls == 0


def test_the_secret_alone_does_not_open_the_bearer_webhook(serve):
    server = serve(on_reconcile=Trigger(), webhook_secret=SECRET)
    assert send(server, {"Authorization": f"Bearer {SECRET}"}, path="/reconcile")[0] == 404


@pytest.mark.parametrize("headers,reason", [
    ({}, "missing_signature"),
    ({"X-Hub-Signature-256": ""}, "missing_signature"),
    ({"X-Hub-Signature-256": github_signature("another-secret", PUSH)}, "wrong_signature"),
    ({"X-Hub-Signature-256": github_signature(SECRET, PUSH + b" ")}, "wrong_signature"),
    ({"X-Hub-Signature-256": github_signature(SECRET, PUSH)[:-2]}, "bad_signature"),
    ({"X-Hub-Signature-256": github_signature(SECRET, PUSH).replace("sha256=", "sha1=")},
     "bad_signature"),
    ({"X-Hub-Signature-256": github_signature(SECRET, PUSH).removeprefix("sha256=")},
     "bad_signature"),
    ({"X-Hub-Signature-256": f"sha256={'z' * 64}"}, "bad_signature"),
    ({"X-Hub-Signature": "sha1=" + "0" * 40}, "missing_signature"),   # the legacy SHA-1 one
    ({"Authorization": f"Bearer {SECRET}"}, "missing_signature"),
])
def test_missing_or_wrong_signature_is_401_and_triggers_nothing(serve, headers, reason):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET)
    with capture_logs() as logs:
        status, response_headers, _ = send(server, {"X-GitHub-Event": "push", **headers}, PUSH)
        unauthorized = _line(logs, "github_webhook_unauthorized")
        request_line = _line(logs, "http_request")
    assert status == 401
    assert "X-Hub-Signature-256" in response_headers["WWW-Authenticate"]
    assert trigger.calls == 0
    assert unauthorized["reason"] == reason and unauthorized["log_level"] == "warning"
    assert (request_line["status"], request_line["reason"]) == (401, reason)
    assert SECRET not in json.dumps(logs)


def test_a_repeated_signature_header_is_401(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET)
    good = github_signature(SECRET, PUSH)
    head = (f"POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: {len(PUSH)}\r\n"
            f"X-Hub-Signature-256: {good}\r\nX-Hub-Signature-256: {good}\r\n\r\n").encode()
    assert status_of(raw_exchange(server.address, head + PUSH)) == 401
    assert trigger.calls == 0


def test_empty_post_is_401_unauthenticated_and_400_authenticated_never_411(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET)
    empty_signature = github_signature(SECRET, b"")
    # No Content-Length at all: an empty body (HTTP/1.1), not a framing error.
    assert raw_post(server, {}) == 401
    assert raw_post(server, {"X-GitHub-Event": "push"}) == 401
    assert raw_post(server, {"X-Hub-Signature-256": empty_signature}) == 400
    # Content-Length: 0 alike.
    assert raw_post(server, {"Content-Length": "0"}) == 401
    status, _, text = send(server, {"X-Hub-Signature-256": empty_signature,
                                    "X-GitHub-Event": "push"}, b"")
    assert (status, text) == (400, "rejected: empty body\n")
    assert trigger.calls == 0


def test_ping_is_answered_pong_without_a_pass(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET)
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    assert send(server, {**signed(ping, event="ping"),
                         "X-Hub-Signature-256": github_signature("wrong", ping)}, ping)[0] == 401
    with capture_logs() as logs:
        status, headers, text = send(server, signed(ping, event="ping"), ping)
        line = _line(logs, "github_webhook_ping")
    assert (status, json.loads(text)) == (200, {"status": "pong"})
    assert headers["Content-Type"] == "application/json"
    assert line["delivery"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert trigger.calls == 0


@pytest.mark.parametrize("event", ["push", "create", ""])
def test_a_signed_delivery_is_202_and_calls_back_once(serve, event):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET)
    headers = signed(PUSH, event=event)
    if not event:
        del headers["X-GitHub-Event"]
    with capture_logs() as logs:
        status, response_headers, text = send(server, headers, PUSH)
        line = _line(logs, "github_webhook_sync_requested")
    assert (status, json.loads(text)) == (202, {"status": "accepted"})
    assert response_headers["Content-Type"] == "application/json"
    assert trigger.calls == 1
    assert line["github_event"] == event


def test_other_methods_are_405_and_a_failing_callback_is_500(serve):
    server = serve(on_reconcile=Trigger(RuntimeError("loop gone")), webhook_secret=SECRET)
    status, headers, _ = send(server, method="GET")
    assert (status, headers["Allow"]) == (405, "POST")
    with capture_logs() as logs:
        assert send(server, signed(PUSH), PUSH)[0] == 500
        assert _line(logs, "github_webhook_callback_failed")["log_level"] == "error"


def test_the_route_has_githubs_body_bound_and_the_other_routes_keep_theirs(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_secret=SECRET, webhook_token="a-token",
                   max_body=1024)
    # A payload of megabytes (a push of many commits) is within the route's bound...
    payload = b'{"commits": [' + b",".join([b'"' + b"a" * 1000 + b'"'] * 3000) + b"]}"
    assert send(server, signed(payload), payload)[0] == 202
    # ...and so is one of exactly the bound.
    largest = b"x" * GITHUB_MAX_BODY
    assert send(server, signed(largest), largest)[0] == 202
    assert trigger.calls == 2
    # Over it, refused from the headers alone (the body is never sent).
    head = (f"POST /v1/sync HTTP/1.1\r\nHost: x\r\nContent-Length: {GITHUB_MAX_BODY + 1}\r\n"
            f"X-Hub-Signature-256: {github_signature(SECRET, b'')}\r\n\r\n").encode()
    answer = raw_exchange(server.address, head)
    assert status_of(answer) == 413 and answer.endswith(f"body over {GITHUB_MAX_BODY} bytes\n"
                                                        .encode())
    # The other routes keep the daemon's bound, also refused from the headers alone.
    for path in ("/sns", "/reconcile"):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n".encode()
        answer = raw_exchange(server.address, head)
        assert status_of(answer) == 413 and answer.endswith(b"body over 1024 bytes\n")
    chunked = raw_post(server, {"Transfer-Encoding": "chunked",
                                "X-Hub-Signature-256": github_signature(SECRET, PUSH)},
                       f"{len(PUSH):x}\r\n".encode() + PUSH + b"\r\n0\r\n\r\n")
    assert chunked == 411
    assert trigger.calls == 2


def test_an_oversized_body_announced_with_expect_100_continue_is_refused_at_once(serve):
    server = serve(on_reconcile=Trigger(), webhook_secret=SECRET, max_body=1024)
    head = (b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n")
    answer = raw_exchange(server.address, head, timeout=5)
    assert status_of(answer) == 413 and b"100 Continue" not in answer


class GatedPasses:
    """A reconcile pass that notes how many deliveries had been sent when it started, and
    holds the pass after ``hold_next()`` until released."""

    def __init__(self) -> None:
        self.sent = 0
        self.starts: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self._hold = False

    def hold_next(self) -> None:
        self._hold = True

    def __call__(self, clients, settings, *, dry_run, fence, **_policy) -> PassResult:
        self.starts.append(self.sent)
        if self._hold:
            self._hold = False
            self.entered.set()
            assert self.release.wait(10), "the test never released the pass"
        return PassResult(commit=None, plan=None)


def test_deliveries_during_a_pass_give_exactly_one_more_pass(serve, settings):
    clients = prepare(settings)
    passes = GatedPasses()
    loop = ReconcileLoop(clients, settings.with_(interval_s=3600), owner_id="github-test",
                         pass_fn=passes)
    loop.start()
    try:
        server = serve(on_reconcile=loop.trigger, webhook_secret=SECRET)

        def deliver() -> int:
            passes.sent += 1
            return send(server, signed(PUSH), PUSH)[0]

        wait_for(lambda: loop.passes == 1, timeout=10, message="the first pass")
        passes.hold_next()
        assert deliver() == 202
        wait_for(passes.entered.is_set, timeout=10, message="the webhook's pass to start")
        assert [deliver() for _ in range(3)] == [202, 202, 202]   # while that pass runs
        assert send(server, {"X-GitHub-Event": "push"}, PUSH)[0] == 401   # starts nothing
        passes.release.set()
        wait_for(lambda: loop.passes == 3, timeout=10, message="the coalesced pass")
        assert deliver() == 202
        wait_for(lambda: loop.passes == 4, timeout=10, message="the next delivery's pass")
        # Pass 3 began after the three deliveries made during pass 2, and they gave no other
        # pass: pass 4 began only after the fifth delivery.
        assert passes.starts == [0, 1, 4, 5]
    finally:
        passes.release.set()
        assert loop.stop(timeout=10)
    assert loop.passes == 4


CRON = """\
schedule: "cron(0 0 1 1 ? *)"  # yearly: the real clock fires nothing in a test
container:
  image: busybox
timeout: 10m
"""


def test_the_daemon_serves_the_github_webhook_with_its_secret(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("CRONCTL_WEBHOOK_SECRET", SECRET)
    configured = from_environment()
    assert configured.webhook_secret == SECRET and SECRET not in repr(configured)
    (tmp_path / "crons.d").mkdir()
    (tmp_path / "crons.d" / "hello.yaml").write_text(CRON)
    settings = settings.with_(repo=str(tmp_path), listen="127.0.0.1:0", sqs_wait_s=1,
                              cluster="test", interval_s=3600,
                              webhook_secret=configured.webhook_secret)
    bootstrap(AwsClients(settings), settings)
    built = build_daemon(settings, cert_fetch=moto_cert_fetcher)
    assert "POST /v1/sync" in built.summary[-1] and "POST /reconcile" not in built.summary[-1]
    built.daemon.start()
    try:
        wait_for(lambda: built.loop.passes == 1, timeout=20, message="the first pass")
        assert send(built.http, {"X-Hub-Signature-256": github_signature("nope", PUSH)},
                    PUSH)[0] == 401
        assert send(built.http, signed(PUSH, event="ping"), PUSH)[0] == 200
        assert built.loop.passes == 1
        assert send(built.http, signed(PUSH), PUSH)[0] == 202
        wait_for(lambda: built.loop.passes == 2, timeout=20, message="the webhook's pass")
        assert built.loop.last_result.ok
    finally:
        assert built.daemon.stop(budget_s=30)
