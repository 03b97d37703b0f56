"""A fault-injecting HTTP proxy in front of the moto server, for chaos tests.

Every request is forwarded to the moto server (method, path and query, headers, body; the
``Host`` header is kept, so that URLs the emulator builds from it - SQS queue URLs - point back
through the proxy; SigV4 headers are kept and moto does not check them) and the answer is
streamed back, unless a rule for the request's AWS operation says otherwise. Operations are
named ``service.Operation`` (``ecs.RunTask``, ``dynamodb.PutItem``, ``sqs.ReceiveMessage``,
``sns.Publish``, ``scheduler.CreateSchedule``), where the service is the SigV4 signing name and
the operation comes from, per protocol:

- JSON (DynamoDB, ECS, EventBridge, SQS, Logs): the ``X-Amz-Target`` header;
- query (SNS, STS) and EC2: ``Action=`` of the form body (or the query string);
- REST-JSON (Scheduler): method + path, matched against botocore's model of the service.

Rules (the first active rule that matches a request decides; patterns are ``fnmatch``
patterns over the operation name; ``when`` narrows a rule with a predicate on the request)::

    proxy = FaultProxy(moto_url).start()         # or: with FaultProxy(moto_url) as proxy:
    proxy.url                                     # give this as AWS_ENDPOINT_URL

    # Answer an AWS-shaped error instead of forwarding: N times (times=), for a duration
    # (for_s=), or until cancelled / cleared (neither). The shape follows the protocol
    # (JSON: {"__type": "...#Code", "message"} + x-amzn-ErrorType; query/EC2: XML; REST-JSON:
    # x-amzn-ErrorType + {"message"}); status and code default from each other and from
    # botocore's model of the service (sns Throttled is 429, scheduler ThrottlingException 429).
    proxy.fail("ecs.RunTask", code="ThrottlingException", times=3)
    proxy.fail("dynamodb.*", status=503, for_s=30)          # ServiceUnavailable
    proxy.fail("dynamodb.PutItem", status=500, when=lambda r: r.json()["TableName"] == t)

    # Hold matching requests (times=1 by default; times=None: all until released). Not
    # forwarded while held (forward_first=False), or forwarded with the answer held
    # (forward_first=True). Held until release() / abort(), the hold_s deadline (then
    # released), or proxy.stop() (then aborted) - nothing hangs.
    stall = proxy.stall("ecs.RunTask", forward_first=False)
    request = stall.wait_entered(timeout=10)      # RunTask is in flight, held here
    stall.release()     # go on: forward (even if the client died meanwhile) and answer
    stall.abort()       # close the connection without answering (not forwarded, unless
                        # forward_first: then the effect happened and the answer is lost)

    # Lose the response: forward (the effect happens in moto), then close the connection
    # without answering (answer="close") or answer a 5xx error (answer=500).
    proxy.drop_response("ecs.RunTask", times=1)

    proxy.requests("ecs.RunTask")                 # every request so far, as Request records
    proxy.requests("ecs.*", outcome=FORWARDED)
    proxy.wait_request("ecs.RunTask", lambda r: r.in_flight, timeout=10)
    proxy.in_flight("sqs.*")                      # requests not answered yet
    proxy.reached_server("ecs.RunTask")           # requests that were forwarded to moto
    proxy.operations()                            # ["sts.GetCallerIdentity", ...] in order
    rule.cancel(); rule.hits; rule.active
    proxy.clear()       # cancel every rule, release held requests
    proxy.reset()       # clear() and forget the request log
    proxy.stop()        # abort held requests, close every connection, join every thread

A ``Request`` records the operation, the time (``wall_time``; ``started``/``ended`` on the
monotonic clock), the request itself (method, path, headers, body; ``json()``, ``params()``),
``outcome`` (in_flight, stalled, then forwarded / injected / dropped / aborted /
upstream_error), ``status`` (what the client got; None when the connection was closed),
``upstream_status`` (what moto answered), ``reached_server`` and ``stalled``.
"""

