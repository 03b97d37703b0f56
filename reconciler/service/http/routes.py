"""Routes of the daemon's HTTP endpoint: the CI webhook ``POST /reconcile``, the GitHub
webhook ``POST /v1/sync`` and ``GET /metrics``.

``route`` answers one request whose body the server has already received in full; the
server (``http.py``) owns connections, deadlines and framing.

The CI webhook exists only when the daemon has both a token and a callback: without them the
path answers 404 like any unknown path, so there is never an unauthenticated trigger. A
request carries ``Authorization: Bearer <token>``, compared in constant time. The body is
optional: empty, or a JSON object whose optional ``commit`` (the commit CI merged) is 7 to 40
hexadecimal characters; other keys are ignored.

The GitHub webhook exists only when the daemon has both a secret (``CRONCTL_WEBHOOK_SECRET``)
and a callback, likewise. A delivery is authenticated by ``X-Hub-Signature-256:
sha256=<hex>``, the HMAC-SHA256 of the raw body with the secret, compared in constant time;
without a valid signature it is refused (401) and nothing happens. Once authenticated: an
empty body is 400, ``X-GitHub-Event: ping`` is answered 200 ``{"status": "pong"}``, and any
other event wakes the reconcile loop (202). The payload itself is not parsed: a pass reads
the repository.

``GET /metrics`` exists when the daemon has metrics: Prometheus's text exposition.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconciler.core.json_bounds import JsonRefused, loads_bounded
from reconciler.errors import ConfigError
from reconciler.logs import get_logger
from reconciler.service.http.sns_verify import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    SnsRejected,
    SnsVerifier,
)
from reconciler.service.metrics import Metrics

log = get_logger("cronctl.http")

SNS_PATH = "/sns"
WEBHOOK_PATH = "/reconcile"
BASE_ROUTES = {SNS_PATH: ("POST",), "/healthz": ("GET",), "/readyz": ("GET",)}
WEBHOOK_ROUTES = {**BASE_ROUTES, WEBHOOK_PATH: ("POST",)}
AUTH_CHALLENGE = {"WWW-Authenticate": "Bearer"}
COMMIT_PATTERN = re.compile(r"[0-9a-fA-F]{7,40}")
GITHUB_PATH = "/v1/sync"
METRICS_PATH = "/metrics"
SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
SIGNATURE_PATTERN = re.compile(r"sha256=([0-9a-fA-F]{64})")
SIGNATURE_CHALLENGE = {"WWW-Authenticate": 'HMAC-SHA256 header="X-Hub-Signature-256"'}
# The GitHub webhook's body bound is GitHub's own cap on webhook payloads (25 MB), not the
# daemon's ``max_body``: a push of many commits carries a payload of megabytes, and a
# delivery refused for its size cannot be authenticated, so the sync it asks for would wait
# for the next interval and GitHub would show the delivery as failed. The bound costs
# little: it holds for this route alone (every other route keeps ``max_body``, checked from
# the headers before any of a body is read), a request still has to arrive within the
# request deadline, waitress keeps a body over 512 KiB in a temporary file rather than in
# memory, and the route hashes it in chunks without ever holding it whole.
GITHUB_MAX_BODY = 25 * 1024 * 1024
HASH_CHUNK = 64 * 1024


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"`` (``[v6]:port`` too) -> ``(host, port)``; port 0 picks a free one."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address must be host:port, got {listen!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Answer:
    """What to send back: status, body text, the reason logged with the request."""

    status: int
    text: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain; charset=utf-8"


class BodyRefused(Exception):
    """A request body refused from its framing headers alone, before any of it is read."""

    def __init__(self, status: int, text: str, reason: str) -> None:
        super().__init__(text)
        self.status, self.text, self.reason = status, text, reason


def declared_length(content_length: str | None, transfer_encoding: str | None,
                    limit: int) -> int:
    """The body length a request declares; ``BodyRefused`` when it must not be read: no
    ``Content-Length`` or a ``Transfer-Encoding`` (411), a malformed length (400), over
    ``limit`` bytes (413)."""
    if transfer_encoding or content_length is None:
        raise BodyRefused(411, "Content-Length required\n", "length_required")
    declared = content_length.strip()
    if not (declared.isascii() and declared.isdigit()):
        raise BodyRefused(400, "bad Content-Length\n", "bad_length")
    if int(declared) > limit:
        raise BodyRefused(413, f"body over {limit} bytes\n", "too_large")
    return int(declared)


def allowed_methods(path: str, webhook_enabled: bool, github_enabled: bool = False,
                    metrics_enabled: bool = False) -> tuple[str, ...] | None:
    """The methods ``path`` answers, or None when the path does not exist."""
    if path == GITHUB_PATH:
        return ("POST",) if github_enabled else None
    if path == METRICS_PATH:
        return ("GET",) if metrics_enabled else None
    return (WEBHOOK_ROUTES if webhook_enabled else BASE_ROUTES).get(path)


def body_limit(path: str, max_body: int, github_enabled: bool) -> int:
    """The largest body a request to ``path`` may declare."""
    if github_enabled and path == GITHUB_PATH:
        return max(max_body, GITHUB_MAX_BODY)
    return max_body


def bearer_refusal(authorization: list[str], expected: str) -> str | None:
    """Why the ``Authorization`` header values do not carry ``expected``; None when they do.

    Reasons: ``missing_token``, ``ambiguous_token`` (several headers), ``bad_auth_scheme``
    (not ``Bearer``), ``wrong_token``. The presented token is never part of the answer."""
    if not authorization:
        return "missing_token"
    if len(authorization) > 1:
        return "ambiguous_token"
    scheme, _, presented = authorization[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return "bad_auth_scheme"
    presented = presented.strip()
    if not presented:
        return "missing_token"
    if not hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass")):
        return "wrong_token"
    return None


class WebhookBodyError(ValueError):
    """A webhook body that is neither empty nor a JSON object with a valid ``commit``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def webhook_commit(body: bytes) -> str | None:
    """The commit named by a webhook body (None when the body is empty or names none).

    Raises ``WebhookBodyError`` for a body that is not a JSON object or whose ``commit`` is
    not 7 to 40 hexadecimal characters."""
    if not body.strip():
        return None
    try:
        document = loads_bounded(body)
    except JsonRefused as exc:
        raise WebhookBodyError("malformed", "body must be empty or a JSON object") from exc
    if not isinstance(document, dict):
        raise WebhookBodyError("malformed", "body must be empty or a JSON object")
    if "commit" not in document:
        return None
    commit = document["commit"]
    if not isinstance(commit, str) or not COMMIT_PATTERN.fullmatch(commit):
        raise WebhookBodyError("bad_commit", "commit must be 7 to 40 hexadecimal characters")
    return commit


