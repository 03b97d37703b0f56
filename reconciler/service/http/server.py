"""The daemon's HTTP endpoint: SNS deliveries, liveness and readiness (design §4.2).

Routes (``http.routes``): ``POST /sns`` (verified SNS messages), ``GET /healthz``,
``GET /readyz``, the status page ``GET /`` and ``GET /crons/<name>`` (with ``status_pages``:
``service.http.status_page``) and, when a token and a callback are configured, ``POST /reconcile``
(the CI webhook); ``POST /v1/sync`` when a secret and a callback are configured (the GitHub
webhook); ``GET /metrics`` when the daemon has metrics. SNS counts any 2xx-4xx answer as
delivered, so refused input (malformed, forged, another topic, stale) gets a 400 and only a
failure worth retrying gets a 5xx. Every request is logged once (method, path, status,
reason, duration_ms).

Served with waitress because its single I/O thread reads every connection without blocking
and buffers a whole request, headers and body, before a fixed pool of worker threads sees
it: a slow, idle or hostile client costs a socket and a few kilobytes, never a worker, and
no per-client limit is needed (behind a load balancer every client shares a few addresses).
What waitress does not do is added here, in that same I/O thread:

- a total deadline per request, ``read_timeout_s`` from the connection's accept to the last
  byte of its body, however the bytes trickle in: the request is then answered 408 and its
  connection closed (a connection that sent nothing is just closed);
- a connection cap kept below the process's file descriptor limit, whose soft value is
  raised towards the hard one at start: at the cap, the oldest connection that has no
  request in flight is closed to make room, so a new client never waits behind idle ones;
- one request per connection (every answer closes it), ``Transfer-Encoding`` refused
  with 411, and the project's answers and log line for what is refused before a route runs
  (413 over ``max_body``, or the route's own bound, before the body is read, 400 for a
  malformed request or a body cut short, 431 for oversized headers).
"""

from __future__ import annotations

import errno
import resource
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from urllib.parse import urlsplit

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask
from waitress.utilities import (
    BadRequest,
    RequestEntityTooLarge,
    RequestHeaderFieldsTooLarge,
    ServerNotImplemented,
)

from reconciler.errors import ConfigError
from reconciler.logs import get_logger
from reconciler.service.http.routes import (
    GITHUB_PATH,
    Answer,
    Request,
    authorization_values,
    body_limit,
    parse_listen,
    route,
)
from reconciler.service.http.sns_verify import SnsVerifier
from reconciler.service.metrics import Metrics

log = get_logger("cronctl.http")

NotificationHandler = Callable[[dict], tuple[int, str]]
ConfirmationHandler = Callable[[str, str], None]
Readiness = Callable[[], tuple[bool, str]]
ReconcileTrigger = Callable[[], None]
StatusPages = Callable[[str, str], Answer | None]

__all__ = ["DaemonHttpServer", "parse_listen"]

WORKERS = 16  # threads that run routes; complete requests beyond them wait in a queue
TICK_S = 0.1  # how often the I/O thread enforces deadlines and looks at the stop event
FD_RESERVE = 256  # descriptors left to the rest of the process (AWS clients, files, git)
MAX_HEADER_BYTES = 32 * 1024
BACKLOG = 1024  # SNS delivers a minute's schedules in one burst
CUT_GRACE_S = 1.0  # a refused connection whose answer is not taken by then is dropped
TEXT = "text/plain; charset=utf-8"
_ACCEPTED_AT = "cronctl.accepted_at"


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status {status}"


