"""Routes of the daemon's HTTP endpoint and the rules of the CI webhook ``POST /reconcile``.

The webhook exists only when the daemon has both a token and a callback: without them the
path answers 404 like any unknown path, so there is never an unauthenticated trigger. A
request carries ``Authorization: Bearer <token>``, compared in constant time. The body is
optional: empty, or a JSON object whose optional ``commit`` (the commit CI merged) is 7 to 40
hexadecimal characters; other keys are ignored.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

from reconciler.errors import ConfigError
from reconciler.logs import get_logger

log = get_logger("cronctl.http")

SNS_PATH = "/sns"
WEBHOOK_PATH = "/reconcile"
BASE_ROUTES = {SNS_PATH: ("POST",), "/healthz": ("GET",), "/readyz": ("GET",)}
WEBHOOK_ROUTES = {**BASE_ROUTES, WEBHOOK_PATH: ("POST",)}
AUTH_CHALLENGE = {"WWW-Authenticate": "Bearer"}
COMMIT_PATTERN = re.compile(r"[0-9a-fA-F]{7,40}")


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


def declared_length(headers: Message, limit: int) -> int:
    """The body length a request declares; ``BodyRefused`` when it must not be read: no
    ``Content-Length`` or a ``Transfer-Encoding`` (411), a malformed length (400), over
    ``limit`` bytes (413)."""
    declared = headers.get("Content-Length")
    if headers.get("Transfer-Encoding") or declared is None:
        raise BodyRefused(411, "Content-Length required\n", "length_required")
    if not (declared.strip().isascii() and declared.strip().isdigit()):
        raise BodyRefused(400, "bad Content-Length\n", "bad_length")
    if int(declared) > limit:
        raise BodyRefused(413, f"body over {limit} bytes\n", "too_large")
    return int(declared)


def allowed_methods(path: str, webhook_enabled: bool) -> tuple[str, ...] | None:
    """The methods ``path`` answers, or None when the path does not exist."""
    return (WEBHOOK_ROUTES if webhook_enabled else BASE_ROUTES).get(path)


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
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
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
