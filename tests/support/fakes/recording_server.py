"""The base of the notifiers' fakes: a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 port 0 in a
thread of its own, every request recorded (method, path, headers, body), and outages on
demand: ``fail(status, times=None)`` answers ``status`` (500, 429...) to the next ``times``
requests (None: until ``recover()``), ``down()`` closes connections without an answer until
``recover()``. ``stop()`` shuts the server down and joins its thread with a deadline."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def of_json(cls, status: int, data) -> Answer:
        return cls(status, json.dumps(data).encode())


class RecordingServer:
    """Subclasses implement ``route(request) -> Answer``; ``received`` lists what came in and
    was answered by ``route`` (not the requests refused by an outage: ``refused`` has those)."""

    name = "fake"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused: list[Received] = []
        self._lock = threading.Lock()
        self._failure: tuple[int | None, int | None] | None = None   # (status|None=down, times)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> RecordingServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received("POST", self.path, {k.lower(): v for k, v in
                                                       self.headers.items()}, body)
                answer = fake._answer(request)
                if answer is None:              # down: no answer at all
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"fake-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        if self._server is None:
            return True
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        assert self.stop(), f"the {self.name} fake did not stop in time"

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- outages ------------------------------------------------------------------------
    def fail(self, status: int, times: int | None = None) -> None:
        """Answer ``status`` to the next ``times`` requests (None: until ``recover``)."""
        with self._lock:
            self._failure = (status, times)

    def down(self) -> None:
        """Close every connection without an answer until ``recover``."""
        with self._lock:
            self._failure = (None, None)

    def recover(self) -> None:
        with self._lock:
            self._failure = None

    def _answer(self, request: Received) -> Answer | None:
        with self._lock:
            failure = self._failure
            if failure is not None:
                status, times = failure
                if times is not None:
                    self._failure = (status, times - 1) if times > 1 else None
                self.refused.append(request)
                if status is None:
                    return None
                return Answer.of_json(status, {"error": f"fake {self.name} answering {status}"})
            self.received.append(request)
        return self.route(request)

    def route(self, request: Received) -> Answer:  # pragma: no cover - subclasses
        raise NotImplementedError