def answer_webhook(authorization: list[str], body: bytes, token: str,
                   on_reconcile: Callable[[], None], client: str) -> Answer:
    """Answer one ``POST /reconcile`` whose body was read within the limit: 401 (with a
    Bearer challenge) without the token, 400 for a bad body, else call ``on_reconcile``
    and answer 202 ``{"status": "accepted"}``. ``on_reconcile`` is not called on refusal."""
    reason = bearer_refusal(authorization, token)
    if reason:
        log.warning("webhook_unauthorized", reason=reason, client=client)
        return Answer(401, "unauthorized\n", reason, dict(AUTH_CHALLENGE))
    try:
        commit = webhook_commit(body)
    except WebhookBodyError as exc:
        log.warning("webhook_rejected", reason=exc.reason, detail=str(exc), client=client)
        return Answer(400, f"rejected: {exc}\n", exc.reason)
    try:
        on_reconcile()
    except Exception:
        log.exception("webhook_callback_failed", client=client)
        return Answer(500, "internal error\n", "callback_error")
    log.info("webhook_reconcile_requested", commit=commit, client=client)
    return Answer(202, json.dumps({"status": "accepted"}) + "\n", "accepted",
                  content_type="application/json")


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` signed with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_refusal(presented: str | None, expected_hex: str) -> str | None:
    """Why an ``X-Hub-Signature-256`` value is not ``sha256=<expected_hex>``; None when it is.

    Reasons: ``missing_signature``, ``bad_signature`` (not ``sha256=`` and 64 hexadecimal
    characters; repeated headers, joined by a comma, are this too), ``wrong_signature``. The
    digests are compared in constant time."""
    if presented is None or not presented.strip():
        return "missing_signature"
    matched = SIGNATURE_PATTERN.fullmatch(presented.strip())
    if matched is None:
        return "bad_signature"
    if not hmac.compare_digest(matched.group(1).lower().encode("ascii"),
                               expected_hex.lower().encode("ascii")):
        return "wrong_signature"
    return None


class Endpoint(Protocol):
    """What ``route`` needs of the server: its callbacks and limits (``DaemonHttpServer``)."""

    verifier: SnsVerifier
    on_notification: Callable[[dict], tuple[int, str]]
    on_subscription_confirmation: Callable[[str, str], None]
    readiness: Callable[[], tuple[bool, str]]
    on_reconcile: Callable[[], None] | None
    webhook_token: str | None
    webhook_secret: str | None
    metrics: Metrics | None
    max_body: int
    # The status page (``service.http.status_page``): its answer to (method, path), None when
    # the path is not one of its pages; None when the daemon serves no status page.
    status_pages: Callable[[str, str], Answer | None] | None

    @property
    def webhook_enabled(self) -> bool: ...

    @property
    def github_enabled(self) -> bool: ...


@dataclass(frozen=True)
class Request:
    """One request, received in full. ``authorization`` holds each ``Authorization`` value
    (repeated headers arrive joined by commas, which a Bearer token cannot contain);
    ``headers`` every header by its lower-case name (repeated ones joined by commas)."""

    method: str
    path: str
    content_length: str | None
    transfer_encoding: str | None
    authorization: tuple[str, ...]
    read_body: Callable[[int], bytes]
    client: str
    headers: Mapping[str, str] = field(default_factory=dict)


def authorization_values(joined: str | None) -> tuple[str, ...]:
    """The ``Authorization`` values of a request whose repeated headers were joined by commas."""
    return () if joined is None else tuple(joined.split(","))


def route(endpoint: Endpoint, request: Request) -> Answer:
    """The answer to one request: 404 / 405 (with ``Allow``) or the route's own answer."""
    if endpoint.status_pages is not None:
        page = endpoint.status_pages(request.method, request.path)
        if page is not None:
            return page
    allowed = allowed_methods(request.path, endpoint.webhook_enabled, endpoint.github_enabled,
                              endpoint.metrics is not None)
    if allowed is None:
        return Answer(404, "not found\n", "not_found")
    if request.method not in allowed:
        return Answer(405, "method not allowed\n", "method_not_allowed",
                      {"Allow": ", ".join(allowed)})
    if request.path == "/healthz":
        return Answer(200, "ok\n", "ok")
    if request.path == "/readyz":
        return _readyz(endpoint)
    if request.path == METRICS_PATH:
        text, content_type = endpoint.metrics.exposition()
        return Answer(200, text, "metrics", content_type=content_type)
    if request.path == GITHUB_PATH:
        return answer_github(request, endpoint.webhook_secret or "", endpoint.on_reconcile,
                             body_limit(GITHUB_PATH, endpoint.max_body, True))
    try:
        body = _read_body(request, endpoint.max_body)
    except BodyRefused as exc:
        return Answer(exc.status, exc.text, exc.reason)
    if request.path == WEBHOOK_PATH:
        return answer_webhook(list(request.authorization), body, endpoint.webhook_token or "",
                              endpoint.on_reconcile, request.client)
    return _sns(endpoint, body)


def answer_github(request: Request, secret: str, on_reconcile: Callable[[], None],
                  limit: int) -> Answer:
    """Answer one ``POST /v1/sync`` (see the module docstring), in this order: a body whose
    framing is refused (413 over ``limit``), then the signature (401), then the body (400
    when empty), then the event. A request without ``Content-Length`` has an empty body
    (HTTP/1.1), so it is refused for its signature or its emptiness, not for its framing.
    ``on_reconcile`` is called only for an authenticated, non-empty delivery that is not a
    ping."""
    event = request.headers.get(EVENT_HEADER, "")
    context = {"client": request.client, "github_event": event[:64],
               "delivery": request.headers.get(DELIVERY_HEADER, "")[:64]}
    try:
        length = 0 if request.content_length is None and not request.transfer_encoding \
            else declared_length(request.content_length, request.transfer_encoding, limit)
        digest = _body_hmac(request, length, secret)
    except BodyRefused as exc:
        return Answer(exc.status, exc.text, exc.reason)
    reason = signature_refusal(request.headers.get(SIGNATURE_HEADER), digest)
    if reason:
        log.warning("github_webhook_unauthorized", reason=reason, **context)
        return Answer(401, "unauthorized\n", reason, dict(SIGNATURE_CHALLENGE))
    if length == 0:
        log.warning("github_webhook_rejected", reason="empty_body", **context)
        return Answer(400, "rejected: empty body\n", "empty_body")
    if event == "ping":
        log.info("github_webhook_ping", **context)
        return Answer(200, json.dumps({"status": "pong"}) + "\n", "ping",
                      content_type="application/json")
    try:
        on_reconcile()
    except Exception:
        log.exception("github_webhook_callback_failed", **context)
        return Answer(500, "internal error\n", "callback_error")
    log.info("github_webhook_sync_requested", **context)
    return Answer(202, json.dumps({"status": "accepted"}) + "\n", "accepted",
                  content_type="application/json")


def _body_hmac(request: Request, length: int, secret: str) -> str:
    """The hex HMAC-SHA256 of the ``length``-byte body, read in chunks."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
    remaining = length
    while remaining > 0:
        chunk = request.read_body(min(HASH_CHUNK, remaining))
        if not chunk:
            raise BodyRefused(400, "body shorter than Content-Length\n", "short_body")
        mac.update(chunk)
        remaining -= len(chunk)
    return mac.hexdigest()


def _read_body(request: Request, limit: int) -> bytes:
    length = declared_length(request.content_length, request.transfer_encoding, limit)
    body = request.read_body(length)
    if len(body) != length:
        raise BodyRefused(400, "body shorter than Content-Length\n", "short_body")
    return body


def _readyz(endpoint: Endpoint) -> Answer:
    try:
        ready, detail = endpoint.readiness()
    except Exception:
        log.exception("readiness_check_failed")
        return Answer(503, "readiness check failed\n", "readiness_error")
    return Answer(200 if ready else 503, f"{detail}\n", "ready" if ready else "not_ready")


def _sns(endpoint: Endpoint, body: bytes) -> Answer:
    try:
        message = endpoint.verifier.verify(body)
    except SnsRejected as exc:
        log.warning("sns_rejected", reason=exc.reason, detail=str(exc))
        return Answer(503 if exc.retryable else 400, f"rejected: {exc.reason}\n", exc.reason)
    try:
        return _deliver(endpoint, message)
    except Exception:
        log.exception("sns_callback_failed", type=message.get("Type"),
                      message_id=message.get("MessageId"))
        return Answer(500, "internal error\n", "callback_error")


def _deliver(endpoint: Endpoint, message: dict) -> Answer:
    kind = message["Type"]
    if kind == NOTIFICATION:
        status, text = endpoint.on_notification(message)
        return Answer(status, text, "notification")
    if message["TopicArn"] != endpoint.verifier.topic_arn:  # verify() already ensures this
        return Answer(400, "rejected: topic\n", "topic")
    if kind == SUBSCRIPTION_CONFIRMATION:
        endpoint.on_subscription_confirmation(message["TopicArn"], message["Token"])
        log.info("sns_subscription_confirmed", topic_arn=message["TopicArn"])
        return Answer(200, "confirmed\n", "subscription_confirmation")
    log.info("sns_unsubscribe_confirmation", topic_arn=message["TopicArn"],
             message_id=message["MessageId"])
    return Answer(200, "ok\n", "unsubscribe_confirmation")