from __future__ import annotations

import fnmatch
import http.client
import http.server
import json
import socket
import socketserver
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from xml.sax.saxutils import escape

from tests.support.waiting import wait_for

IN_FLIGHT, STALLED = "in_flight", "stalled"
FORWARDED, INJECTED, DROPPED = "forwarded", "injected", "dropped"
ABORTED, UPSTREAM_ERROR = "aborted", "upstream_error"

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}
NOT_FORWARDED = HOP_BY_HOP | {"content-length", "expect"}  # the body is already read

# X-Amz-Target prefixes, for a request without a SigV4 credential scope.
TARGET_SERVICES = {"DynamoDB_20120810": "dynamodb", "AmazonEC2ContainerServiceV20141113": "ecs",
                   "AWSEvents": "events", "AmazonSQS": "sqs", "Logs_20140328": "logs",
                   "AmazonSSM": "ssm", "secretsmanager": "secretsmanager"}
# SigV4 signing names that are not botocore's service name.
SIGNING_ALIASES = {"monitoring": "cloudwatch", "email": "ses"}

# Error codes when only a status is asked for (per service; then per protocol).
THROTTLING_CODES = {"sqs": "RequestThrottled", "sns": "Throttled", "sts": "Throttling",
                    "ec2": "RequestLimitExceeded"}
INTERNAL_CODES = {"dynamodb": "InternalServerError", "ecs": "ServerException",
                  "events": "InternalException", "scheduler": "InternalServerException",
                  "logs": "InternalServerException", "sns": "InternalError",
                  "sqs": "InternalError", "ec2": "InternalError"}
UNAVAILABLE_CODES = {"ec2": "Unavailable", "logs": "ServiceUnavailableException"}
# Statuses of common (unmodelled) codes when only a code is asked for.
CODE_STATUS = {"InternalFailure": 500, "InternalServerError": 500, "InternalError": 500,
               "ServerException": 500, "InternalException": 500, "InternalServerException": 500,
               "ServiceUnavailable": 503, "ServiceUnavailableException": 503,
               "Unavailable": 503, "RequestLimitExceeded": 503,
               "TooManyRequestsException": 429}
MESSAGES = {400: "Rate exceeded", 429: "Rate exceeded", 500: "Internal server error",
            503: "Service unavailable, please try again"}
JSON_NAMESPACES = {"dynamodb": "com.amazonaws.dynamodb.v20120810"}
QUERY_XMLNS = {"sns": "http://sns.amazonaws.com/doc/2010-03-31/",
               "sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


# -- botocore models: protocol, modelled errors, REST routes ------------------------------

_models_lock = threading.Lock()


@lru_cache(maxsize=64)
def _model(service: str):
    import botocore.exceptions
    import botocore.session

    with _models_lock:
        try:
            return botocore.session.get_session().get_service_model(
                SIGNING_ALIASES.get(service, service))
        except botocore.exceptions.UnknownServiceError:
            return None


@lru_cache(maxsize=64)
def _rest_routes(service: str) -> tuple:
    """(method, template segments, query literal, operation) of a REST service's model."""
    model = _model(service)
    if model is None or not model.protocol.startswith("rest"):
        return ()
    routes = []
    for name in model.operation_names:
        http_spec = model.operation_model(name).http
        template, _, query = http_spec.get("requestUri", "/").partition("?")
        segments = tuple(s for s in template.split("/") if s)
        routes.append((http_spec.get("method", "POST").upper(), segments, query, name))
    return tuple(routes)


def _match_rest(service: str, method: str, path: str, query: str) -> str | None:
    segments = [s for s in path.split("/") if s]
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    best, best_score = None, -1
    for route_method, template, literal, name in _rest_routes(service):
        if route_method != method:
            continue
        if literal and literal.split("=", 1)[0] not in params:
            continue
        score = _segments_score(template, segments)
        if score is not None and (score, bool(literal)) > (best_score, False):
            best, best_score = name, score
    return best


def _segments_score(template: tuple, segments: list) -> int | None:
    """Literal segments matched when ``segments`` fits ``template``, else None."""
    score = 0
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            return score if len(segments) > index else None
        if index >= len(segments):
            return None
        if part.startswith("{"):
            continue
        if part != segments[index]:
            return None
        score += 1
    return score if len(segments) == len(template) else None


def _protocol(service: str, headers: dict) -> str:
    model = _model(service)
    if model is not None:
        return model.protocol
    if "x-amz-target" in headers:
        return "json"
    return "query" if "form-urlencoded" in headers.get("content-type", "") else "rest-json"


def identify(method: str, path: str, headers: dict, body: bytes) -> tuple[str, str]:
    """(service, operation) of one request; ``headers`` with lower-case names."""
    split = urllib.parse.urlsplit(path)
    if split.path.startswith("/moto-api"):
        return "moto-api", split.path
    service = None
    auth = headers.get("authorization", "")
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) == 5:
            service = scope[3]
    target = headers.get("x-amz-target")
    if target:
        prefix, _, operation = target.rpartition(".")
        return service or TARGET_SERVICES.get(prefix, prefix or "unknown"), operation
    service = service or "unknown"
    form = {}
    if "form-urlencoded" in headers.get("content-type", ""):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    action = form.get("Action") or urllib.parse.parse_qs(split.query).get("Action")
    if action:
        return service, action[0]
    operation = _match_rest(service, method, split.path, split.query)
    return service, operation or f"{method} {split.path}"