def _raw_answer(status: int, text: str, headers: dict[str, str] | None = None) -> bytes:
    payload = text.encode("utf-8")
    lines = [f"HTTP/1.1 {_status_line(status)}", f"Content-Type: {TEXT}",
             f"Content-Length: {len(payload)}", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def _log_request(method: str, path: str, status: int, reason: str, started: float) -> None:
    fields = {"method": method, "path": path, "status": status, "reason": reason,
              "duration_ms": round((time.monotonic() - started) * 1000, 1)}
    if status >= 500:
        log.error("http_request", **fields)
    elif status >= 400:
        log.warning("http_request", **fields)
    else:
        log.info("http_request", **fields)


def _method_and_path(request: HTTPRequestParser | None) -> tuple[str, str]:
    """A request's method and path as far as they were parsed ("" where unknown)."""
    if (request is None or not request.headers_finished
            or isinstance(request.error, RequestHeaderFieldsTooLarge)):
        return "", ""
    return (getattr(request, "command", ""),
            urlsplit(getattr(request, "request_uri", "")).path)


class _Refusal:
    """A request refused by the server before any route sees it."""

    def __init__(self, status: int, text: str, reason: str) -> None:
        self.status, self.text, self.reason = status, text, reason


def _refusal(error: object, max_body: int) -> _Refusal:
    """Our answer for an error found by waitress's parser (or by ours)."""
    if isinstance(error, _Refusal):
        return error
    if isinstance(error, RequestEntityTooLarge):
        return _Refusal(413, f"body over {max_body} bytes\n", "too_large")
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return _Refusal(431, "request headers too large\n", "headers_too_large")
    if isinstance(error, ServerNotImplemented):  # a transfer coding other than chunked
        return _Refusal(411, "Content-Length required\n", "length_required")
    if isinstance(error, BadRequest):
        if "Content-Length" in str(getattr(error, "body", "")):
            return _Refusal(400, "bad Content-Length\n", "bad_length")
        return _Refusal(400, "bad request\n", "bad_request")
    return _Refusal(500, "internal error\n", "internal")


class _Parser(HTTPRequestParser):
    """waitress's parser, refusing chunked bodies (411) and bodies over the bound of the
    request's path (413, ``body_limit``) as soon as the headers are in."""

    def __init__(self, adj: Adjustments, body_limit: Callable[[str], int] | None = None) -> None:
        super().__init__(adj)
        self.body_limit = body_limit
        self._bounded = False

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.chunked and self.error is None:
            self.error = _Refusal(411, "Content-Length required\n", "length_required")
            self.completed = True
        elif self.headers_finished and not self._bounded and self.body_limit is not None:
            self._bounded = True
            self._bound_body()
        return consumed

    def _bound_body(self) -> None:
        # waitress refuses bodies over the largest bound of any path; this, over the path's.
        if self.error is not None and not isinstance(self.error, RequestEntityTooLarge):
            return
        limit = self.body_limit(urlsplit(getattr(self, "request_uri", "")).path)
        if self.content_length > limit:
            self.error = _Refusal(413, f"body over {limit} bytes\n", "too_large")
            self.completed = True
            self.expect_continue = False  # no "100 Continue" for a body that is refused


class _Task(WSGITask):
    """Runs the application for one complete request; the connection closes after it."""

    def get_environment(self) -> dict:
        environ = super().get_environment()
        environ[_ACCEPTED_AT] = self.channel.accepted_at
        return environ

    def build_response_header(self) -> bytes:
        self.set_close_on_finish()
        return super().build_response_header()


class _ErrorTask(ErrorTask):
    """Answers a request the parser refused, with our text and log line."""

    def execute(self) -> None:
        request = self.request
        refusal = _refusal(request.error, self.channel.server.max_body)
        method, path = _method_and_path(request)
        payload = refusal.text.encode("utf-8")
        self.status = _status_line(refusal.status)
        self.response_headers.extend([("Content-Type", TEXT),
                                      ("Content-Length", str(len(payload)))])
        self.set_close_on_finish()
        self.content_length = len(payload)
        self.write(payload)
        _log_request(method, path, refusal.status, refusal.reason, self.channel.accepted_at)


class _Channel(HTTPChannel):
    """One connection, read by the I/O thread until its request is complete."""

    parser_class = _Parser
    task_class = _Task
    error_task_class = _ErrorTask

    def __init__(self, server, sock, addr, adj, map=None) -> None:
        self.accepted_at = time.monotonic()
        self.cut_at: float | None = None
        self.parser_class = partial(_Parser, body_limit=server.body_limit)
        super().__init__(server, sock, addr, adj, map=map)

    @property
    def receiving(self) -> bool:
        """Idle or part way through its request: nothing queued, answered or being cut."""
        return (self.cut_at is None and not self.requests and not self.close_when_flushed
                and not self.will_close and self.connected)

    def handle_read(self) -> None:
        try:
            data = self.socket.recv(self.adj.recv_bytes)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        elif self.request is not None and self.receiving:
            # The client ended its side in the middle of a request: say why it is refused.
            if self.request.headers_finished:
                self.cut(400, "body shorter than Content-Length\n", "short_body")
            else:
                self.cut(400, "incomplete request\n", "incomplete_request")
        else:
            self.handle_close()

    def cut(self, status: int, text: str, reason: str, headers: dict[str, str] | None = None,
            answer_idle: bool = False) -> None:
        """End a request that will not be completed: answer it (when any of it arrived, or
        ``answer_idle``), log it, and close the connection once the answer is sent."""
        self.cut_at = time.monotonic()
        request, self.request = self.request, None
        if request is None and not answer_idle:
            self.handle_close()
            return
        method, path = _method_and_path(request)
        if request is not None:
            request.close()
        payload = _raw_answer(status, text, headers)
        with self.outbuf_lock:
            self.outbufs[-1].append(payload)
            self.total_outbufs_len += len(payload)
        self.close_when_flushed = True
        _log_request(method, path, status, reason, self.accepted_at)


class _Server(TcpWSGIServer):
    """The listening socket; accepts up to ``cap`` connections and keeps their deadlines."""

    channel_class = _Channel

    def __init__(self, application, channels: dict, sock: socket.socket,
                 workers: ThreadedTaskDispatcher, adj: Adjustments, cap: int,
                 deadline_s: float, max_body: int,
                 body_limit: Callable[[str], int] | None = None) -> None:
        self.cap, self.deadline_s, self.max_body = cap, deadline_s, max_body
        self.body_limit = body_limit or (lambda _path: max_body)
        self.listening = True
        self._accept_paused_until = 0.0
        super().__init__(application, map=channels, _sock=sock, dispatcher=workers, adj=adj,
                         bind_socket=False,
                         sockinfo=(sock.family, sock.type, sock.proto, sock.getsockname()))

    def readable(self) -> bool:
        # Replaces waitress's connection limit (which stops accepting, so new clients wait
        # behind idle ones) and its idle sweep: see ``handle_accept`` and ``sweep``.
        return self.accepting and time.monotonic() >= self._accept_paused_until

    def maintenance(self, now: float) -> None:
        pass

    def handle_accept(self) -> None:
        try:
            pair = self.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._accept_paused_until = time.monotonic() + TICK_S
            log.warning("http_accept_failed", error=str(exc))
            return
        if pair is None:
            return
        try:
            channel = self.channel_class(self, pair[0], pair[1], self.adj, map=self._map)
        except OSError as exc:  # the client went away before it could be set up
            pair[0].close()
            log.warning("http_accept_failed", error=str(exc))
            return
        if len(self.active_channels) > self.cap:
            self._make_room(channel)

    def _make_room(self, newcomer: _Channel) -> None:
        """Over the cap: close the oldest connection still waiting for its request, or
        answer the newcomer 503 when every other connection has a request in flight."""
        waiting = [c for c in self.active_channels.values()
                   if c is not newcomer and isinstance(c, _Channel) and c.receiving]
        if not waiting:
            newcomer.cut(503, "busy\n", "busy", {"Retry-After": "1"}, answer_idle=True)
            return
        oldest = min(waiting, key=lambda c: c.accepted_at)
        oldest.cut(503, "too many connections\n", "evicted", {"Retry-After": "1"})

    def sweep(self, now: float) -> None:
        """Answer 408 to requests past their deadline; drop refused connections that do not
        take their answer."""
        for channel in list(self.active_channels.values()):
            if channel.cut_at is not None:
                if now - channel.cut_at > CUT_GRACE_S:
                    channel.handle_close()
            elif channel.receiving and now - channel.accepted_at >= self.deadline_s:
                channel.cut(408, "request timed out\n", "deadline")

    def stop_listening(self) -> None:
        """Close the listening socket (new connections are refused) and the connections
        that have no complete request; requests in flight go on."""
        self.listening = False
        wasyncore.dispatcher.close(self)  # not ``close()``: the trigger is still needed
        for channel in list(self.active_channels.values()):
            if channel.receiving:
                channel.cut(503, "shutting down\n", "stopping", {"Retry-After": "1"})


class _Workers(ThreadedTaskDispatcher):
    """waitress's worker pool, with named non-daemon threads that ``stop`` joins."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[threading.Thread] = []

    def start_new_thread(self, target, thread_no) -> None:
        thread = threading.Thread(target=target, args=(thread_no,), daemon=False,
                                  name=f"cronctl-http-worker-{thread_no}")
        self.started.append(thread)
        thread.start()

    def add_task(self, task) -> None:
        # As waitress's, without its warning per queued request: a burst of SNS deliveries
        # queues by design.
        with self.lock:
            self.queue.append(task)
            self.queue_cv.notify()

    def stop(self, deadline: float) -> bool:
        """Let the workers finish their current request and end; True if all ended."""
        self.set_thread_count(0)
        for thread in self.started:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            while self.queue:
                self.queue.popleft().cancel()
        return not any(thread.is_alive() for thread in self.started)


def _connection_cap(wanted: int) -> int:
    """``wanted`` connections, or fewer when the descriptor limit cannot be raised enough.

    The soft ``RLIMIT_NOFILE`` is raised towards the hard limit when it is below ``wanted``
    plus ``FD_RESERVE`` (a log line says so)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            except (ValueError, OSError) as exc:
                log.warning("http_fd_limit_not_raised", soft=soft, hard=hard, error=str(exc))
            else:
                log.info("http_fd_limit_raised", soft_before=soft, soft=target, hard=hard)
                soft = target
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    cap = max(soft - FD_RESERVE, soft // 2, 1)
    log.warning("http_connection_cap_lowered", wanted=wanted, cap=cap, fd_soft_limit=soft)
    return cap


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound; ``ConfigError`` naming the address and setting if not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = ("address already in use" if exc.errno == errno.EADDRINUSE
               else exc.strerror or str(exc))
        raise ConfigError(f"cannot listen on {shown}: {why}; set another address with "
                          f"--listen or CRONCTL_LISTEN") from None
    return sock


class DaemonHttpServer:
    """The daemon's HTTP endpoint; ``start()`` serves on thread ``cronctl-http`` (I/O) and
    ``cronctl-http-worker-*`` (routes); ``stop()`` stops accepting, lets requests in flight
    finish and joins every thread.

    ``read_timeout_s`` is the total time a request may take to arrive (headers and body,
    from the connection's accept); ``max_connections`` caps open connections (lowered to
    fit the descriptor limit). ``POST /reconcile`` exists only with both ``on_reconcile``
    (which must only wake the reconcile loop, never run a pass itself) and a non-empty
    ``webhook_token``; ``POST /v1/sync`` only with ``on_reconcile`` and a non-empty
    ``webhook_secret``; ``GET /metrics`` only with ``metrics``. ``status_pages`` answers the
    status page's paths before any other route (``service.http.status_page.StatusPages.answer``)."""

    def __init__(self, listen: str, verifier: SnsVerifier, on_notification: NotificationHandler,
                 on_subscription_confirmation: ConfirmationHandler, readiness: Readiness,
                 max_body: int = 256 * 1024 + 16 * 1024, read_timeout_s: float = 10,
                 max_connections: int = 4096, on_reconcile: ReconcileTrigger | None = None,
                 webhook_token: str | None = None, webhook_secret: str | None = None,
                 metrics: Metrics | None = None,
                 status_pages: StatusPages | None = None) -> None:
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
        self.webhook_secret = webhook_secret or None
        self.metrics = metrics
        self.status_pages = status_pages
        self._server: _Server | None = None
        self._workers: _Workers | None = None
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._channels: dict = {}
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._trigger_closed = False

    def start(self) -> None:
        """Bind the listening socket and start accepting connections.

        Raises ``ConfigError`` when the address cannot be bound (in use, not local)."""
        if self._server is not None:
            raise RuntimeError("server already started")
        cap = _connection_cap(self.max_connections)
        sock = _bind(*self.listen)
        workers = _Workers()
        try:
            # poll, not select: select cannot watch descriptors above 1023
            adj = Adjustments(sockets=[sock], ident="cronctl", backlog=BACKLOG,
                              asyncore_use_poll=True, clear_untrusted_proxy_headers=False,
                              log_socket_errors=False,  # clients that went away: not errors
                              max_request_header_size=MAX_HEADER_BYTES,
                              # waitress refuses a body of ``max_request_body_size`` or more;
                              # the parser then holds each path to its own bound
                              max_request_body_size=max(self.max_body,
                                                        self._body_limit(GITHUB_PATH)) + 1)
            self._server = _Server(self._app, self._channels, sock, workers, adj, cap,
                                   self.read_timeout_s, self.max_body, self._body_limit)
        except BaseException:
            sock.close()
            raise
        self._address = sock.getsockname()[:2]
        self._workers = workers
        workers.set_thread_count(WORKERS)
        self._thread = threading.Thread(target=self._serve, name="cronctl-http", daemon=False)
        self._thread.start()
        host, port = self.address
        log.info("http_listening", host=host, port=port, workers=WORKERS,
                 max_connections=cap, request_deadline_s=self.read_timeout_s,
                 max_body=self.max_body)

    def _serve(self) -> None:
        server = self._server
        next_sweep = 0.0
        try:
            while not self._abandon.is_set():
                try:
                    wasyncore.loop(timeout=TICK_S, map=self._channels, use_poll=True, count=1)
                    now = time.monotonic()
                    if self._stopping.is_set():
                        if server.listening:
                            server.stop_listening()
                        if not server.active_channels:
                            break
                    if now >= next_sweep:
                        server.sweep(now)
                        next_sweep = now + TICK_S
                except Exception:
                    log.exception("http_loop_error")
        finally:
            if server.listening:
                server.stop_listening()
            for channel in list(server.active_channels.values()):
                channel.handle_close()

    def _app(self, environ: dict, start_response) -> list[bytes]:
        """The WSGI application: one complete request to its route's answer."""
        started = environ.get(_ACCEPTED_AT) or time.monotonic()
        method = environ.get("REQUEST_METHOD", "")
        path = urlsplit(environ.get("REQUEST_URI") or "/").path
        request = Request(method=method, path=path,
                          content_length=environ.get("CONTENT_LENGTH"),
                          transfer_encoding=environ.get("HTTP_TRANSFER_ENCODING"),
                          authorization=authorization_values(environ.get("HTTP_AUTHORIZATION")),
                          read_body=environ["wsgi.input"].read,
                          client=environ.get("REMOTE_ADDR", ""),
                          headers={key[5:].replace("_", "-").lower(): value
                                   for key, value in environ.items()
                                   if key.startswith("HTTP_")})
        try:
            answer = route(self, request)
        except Exception:
            log.exception("http_route_failed", method=method, path=path)
            answer = Answer(500, "internal error\n", "internal")
        payload = answer.text.encode("utf-8")
        start_response(_status_line(answer.status),
                       [("Content-Type", answer.content_type),
                        ("Content-Length", str(len(payload))), *answer.headers.items()])
        _log_request(method, path, answer.status, answer.reason, started)
        return [b"" if method == "HEAD" else payload]

    def stop(self, timeout: float = 30) -> bool:
        """Stop accepting; wait up to ``timeout`` for requests in flight. True if all ended."""
        if self._server is None or self._thread is None or self._workers is None:
            return True
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():  # requests still in flight: close their connections
            self._abandon.set()
            self._wake()
            self._thread.join(max(0.0, min(1.0, deadline - time.monotonic())))
        finished = self._workers.stop(deadline) and not self._thread.is_alive()
        if finished and not self._trigger_closed:
            self._trigger_closed = True  # no thread can pull it any more
            self._server.trigger.close()
        if not finished:
            log.warning("http_stop_timed_out", timeout_s=timeout)
        return finished

    def _wake(self) -> None:
        if not self._trigger_closed:
            self._server.pull_trigger()

    @property
    def webhook_enabled(self) -> bool:
        """True when ``POST /reconcile`` exists (a callback and a token are configured)."""
        return self.on_reconcile is not None and self.webhook_token is not None

    @property
    def github_enabled(self) -> bool:
        """True when ``POST /v1/sync`` exists (a callback and a secret are configured)."""
        return self.on_reconcile is not None and self.webhook_secret is not None

    def _body_limit(self, path: str) -> int:
        return body_limit(path, self.max_body, self.github_enabled)

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("server not started")
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
