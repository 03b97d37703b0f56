"""The CI webhook ``POST /reconcile``: absent unless configured, Bearer-authenticated, bounded
body with an optional commit, and end to end it makes a real reconcile loop run a pass."""

from __future__ import annotations

import http.client
import json
from email.message import Message

import pytest
from structlog.testing import capture_logs

from reconciler.service.control.reconcile_loop import ReconcileLoop
from reconciler.service.http.routes import WebhookBodyError, bearer_refusal, webhook_commit
from reconciler.service.http.server import DaemonHttpServer
from tests.support.endpoint import Trigger, endpoint_servers
from tests.support.reconcile_env import cron_yaml, live_state, prepare, write_crons
from tests.support.sns import raw_exchange, status_of
from tests.support.waiting import wait_for

TOKEN = "s3cr3t-webhook-token"
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def serve():
    """Start servers on free ports; stop them (and check they stopped) after the test."""
    with endpoint_servers() as start:
        yield start


def send(server: DaemonHttpServer, headers: dict[str, str] | None = None, body: bytes = b"",
         method: str = "POST", path: str = "/reconcile") -> tuple[int, Message, str]:
    """One request; returns (status, response headers (names case-insensitive), body text)."""
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _line(logs: list[dict], event: str) -> dict:
    """The first ``event`` line; waits for it, since a line may follow the response."""
    return wait_for(lambda: next((e for e in logs if e["event"] == event), None),
                    timeout=5, message=f"a {event} log line")


@pytest.mark.parametrize("configured", [
    {"webhook_token": TOKEN},                       # no callback
    {"on_reconcile": "trigger"},                    # no token
    {"on_reconcile": "trigger", "webhook_token": ""},
])
def test_route_does_not_exist_unless_token_and_callback_are_configured(serve, configured):
    trigger = Trigger()
    kwargs = {k: (trigger if v == "trigger" else v) for k, v in configured.items()}
    server = serve(**kwargs)
    assert send(server, bearer())[0] == 404
    assert send(server, {})[0] == 404
    assert send(server, bearer(), method="GET")[0] == 404
    assert send(server, method="GET", path="/healthz")[0] == 200
    assert trigger.calls == 0


@pytest.mark.parametrize("headers,reason", [
    ({}, "missing_token"),
    ({"Authorization": "Bearer wrong-token"}, "wrong_token"),
    ({"Authorization": f"Bearer {TOKEN}x"}, "wrong_token"),
    ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "wrong_token"),
    ({"Authorization": "Bearer "}, "missing_token"),
    ({"Authorization": f"Basic {TOKEN}"}, "bad_auth_scheme"),
    ({"Authorization": TOKEN}, "bad_auth_scheme"),
    ({"X-Token": TOKEN}, "missing_token"),
])
def test_missing_or_wrong_token_is_401_and_triggers_nothing(serve, headers, reason):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_token=TOKEN)
    with capture_logs() as logs:
        status, response_headers, _ = send(server, headers, body=json.dumps({"commit": SHA})
                                           .encode())
        unauthorized = _line(logs, "webhook_unauthorized")
        request_line = _line(logs, "http_request")
    assert status == 401
    assert response_headers["WWW-Authenticate"] == "Bearer"
    assert trigger.calls == 0
    assert unauthorized["reason"] == reason and unauthorized["log_level"] == "warning"
    assert (request_line["status"], request_line["reason"]) == (401, reason)
    assert TOKEN not in json.dumps(logs)  # the expected token never reaches the logs


def test_duplicate_or_non_ascii_authorization_is_401_not_an_error(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_token=TOKEN)
    twice = (f"POST /reconcile HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
             f"Authorization: Bearer {TOKEN}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode()
    assert status_of(raw_exchange(server.address, twice)) == 401
    non_ascii = (b"POST /reconcile HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                 b"Authorization: Bearer \xe9\xe9\xff\r\n\r\n")
    assert status_of(raw_exchange(server.address, non_ascii)) == 401
    assert trigger.calls == 0


@pytest.mark.parametrize("headers,body", [
    (bearer(), b""),
    ({"Authorization": f"bearer {TOKEN}"}, b""),
    (bearer(), json.dumps({"commit": SHA}).encode()),
    (bearer(), json.dumps({"commit": "ABCDEF1", "ref": "main"}).encode()),
    (bearer(), b"{}"),
])
def test_valid_token_is_202_and_calls_back_once(serve, headers, body):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_token=TOKEN)
    with capture_logs() as logs:
        status, response_headers, text = send(server, headers, body)
        requested = _line(logs, "webhook_reconcile_requested")
    assert (status, json.loads(text)) == (202, {"status": "accepted"})
    assert response_headers["Content-Type"] == "application/json"
    assert trigger.calls == 1
    assert requested["commit"] == (json.loads(body).get("commit") if body else None)


@pytest.mark.parametrize("body,reason", [
    (b"not json", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'"0123456"', "malformed"),
    (b"[" * 100_000, "malformed"),
    (json.dumps({"commit": "xyz1234"}).encode(), "bad_commit"),
    (json.dumps({"commit": "abc123"}).encode(), "bad_commit"),       # 6: too short
    (json.dumps({"commit": SHA + "0"}).encode(), "bad_commit"),      # 41: too long
    (json.dumps({"commit": f"{SHA[:10]}\n"}).encode(), "bad_commit"),
    (json.dumps({"commit": 1234567}).encode(), "bad_commit"),
    (json.dumps({"commit": None}).encode(), "bad_commit"),
])
def test_bad_body_is_400_and_triggers_nothing(serve, body, reason):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_token=TOKEN)
    with capture_logs() as logs:
        status, _, text = send(server, bearer(), body)
        line = _line(logs, "http_request")
    assert status == 400 and text.startswith("rejected: ")
    assert line["reason"] == reason
    assert trigger.calls == 0


