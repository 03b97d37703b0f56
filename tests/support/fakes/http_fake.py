"""The base of the monitoring services' fakes: a ``ThreadingHTTPServer`` on 127.0.0.1 port 0
in a thread, every request recorded (method, path, query, headers, body), and failure modes
(``down``: the connection is closed without an answer; ``slow``: the answer waits; ``500``;
``401``). ``stop()`` shuts it down with a timed join."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def json(self):
        return json.loads(self.body or b"null")

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    body: object = None
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes | str):
            return self.body.encode() if isinstance(self.body, str) else self.body
        return json.dumps(self.body).encode()


@dataclass
class Failure:
    mode: str | None = None        # None, "down", "slow", "500", "401"
    slow_s: float = 10.0
    only: str | None = None        # apply only to paths starting with this prefix
    release: threading.Event = field(default_factory=threading.Event)


class HttpFake:
    """Subclasses implement ``route(request) -> Reply``."""

    name = "fake"

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.failure = Failure()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Received(self.command, parts.path, parse_qs(parts.query),
                                   {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(request)
                failure = fake.failure
                if failure.mode and (failure.only is None
                                     or request.path.startswith(failure.only)):
                    if failure.mode == "down":
                        self.close_connection = True
                        self.connection.close()
                        return
                    if failure.mode == "slow":
                        failure.release.wait(failure.slow_s)
                    elif failure.mode == "500":
                        return self._send(Reply(500, {"error": "internal error"}))
                    elif failure.mode == "401":
                        return self._send(Reply(401, {"error": "missing or invalid API key"}))
                with fake._lock:
                    reply = fake.route(request)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                data = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name=f"fake-{self.name}", daemon=True)
        self._thread.start()

    def route(self, request: Received) -> Reply:  # pragma: no cover - subclasses
        raise NotImplementedError

    def fail(self, mode: str | None, *, only: str | None = None, slow_s: float = 10.0) -> None:
        """Fail every request (or those under ``only``) from now on; ``None`` heals."""
        self.failure.release.set()
        self.failure = Failure(mode, slow_s, only)

    def writes(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.method in WRITES]

    def received(self, prefix: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def stop(self, timeout: float = 5.0) -> None:
        self.failure.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout)
