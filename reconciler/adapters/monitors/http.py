"""One requests Session per client, a per-call timeout, and the translation of HTTP failures
into ``reconciler.errors`` (messages never carry the API key)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from reconciler.errors import NotFound, PermanentError, TransientError


class MonitorAuthError(PermanentError):
    """The monitoring service refused the API key (401/403)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: object  # parsed JSON, or the text when the answer is not JSON


class MonitorHttp:
    """HTTP calls to one service (``service`` names it in messages)."""

    def __init__(self, service: str, timeout_s: float, *, headers: dict | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.service = service
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        if auth is not None:
            self.session.auth = auth

    def call(self, method: str, url: str, *, json: object = None, params=None,
             data: str | None = None, what: str = "") -> Answer:
        what = what or f"{method} {url.split('?')[0]}"
        try:
            response = self.session.request(method, url, json=json, params=params, data=data,
                                            timeout=self.timeout_s)
        except requests.Timeout:
            raise TransientError(f"{self.service} did not answer within {self.timeout_s:g} s "
                                 f"({what})") from None
        except requests.RequestException as exc:
            raise TransientError(f"{self.service} is unreachable ({what}): "
                                 f"{type(exc).__name__}") from None
        status = response.status_code
        try:
            body: object = response.json()
        except ValueError:
            body = response.text
        if status < 400:
            return Answer(status, body)
        detail = _detail(body)
        if status in (401, 403):
            raise MonitorAuthError(f"{self.service} refused the API key (HTTP {status}, {what})"
                                   f"{detail}: set CRONCTL_MONITOR_API_KEY to a valid "
                                   "read-write key", code=str(status))
        if status == 429 or status >= 500:
            raise TransientError(f"{self.service} answered HTTP {status} ({what}){detail}")
        if status == 404:
            raise NotFound(f"{self.service}: not found ({what})", code="404")
        raise PermanentError(f"{self.service} refused {what} (HTTP {status}){detail}",
                             code=str(status))

    def close(self) -> None:
        self.session.close()


def _detail(body: object) -> str:
    if isinstance(body, dict):
        text = body.get("error") or body.get("detail") or body.get("message")
        return f": {str(text)[:200]}" if text else ""
    text = str(body or "").strip()
    return f": {text[:200]}" if text else ""
