"""The daemon's HTTP endpoint: SNS deliveries, liveness and readiness (design §4.2).

Routes: ``POST /sns`` (verified SNS messages), ``GET /healthz``, ``GET /readyz`` and, when a
token and a callback are configured, ``POST /reconcile`` (the CI webhook; see ``http_routes``).
SNS counts any 2xx-4xx answer as delivered, so refused input (malformed, forged, another
topic, stale) gets a 400 and only a failure worth retrying gets a 5xx. Every request is
logged once (method, path, status, reason, duration_ms). Each connection is served on its
own thread with a socket read timeout, so a client that stalls holds only its own thread.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from reconciler.logs import get_logger
from reconciler.service.http_routes import (
    WEBHOOK_PATH,
    BodyRefused,
    allowed_methods,
    answer_webhook,
    declared_length,
    parse_listen,
)
from reconciler.service.sns_verify import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    SnsRejected,
    SnsVerifier,
)

log = get_logger("cronctl.http")

NotificationHandler = Callable[[dict], tuple[int, str]]
ConfirmationHandler = Callable[[str, str], None]
Readiness = Callable[[], tuple[bool, str]]
ReconcileTrigger = Callable[[], None]

__all__ = ["DaemonHttpServer", "parse_listen"]
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
                 b"Connection: close\r\nRetry-After: 1\r\n\r\nbusy\n")


class _Server(ThreadingHTTPServer):
    """One named, tracked thread per connection; joined with a deadline on stop."""

    daemon_threads = False
    block_on_close = True
    timeout = 0.1  # how often the accept loop looks at the stop Event
    # SNS delivers a minute's schedules in one burst; socketserver's default backlog of 5 would
    # reset most of those connections (they would only come back through SNS retries).
    request_queue_size = 128

    def __init__(self, address, handler, app: DaemonHttpServer) -> None:
        self.app = app
        self._workers: set[threading.Thread] = set()
        self._workers_lock = threading.Lock()
        self._ids = itertools.count(1)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self._workers_lock:
            if len(self._workers) >= self.app.max_connections:
                _refuse_busy(request)
                return
            worker = threading.Thread(
                target=self.process_request_thread, args=(request, client_address),
                name=f"cronctl-http-conn-{next(self._ids)}", daemon=False)
            self._workers.add(worker)
        worker.start()

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._workers_lock:
                self._workers.discard(threading.current_thread())

    def handle_error(self, request, client_address) -> None:
        log.exception("http_connection_error", client=client_address[0])

    def close_and_join(self, timeout: float) -> bool:
        """Stop listening, then wait up to ``timeout`` for the connections in flight."""
        self.socket.close()
        deadline = time.monotonic() + timeout
        with self._workers_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers)

    def server_close(self) -> None:
        self.close_and_join(self.app.read_timeout_s * 2)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _refuse_busy(request: socket.socket) -> None:
    try:
        request.sendall(BUSY_RESPONSE)
    except OSError:
        pass
    finally:
        request.close()
    log.warning("http_request", method="", path="", status=503, reason="busy", duration_ms=0)


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; every response closes the connection."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "cronctl"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.app.read_timeout_s
        super().setup()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET  # answered 405 / 404

    def _dispatch(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        status, reason = 500, "internal"
        try:
            status, reason = self._route(path)
        except TimeoutError:
            status, reason = 408, "read_timeout"
            self._send(status, "request timed out\n")
        finally:
            fields = {"method": self.command, "path": path, "status": status,
                      "reason": reason,
                      "duration_ms": round((time.monotonic() - started) * 1000, 1)}
            if status >= 500:
                log.error("http_request", **fields)
            elif status >= 400:
                log.warning("http_request", **fields)
            else:
                log.info("http_request", **fields)

    def _route(self, path: str) -> tuple[int, str]:
        allowed = allowed_methods(path, self.server.app.webhook_enabled)
        if allowed is None:
            return self._send(404, "not found\n"), "not_found"
        if self.command not in allowed:
            return self._send(405, "method not allowed\n", {"Allow": ", ".join(allowed)}), \
                "method_not_allowed"
        if path == "/healthz":
            return self._send(200, "ok\n"), "ok"
        if path == "/readyz":
            return self._readyz()
        if path == WEBHOOK_PATH:
            return self._reconcile()
        return self._sns()

    def _readyz(self) -> tuple[int, str]:
        try:
            ready, detail = self.server.app.readiness()
        except Exception:
            log.exception("readiness_check_failed")
            return self._send(503, "readiness check failed\n"), "readiness_error"
        status = 200 if ready else 503
        return self._send(status, f"{detail}\n"), "ready" if ready else "not_ready"

    def _reconcile(self) -> tuple[int, str]:
        app = self.server.app
        body, refusal = self._read_body(app.max_body)
        if refusal:
            return refusal
        answer = answer_webhook(self.headers.get_all("Authorization") or [], body,
                                app.webhook_token, app.on_reconcile, self.client_address[0])
        return self._send(answer.status, answer.text, answer.headers,
                          answer.content_type), answer.reason

    def _sns(self) -> tuple[int, str]:
        app = self.server.app
        body, refusal = self._read_body(app.max_body)
        if refusal:
            return refusal
        try:
            message = app.verifier.verify(body)
        except SnsRejected as exc:
            status = 503 if exc.retryable else 400
            log.warning("sns_rejected", reason=exc.reason, detail=str(exc))
            return self._send(status, f"rejected: {exc.reason}\n"), exc.reason
        try:
            return self._deliver(message)
        except Exception:
            log.exception("sns_callback_failed", type=message.get("Type"),
                          message_id=message.get("MessageId"))
            return self._send(500, "internal error\n"), "callback_error"

    def _deliver(self, message: dict) -> tuple[int, str]:
        app = self.server.app
        kind = message["Type"]
        if kind == NOTIFICATION:
            status, text = app.on_notification(message)
            return self._send(status, text), "notification"
        if message["TopicArn"] != app.verifier.topic_arn:  # verify() already ensures this
            return self._send(400, "rejected: topic\n"), "topic"
        if kind == SUBSCRIPTION_CONFIRMATION:
            app.on_subscription_confirmation(message["TopicArn"], message["Token"])
            log.info("sns_subscription_confirmed", topic_arn=message["TopicArn"])
            return self._send(200, "confirmed\n"), "subscription_confirmation"
        log.info("sns_unsubscribe_confirmation", topic_arn=message["TopicArn"],
                 message_id=message["MessageId"])
        return self._send(200, "ok\n"), "unsubscribe_confirmation"

    def _read_body(self, limit: int) -> tuple[bytes, tuple[int, str] | None]:
        try:
            length = declared_length(self.headers, limit)
        except BodyRefused as exc:
            return b"", (self._send(exc.status, exc.text), exc.reason)
        body = self.rfile.read(length)
        if len(body) != length:
            return b"", (self._send(400, "body shorter than Content-Length\n"), "short_body")
        return body, None

    def _send(self, status: int, text: str, headers: dict[str, str] | None = None,
              content_type: str = "text/plain; charset=utf-8") -> int:
        payload = text.encode("utf-8")
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return status

    def log_message(self, format: str, *args) -> None:
        pass  # each request gets one structured line from _dispatch instead

    def log_error(self, format: str, *args) -> None:
        log.warning("http_protocol_error", client=self.client_address[0],
                    detail=format % args)


class DaemonHttpServer:
    """The daemon's HTTP endpoint; ``start()`` serves on thread ``cronctl-http``,
    ``stop()`` stops accepting, lets requests in flight finish and joins every thread.

    ``POST /reconcile`` exists only with both ``on_reconcile`` (which must only wake the
    reconcile loop, never run a pass itself) and a non-empty ``webhook_token``."""

    def __init__(self, listen: str, verifier: SnsVerifier, on_notification: NotificationHandler,
                 on_subscription_confirmation: ConfirmationHandler, readiness: Readiness,
                 max_body: int = 256 * 1024 + 16 * 1024, read_timeout_s: float = 10,
                 max_connections: int = 256, on_reconcile: ReconcileTrigger | None = None,
                 webhook_token: str | None = None) -> None:
        self.listen = parse_listen(listen)
        self.verifier = verifier
        self.on_notification = on_notification
        self.on_subscription_confirmation = on_subscription_confirmation
        self.readiness = readiness
        self.max_body = max_body
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.on_reconcile = on_reconcile
        self.webhook_token = webhook_token or None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Bind the listening socket and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("server already started")
        server_class = _Server6 if ":" in self.listen[0] else _Server
        self._server = server_class(self.listen, _Handler, self)
        self._thread = threading.Thread(target=self._serve, name="cronctl-http", daemon=False)
        self._thread.start()
        host, port = self.address
        log.info("http_listening", host=host, port=port)

    def _serve(self) -> None:
        server = self._server
        while not self._stop.is_set():
            server.handle_request()

    def stop(self, timeout: float = 30) -> bool:
        """Stop accepting; wait up to ``timeout`` for requests in flight. True if all ended."""
        if self._server is None or self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        finished = self._server.close_and_join(max(0.0, deadline - time.monotonic()))
        finished = finished and not self._thread.is_alive()
        if not finished:
            log.warning("http_stop_timed_out", timeout_s=timeout)
        return finished

    @property
    def webhook_enabled(self) -> bool:
        """True when ``POST /reconcile`` exists (a callback and a token are configured)."""
        return self.on_reconcile is not None and self.webhook_token is not None

    @property
    def address(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