# -- AWS-shaped errors ----------------------------------------------------------------------

def _modelled(service: str, code: str) -> tuple[int | None, bool | None]:
    """(HTTP status, sender fault) botocore's model gives error ``code``, if it knows it."""
    model = _model(service)
    if model is None:
        return None, None
    for shape in model.error_shapes:
        error = shape.metadata.get("error") or {}
        if code in (error.get("code"), shape.name):
            return error.get("httpStatusCode"), error.get("senderFault")
    return None, None


def resolve_error(service: str, protocol: str, code: str | None,
                  status: int | None) -> tuple[str, int]:
    """The (code, status) an injected error answers, each defaulted from the other."""
    if code is None:
        wanted = status or 400
        if wanted in (400, 429):
            code = THROTTLING_CODES.get(service) or (
                "Throttling" if protocol == "query" else "ThrottlingException")
        elif wanted == 503:
            code = UNAVAILABLE_CODES.get(service, "ServiceUnavailable")
        elif wanted >= 500:
            code = INTERNAL_CODES.get(service, "InternalFailure")
        else:
            code = "ValidationException" if protocol != "query" else "ValidationError"
    if status is None:
        status = _modelled(service, code)[0] or CODE_STATUS.get(code, 400)
    return code, status


def error_response(service: str, protocol: str, code: str, status: int,
                   message: str | None = None, request_headers: dict | None = None,
                   query_error: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of an AWS error in the shape of ``protocol``."""
    if message is None:
        throttled = any(word in code for word in ("Throttl", "Limit", "TooMany"))
        message = MESSAGES[429] if throttled else MESSAGES.get(status, code)
    request_id = str(uuid.uuid4())
    sender = status < 500
    if protocol == "json":
        content_type = (request_headers or {}).get("content-type") or "application/x-amz-json-1.0"
        namespace = JSON_NAMESPACES.get(service, f"com.amazonaws.{service}")
        body = json.dumps({"__type": f"{namespace}#{code}", "message": message}).encode()
        headers = [("Content-Type", content_type), ("x-amzn-RequestId", request_id),
                   ("x-amzn-ErrorType", code)]
        model = _model(service)
        if query_error is None and model is not None and "awsQueryCompatible" in model.metadata:
            query_error = f"{code};{'Sender' if sender else 'Receiver'}"
        if query_error:
            headers.append(("x-amzn-query-error", query_error))
        return status, headers, body
    if protocol == "rest-json":
        body = json.dumps({"message": message}).encode()
        return status, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id),
                        ("x-amzn-ErrorType", code)], body
    if protocol == "ec2":
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
        return status, [("Content-Type", "text/xml;charset=UTF-8")], body
    xmlns = QUERY_XMLNS.get(service, f"http://{service}.amazonaws.com/doc/")
    body = (f'<ErrorResponse xmlns="{xmlns}">\n  <Error>\n'
            f"    <Type>{'Sender' if sender else 'Receiver'}</Type>\n"
            f"    <Code>{escape(code)}</Code>\n    <Message>{escape(message)}</Message>\n"
            f"  </Error>\n  <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n").encode()
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body


# -- records and rules --------------------------------------------------------------------

@dataclass(eq=False)
class Request:
    """One request the proxy received, and what became of it."""

    seq: int
    service: str
    operation: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    wall_time: float
    started: float
    ended: float | None = None
    outcome: str = IN_FLIGHT
    status: int | None = None
    upstream_status: int | None = None
    reached_server: bool = False
    stalled: bool = False
    rule: Rule | None = field(default=None, repr=False)

    @property
    def op(self) -> str:
        return f"{self.service}.{self.operation}"

    @property
    def in_flight(self) -> bool:
        return self.ended is None

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def params(self) -> dict[str, str]:
        """The form (query protocol) or query-string parameters, first value of each."""
        text = self.body.decode("utf-8", "replace") if self.body else ""
        if "form-urlencoded" not in self.headers.get("content-type", ""):
            text = urllib.parse.urlsplit(self.path).query
        return {k: v[0] for k, v in urllib.parse.parse_qs(text).items()}


class Rule:
    """What to do with requests matching ``pattern`` (and ``when``): ``times`` of them (None:
    any number), until ``for_s`` has passed (None: no end), unless cancelled."""

    kind = "rule"

    def __init__(self, proxy: FaultProxy, pattern: str, times: int | None,
                 for_s: float | None, when: Callable[[Request], bool] | None) -> None:
        self._proxy = proxy
        self.pattern = pattern
        self.times = times
        self.until = None if for_s is None else time.monotonic() + for_s
        self.when = when
        self.hits = 0
        self.cancelled = False
        self.matched: list[Request] = []

    @property
    def active(self) -> bool:
        return not self.cancelled and (self.times is None or self.hits < self.times) and \
            (self.until is None or time.monotonic() < self.until)

    def matches(self, request: Request) -> bool:
        if not (self.active and fnmatch.fnmatchcase(request.op, self.pattern)):
            return False
        try:
            return self.when is None or bool(self.when(request))
        except Exception:  # noqa: BLE001 - a predicate that cannot decide does not match
            return False

    def cancel(self) -> None:
        with self._proxy._lock:
            self.cancelled = True

    def __repr__(self) -> str:
        return f"<{self.kind} {self.pattern} hits={self.hits} active={self.active}>"


class FailRule(Rule):
    kind = "fail"

    def __init__(self, *args, code: str | None, status: int | None, message: str | None,
                 query_error: str | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.code, self.status, self.message, self.query_error = code, status, message, query_error


class DropRule(Rule):
    kind = "drop"

    def __init__(self, *args, answer: str | int, code: str | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if answer != "close" and not (isinstance(answer, int) and answer >= 500):
            raise ValueError("answer is 'close' or a 5xx status")
        self.answer, self.code = answer, code


class _Hold:
    def __init__(self, request: Request, deadline: float | None) -> None:
        self.request = request
        self.deadline = deadline
        self.gate = threading.Event()
        self.decision = "release"


class Stall(Rule):
    """Holds matching requests; see the module docstring."""

    kind = "stall"

    def __init__(self, *args, forward_first: bool, hold_s: float | None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.forward_first = forward_first
        self.hold_s = hold_s
        self._holds: list[_Hold] = []
        self._ended: str | None = None

    @property
    def entered(self) -> list[Request]:
        """Every request this stall has held (still held or not)."""
        with self._proxy._lock:
            return [h.request for h in self._holds]

    @property
    def held(self) -> list[Request]:
        """The requests held right now."""
        with self._proxy._lock:
            return [h.request for h in self._holds if not h.gate.is_set()]

    def wait_entered(self, timeout: float = 10.0, count: int = 1) -> Request:
        """Wait until ``count`` requests have been held; the ``count``-th."""
        entered = wait_for(lambda: len(self.entered) >= count and self.entered,
                           timeout=timeout, message=f"{count} {self.pattern} to be held")
        return entered[count - 1]

    def release(self) -> None:
        """Let the held requests go on; the stall holds no more."""
        self._end("release")

    def abort(self) -> None:
        """Close the held requests' connections without an answer; the stall holds no more."""
        self._end("abort")

    def _end(self, decision: str) -> None:
        with self._proxy._lock:
            self.cancelled = True
            self._ended = self._ended or decision
            holds = [h for h in self._holds if not h.gate.is_set()]
            for hold in holds:
                hold.decision = decision
                hold.gate.set()

    def _hold(self, request: Request) -> str:
        """Block the calling handler until released; 'release' or 'abort'."""
        deadline = None if self.hold_s is None else time.monotonic() + self.hold_s
        hold = _Hold(request, deadline)
        with self._proxy._lock:
            request.stalled = True
            request.outcome = STALLED
            if self._proxy._stopping.is_set():
                return "abort"
            self._holds.append(hold)
            if self._ended is not None:       # released between matching and holding
                hold.gate.set()
                hold.decision = self._ended
                return self._ended
        while not hold.gate.wait(None if deadline is None
                                 else max(0.0, deadline - time.monotonic())):
            if deadline is not None and time.monotonic() >= deadline:
                with self._proxy._lock:
                    hold.gate.set()
                break
        return hold.decision


# -- the server -----------------------------------------------------------------------------

class _Server(http.server.HTTPServer):
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:                       # no reverse DNS lookup
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        proxy = self.proxy
        with proxy._lock:
            proxy._conn_seq += 1
            thread = threading.Thread(target=self._serve_connection,
                                      args=(request, client_address),
                                      name=f"faultproxy-conn-{proxy._conn_seq}", daemon=True)
            proxy._connections[thread] = request
        thread.start()

    def _serve_connection(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - a broken connection ends only itself
            pass
        finally:
            with self.proxy._lock:
                self.proxy._connections.pop(threading.current_thread(), None)
            self.shutdown_request(request)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection; stop() closes it anyway
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        return

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        service, operation = identify(self.command, self.path, headers, body)
        request = proxy._record(service, operation, self.command, self.path, headers, body)
        if proxy._stopping.is_set():
            self._close(request, ABORTED)
            proxy._finish(request)
            return
        rule = proxy._rule_for(request)
        try:
            if isinstance(rule, FailRule):
                self._inject(request, rule)
            elif isinstance(rule, Stall):
                self._stalled(request, rule)
            elif isinstance(rule, DropRule):
                answer = self._forward(request)
                if answer is not None:
                    self._drop(request, rule)
            else:
                answer = self._forward(request)
                if answer is not None:
                    self._answer(request, *answer, outcome=FORWARDED)
        finally:
            proxy._finish(request)

    # each way of answering

    def _inject(self, request: Request, rule: FailRule) -> None:
        protocol = _protocol(request.service, request.headers)
        code, status = resolve_error(request.service, protocol, rule.code, rule.status)
        self._answer(request, *error_response(request.service, protocol, code, status,
                                              rule.message, request.headers, rule.query_error),
                     outcome=INJECTED)

    def _stalled(self, request: Request, stall: Stall) -> None:
        answer = None
        if stall.forward_first:
            answer = self._forward(request)
            if answer is None:
                return
        if stall._hold(request) == "abort":
            self._close(request, DROPPED if request.reached_server else ABORTED)
            return
        if answer is None:
            answer = self._forward(request)
        if answer is not None:
            self._answer(request, *answer, outcome=FORWARDED)

    def _drop(self, request: Request, rule: DropRule) -> None:
        if rule.answer == "close":
            self._close(request, DROPPED)
            return
        protocol = _protocol(request.service, request.headers)
        code, status = resolve_error(request.service, protocol, rule.code, rule.answer)
        self._answer(request, *error_response(request.service, protocol, code, status,
                                              None, request.headers), outcome=DROPPED)

    def _forward(self, request: Request):
        """Send the request to moto; (status, headers, body), or None after answering 502."""
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in NOT_FORWARDED}
        connection = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port,
                                                timeout=proxy.upstream_timeout)
        with proxy._lock:
            proxy._upstreams.add(connection)
        try:
            connection.request(self.command, self.path,
                               body=request.body if request.body or self.command in (
                                   "POST", "PUT", "PATCH") else None,
                               headers=headers)
            with proxy._lock:
                request.reached_server = True
            response = connection.getresponse()
            data = response.read()
            with proxy._lock:
                request.upstream_status = response.status
            return response.status, response.getheaders(), data
        except (OSError, http.client.HTTPException) as exc:
            if proxy._stopping.is_set():
                self._close(request, ABORTED if not request.reached_server else DROPPED)
            else:
                self._answer(request, 502, [("Content-Type", "text/plain")],
                             f"fault proxy: upstream failed: {exc!r}".encode(),
                             outcome=UPSTREAM_ERROR)
            return None
        finally:
            with proxy._lock:
                proxy._upstreams.discard(connection)
            connection.close()

    def _answer(self, request: Request, status: int, headers, body: bytes, *,
                outcome: str) -> None:
        proxy = self.server.proxy
        lines = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{name}: {value}" for name, value in headers
                  if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"]
        lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with proxy._lock:                     # final before the client can see the answer
            request.outcome, request.status, request.ended = outcome, status, time.monotonic()
        try:                                  # one write: no Nagle / delayed-ACK stall
            self.wfile.write(head + (body if self.command != "HEAD" else b""))
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            with proxy._lock:
                request.status = None         # the client is gone: nobody got it

    def _close(self, request: Request, outcome: str) -> None:
        """End the connection without an answer."""
        with self.server.proxy._lock:
            request.outcome, request.ended = outcome, time.monotonic()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream_url``; see the module docstring."""

    def __init__(self, upstream_url: str, upstream_timeout: float = 60.0) -> None:
        split = urllib.parse.urlsplit(upstream_url)
        if split.scheme != "http" or split.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the upstream must be a loopback http URL, not {upstream_url!r}")
        self.upstream_url = upstream_url
        self._upstream_host, self._upstream_port = split.hostname, split.port or 80
        self.upstream_timeout = upstream_timeout
        self._lock = threading.RLock()
        self._rules: list[Rule] = []
        self._log: list[Request] = []
        self._seq = 0
        self._conn_seq = 0
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._upstreams: set[http.client.HTTPConnection] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._accept: threading.Thread | None = None

    # lifecycle

    def start(self) -> FaultProxy:
        if self._server is not None:
            raise RuntimeError("proxy already started")
        self._server = _Server(self)
        self._accept = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="faultproxy-accept", daemon=True)
        self._accept.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self, timeout: float = 10.0) -> bool:
        """Abort held requests, close every connection and join every thread within
        ``timeout``; True when all ended."""
        if self._server is None or self._stopping.is_set():
            return True
        deadline = time.monotonic() + timeout
        self._stopping.set()
        with self._lock:
            stalls = [r for r in self._rules if isinstance(r, Stall)]
        for stall in stalls:
            stall.abort()
        self._server.shutdown()
        self._accept.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            sockets = list(self._connections.values())
            upstreams = list(self._upstreams)
            threads = list(self._connections)
        for sock in sockets:
            _shutdown(sock)
        for connection in upstreams:
            if connection.sock is not None:
                _shutdown(connection.sock)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server.server_close()
        return not self._accept.is_alive() and not any(t.is_alive() for t in threads)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # rules

    def fail(self, op: str, *, code: str | None = None, status: int | None = None,
             message: str | None = None, times: int | None = None, for_s: float | None = None,
             when: Callable[[Request], bool] | None = None,
             query_error: str | None = None) -> FailRule:
        """Answer an AWS error instead of forwarding (see the module docstring)."""
        return self._add(FailRule(self, op, times, for_s, when, code=code, status=status,
                                  message=message, query_error=query_error))

    def stall(self, op: str, *, forward_first: bool = False, times: int | None = 1,
              hold_s: float | None = None,
              when: Callable[[Request], bool] | None = None) -> Stall:
        """Hold matching requests (see the module docstring)."""
        return self._add(Stall(self, op, times, None, when, forward_first=forward_first,
                               hold_s=hold_s))

    def drop_response(self, op: str, *, times: int | None = 1, for_s: float | None = None,
                      answer: str | int = "close", code: str | None = None,
                      when: Callable[[Request], bool] | None = None) -> DropRule:
        """Forward, then lose the answer: close the connection, or answer a 5xx error."""
        return self._add(DropRule(self, op, times, for_s, when, answer=answer, code=code))

    def clear(self) -> None:
        """Cancel every rule; held requests go on."""
        with self._lock:
            rules, self._rules = self._rules, []
        for rule in rules:
            if isinstance(rule, Stall):
                rule.release()
            else:
                rule.cancel()

    def reset(self) -> None:
        """``clear()`` and forget the request log."""
        self.clear()
        with self._lock:
            self._log = []

    @property
    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    # the request log

    def requests(self, op: str = "*", outcome: str | None = None) -> list[Request]:
        """The requests so far whose operation matches ``op``, oldest first."""
        with self._lock:
            return [r for r in self._log if fnmatch.fnmatchcase(r.op, op)
                    and (outcome is None or r.outcome == outcome)]

    def in_flight(self, op: str = "*") -> list[Request]:
        with self._lock:
            return [r for r in self._log if r.in_flight and fnmatch.fnmatchcase(r.op, op)]

    def reached_server(self, op: str = "*") -> list[Request]:
        """The requests matching ``op`` that were forwarded to the server."""
        with self._lock:
            return [r for r in self._log if r.reached_server and fnmatch.fnmatchcase(r.op, op)]

    def wait_request(self, op: str, predicate: Callable[[Request], bool] | None = None,
                     timeout: float = 10.0, count: int = 1) -> Request:
        """Wait until ``count`` requests match ``op`` and ``predicate``; the ``count``-th."""
        def found():
            matching = [r for r in self.requests(op) if predicate is None or predicate(r)]
            return len(matching) >= count and matching
        return wait_for(found, timeout=timeout, message=f"{count} request(s) {op}")[count - 1]

    def operations(self, op: str = "*") -> list[str]:
        """The operation names of the requests so far, in order."""
        return [r.op for r in self.requests(op)]

    # internals (called by handlers)

    def _add(self, rule):
        with self._lock:
            self._rules.append(rule)
        return rule

    def _record(self, service, operation, method, path, headers, body) -> Request:
        with self._lock:
            self._seq += 1
            request = Request(self._seq, service, operation, method, path, headers, body,
                              time.time(), time.monotonic())
            self._log.append(request)
            return request

    def _rule_for(self, request: Request) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(request):
                    rule.hits += 1
                    rule.matched.append(request)
                    request.rule = rule
                    return rule
        return None

    def _finish(self, request: Request) -> None:
        with self._lock:
            if request.ended is None:
                request.ended = time.monotonic()
            if request.outcome in (IN_FLIGHT, STALLED):
                request.outcome = ABORTED


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
