"""The HTTP endpoint under hostile clients: many idle or trickling connections, requests that
never finish arriving, JSON built to exhaust the parser. Loopback only; every loop is bounded
in count and time and every thread started here has a stop event and a timed join."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier
from tests.support.sns import CountingFetch, TestSigner, post, raw_exchange, request, status_of
from tests.support.waiting import wait_for

TOPIC = "arn:aws:sns:us-east-1:123456789012:test-dispatch"
LATENCY_BOUND_S = 1.0  # the requirement: hostile connections delay no answer by more


class Recorder:
    """The daemon's callbacks; notifications are counted."""

    def __init__(self) -> None:
        self.notifications: list[dict] = []

    def on_notification(self, message: dict) -> tuple[int, str]:
        self.notifications.append(message)
        return 200, "started"

    def on_confirmation(self, topic_arn: str, token: str) -> None:
        pass

    def readiness(self) -> tuple[bool, str]:
        return True, "ready"


@pytest.fixture
def serve(tmp_path):
    """Start servers (signer's certificate trusted) on free ports; stop them after the test."""
    TestSigner().write_cert(tmp_path)
    started: list[DaemonHttpServer] = []

    def start(**kwargs) -> tuple[DaemonHttpServer, Recorder]:
        recorder = Recorder()
        verifier = SnsVerifier(TOPIC, CertificateStore(tmp_path, fetch=CountingFetch()))
        server = DaemonHttpServer("127.0.0.1:0", verifier, recorder.on_notification,
                                  recorder.on_confirmation, recorder.readiness, **kwargs)
        server.start()
        started.append(server)
        return server, recorder

    yield start
    for server in started:
        assert server.stop(timeout=10)


def delivery() -> bytes:
    """A valid, freshly signed SNS notification for TOPIC."""
    message = TestSigner().message("Notification", TOPIC, datetime.now(UTC))
    return json.dumps(message).encode()


class Trickler:
    """Holds connections open against the server: ``idle`` ones send nothing; the others send
    ``head`` one byte per ``period_s`` (to every connection in turn, from one thread)."""

    def __init__(self, address: tuple[str, int], idle: int, trickling: int, head: bytes,
                 period_s: float) -> None:
        self.address, self.counts = address, (idle, trickling)
        self.head, self.period_s = head, period_s
        self.idle: list[socket.socket] = []
        self.trickling: list[socket.socket] = []
        self.rounds = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cronctl-test-trickler")

    def __enter__(self) -> Trickler:
        try:
            for group, count in zip((self.idle, self.trickling), self.counts, strict=True):
                group.extend(socket.create_connection(self.address, timeout=5)
                             for _ in range(count))
        except BaseException:
            self._close()
            raise
        self._thread.start()
        return self

    def _run(self) -> None:
        for position in range(len(self.head)):  # bounded: one round per byte of the head
            if self._stop.is_set():
                return
            for sock in list(self.trickling):
                try:
                    sock.send(self.head[position:position + 1])
                except OSError:  # cut by the server (its deadline)
                    self.trickling.remove(sock)
                    self.closed_by_server += 1
            self.rounds += 1
            if self._stop.wait(self.period_s):
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self._close()
        assert not self._thread.is_alive()

    def _close(self) -> None:
        for sock in self.idle + self.trickling:
            sock.close()