def test_oversized_or_unframed_body_is_refused_before_auth_and_trigger(serve):
    trigger = Trigger()
    server = serve(on_reconcile=trigger, webhook_token=TOKEN, max_body=1024)
    # Only the headers are sent: the answer must not wait for the 10 MB body.
    head = (f"POST /reconcile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: 10000000\r\n\r\n").encode()
    assert status_of(raw_exchange(server.address, head)) == 413
    unframed = f"POST /reconcile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    assert status_of(raw_exchange(server.address, unframed.encode(), half_close=True)) == 411
    assert send(server, bearer(), b"{" + b" " * 2000 + b"}")[0] == 413
    assert trigger.calls == 0
    assert send(server, bearer(), b"{" + b" " * 1000 + b"}")[0] == 202  # within the limit
    assert trigger.calls == 1


def test_other_methods_are_405_and_a_failing_callback_is_500(serve):
    server = serve(on_reconcile=Trigger(RuntimeError("loop gone")), webhook_token=TOKEN)
    status, headers, _ = send(server, bearer(), method="GET")
    assert (status, headers["Allow"]) == (405, "POST")
    with capture_logs() as logs:
        assert send(server, bearer())[0] == 500
        assert _line(logs, "webhook_callback_failed")["log_level"] == "error"


@pytest.mark.parametrize("values,reason", [
    ([], "missing_token"),
    ([f"Bearer {TOKEN}"], None),
    ([f"BEARER   {TOKEN}  "], None),
    ([f"Bearer {TOKEN}", f"Bearer {TOKEN}"], "ambiguous_token"),
    (["Bearer"], "missing_token"),
    ([f"Token {TOKEN}"], "bad_auth_scheme"),
    (["Bearer \udcff"], "wrong_token"),
    ([f"Bearer {TOKEN.upper()}"], "wrong_token"),
])
def test_bearer_refusal_table(values, reason):
    assert bearer_refusal(values, TOKEN) == reason


@pytest.mark.parametrize("body,commit", [
    (b"", None), (b"  \n", None), (b"{}", None), (b'{"ref": "main"}', None),
    (b'{"commit": "abcdef0"}', "abcdef0"), (f'{{"commit": "{SHA}"}}'.encode(), SHA),
])
def test_webhook_commit_table(body, commit):
    assert webhook_commit(body) == commit


@pytest.mark.parametrize("body", [b"null", b"{", b'{"commit": ""}', b'{"commit": "g123456"}'])
def test_webhook_commit_refusals(body):
    with pytest.raises(WebhookBodyError):
        webhook_commit(body)


def test_webhook_makes_the_reconcile_loop_run_a_pass(serve, settings, tmp_path):
    clients = prepare(settings)
    write_crons(tmp_path, {"alpha": cron_yaml()})
    settings = settings.with_(repo=str(tmp_path), interval_s=3600)
    loop = ReconcileLoop(clients, settings, owner_id="webhook-test")
    loop.start()
    try:
        server = serve(on_reconcile=loop.trigger, webhook_token=TOKEN)
        wait_for(lambda: loop.passes == 1, timeout=10, message="the first pass")
        assert "test-alpha" in live_state(clients, settings)["rules"]
        write_crons(tmp_path, {"alpha": cron_yaml(), "beta": cron_yaml("rate(1 hour)")})
        assert send(server, {"Authorization": "Bearer wrong"})[0] == 401
        status, _, _ = send(server, bearer(), json.dumps({"commit": SHA}).encode())
        assert status == 202
        wait_for(lambda: loop.passes == 2, timeout=10, message="the webhook's pass")
        assert loop.last_result.ok
        assert set(live_state(clients, settings)["rules"]) >= {"test-alpha", "test-beta"}
    finally:
        assert loop.stop(timeout=10)