def timed(call):
    """(result of ``call()``, seconds it took)."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_thousand_idle_and_trickling_connections_delay_no_answer(serve):
    server, recorder = serve(read_timeout_s=30)  # no attacker is cut while measuring
    # One header line per 6 s would do; one byte per 0.5 s keeps the server busier.
    head = b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n" + b"X" * 200
    with Trickler(server.address, idle=500, trickling=500, head=head, period_s=0.5) as trickler:
        wait_for(lambda: trickler.rounds >= 3, timeout=30, message="three trickled rounds")
        for _ in range(3):
            answer, took = timed(lambda: post(server.url, "/sns", delivery(), timeout=5))
            assert answer == (200, "started")
            assert took < LATENCY_BOUND_S, f"/sns answered in {took:.2f} s"
            answer, took = timed(lambda: request(server.url, "GET", "/healthz", timeout=5))
            assert answer == (200, "ok\n")
            assert took < LATENCY_BOUND_S, f"/healthz answered in {took:.2f} s"
        assert trickler.closed_by_server == 0  # still under attack while measuring
    assert len(recorder.notifications) == 3


@pytest.mark.parametrize("head,trickle", [
    # the headers at once, then the body one byte per 0.5 s
    (b"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", b"{" * 100),
    # the headers one byte per 0.5 s
    (b"", b"POST /sns HTTP/1.1\r\nHost: x\r\n" + b"X" * 100),
])
def test_a_trickled_request_is_cut_at_its_total_deadline(serve, head, trickle):
    deadline_s = 1.0
    server, recorder = serve(read_timeout_s=deadline_s)
    stop = threading.Event()

    with socket.create_connection(server.address, timeout=10) as sock:
        opened = time.monotonic()
        sock.sendall(head)

        def send_slowly() -> None:
            for position in range(len(trickle)):  # bounded; stops when the server cuts
                if stop.wait(0.5):
                    return
                try:
                    sock.send(trickle[position:position + 1])
                except OSError:
                    return

        sender = threading.Thread(target=send_slowly, name="cronctl-test-slow-sender")
        sender.start()
        try:
            answer = sock.recv(4096)
            took = time.monotonic() - opened
        finally:
            stop.set()
            sender.join(10)
        assert not sender.is_alive()
        assert status_of(answer) == 408
        assert b"Connection: close" in answer
        # Each byte came well within any per-read timeout: only the total deadline cuts it.
        assert deadline_s <= took < deadline_s + 5
        try:
            rest = sock.recv(4096)
        except ConnectionResetError:
            rest = b""
        assert rest == b""  # the server closed the connection
    assert recorder.notifications == []
    assert request(server.url, "GET", "/healthz", timeout=5) == (200, "ok\n")


DEEP = 100_000


@pytest.mark.parametrize("body", [
    b"[" * DEEP,                                       # unfinished and deep
    b"[" * DEEP + b"]" * DEEP,                         # valid JSON, 100,000 deep
    b'{"a":' * 40_000 + b"1" + b"}" * 40_000,          # deep objects
])
def test_deeply_nested_json_to_sns_is_400_and_the_server_still_answers(serve, body):
    server, recorder = serve()
    with capture_logs() as logs:
        assert post(server.url, "/sns", body) == (400, "rejected: malformed\n")
        line = wait_for(lambda: next((e for e in logs if e["event"] == "http_request"), None),
                        timeout=5, message="the request's log line")
    assert (line["status"], line["reason"]) == (400, "malformed")
    assert request(server.url, "GET", "/healthz") == (200, "ok\n")
    assert post(server.url, "/sns", delivery()) == (200, "started")
    assert len(recorder.notifications) == 1


@pytest.mark.parametrize("body", [
    b"1" * 250_000,                                    # one 250,000-digit number
    b'{"Type": "Notification", "MessageId": ' + b"9" * 250_000 + b"}",
    b'{"n": 1e' + b"9" * 250_000 + b"}",               # a float exponent out of range
    b'"' + b"a" * 250_000 + b'"',                      # one long string
    json.dumps({**json.loads(delivery()), "Message": "m" * 250_000}).encode(),
])
def test_huge_numbers_and_strings_under_the_limit_get_an_answer(serve, body):
    server, recorder = serve()
    assert len(body) < server.max_body
    host, port = server.address
    head = (f"POST /sns HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    answer = raw_exchange((host, port), head + body, timeout=10)
    assert status_of(answer) == 400  # refused, never a dropped connection
    assert recorder.notifications == []
    assert request(server.url, "GET", "/healthz") == (200, "ok\n")


def test_at_the_connection_cap_the_oldest_waiting_connection_makes_room(serve):
    server, _ = serve(max_connections=20)
    with Trickler(server.address, idle=20, trickling=0, head=b"", period_s=0.5):
        for _ in range(3):  # each new client evicts the oldest idle one
            answer, took = timed(lambda: request(server.url, "GET", "/healthz", timeout=5))
            assert answer == (200, "ok\n")
            assert took < LATENCY_BOUND_S


def test_the_descriptor_limit_is_raised_for_the_connection_cap(serve, monkeypatch):
    raised: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 8192))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: raised.append(limits))
    with capture_logs() as logs:
        server, _ = serve(max_connections=2000)
    assert raised == [(2000 + 256, 8192)]
    (line,) = [e for e in logs if e["event"] == "http_fd_limit_raised"]
    assert (line["soft_before"], line["soft"]) == (1024, 2256)
    (listening,) = [e for e in logs if e["event"] == "http_listening"]
    assert listening["max_connections"] == 2000


def test_without_a_raisable_limit_the_cap_is_lowered(serve, monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: pytest.fail("raised"))
    with capture_logs() as logs:
        server, _ = serve(max_connections=4096)
    (lowered,) = [e for e in logs if e["event"] == "http_connection_cap_lowered"]
    assert lowered["cap"] == 1024 - 256
    assert request(server.url, "GET", "/healthz") == (200, "ok\n")


def test_stop_closes_idle_and_trickling_connections_and_joins_every_thread(serve):
    server, _ = serve()
    head = b"POST /sns HTTP/1.1\r\nHost: x\r\n" + b"X" * 100
    with Trickler(server.address, idle=50, trickling=50, head=head, period_s=0.2) as trickler:
        wait_for(lambda: trickler.rounds >= 2, timeout=10, message="two trickled rounds")
        stopped, took = timed(lambda: server.stop(timeout=10))
        assert stopped and took < 5  # nothing in flight: no waiting for the slow clients
        assert not [t for t in threading.enumerate() if t.name.startswith("cronctl-http")]
        # Those part way through a request were told to come back; the idle ones just closed.
        answer = trickler.trickling[0].recv(4096)
        assert status_of(answer) == 503 and b"Retry-After: 1" in answer
        assert trickler.idle[0].recv(4096) == b""
