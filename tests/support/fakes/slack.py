"""A fake Slack: the Web API's ``POST /api/chat.postMessage`` (Bearer token; answers
``{"ok": true, "channel": ..., "ts": ...}`` or ``{"ok": false, "error": "invalid_auth" |
"not_authed" | "channel_not_found"}`` with HTTP 200, as Slack does) and incoming webhooks
``POST /services/T.../B.../...`` (answers the text ``ok``; an unknown hook ``404 no_service``).

    with SlackFake(token="xoxb-test") as slack:
        settings = settings.with_(slack_token="xoxb-test", slack_api_url=slack.api_url)
        ... slack.messages()             # [{"channel": ..., "text": ...}, ...]
"""

from __future__ import annotations

import json
import threading

from tests.support.fakes.recording_server import Answer, Received, RecordingServer

WEBHOOK_PATH = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


class SlackFake(RecordingServer):
    name = "slack"

    def __init__(self, token: str = "xoxb-fake-token",
                 channels: tuple[str, ...] | None = None) -> None:
        super().__init__()
        self.token = token
        self.channels = channels     # None: every channel exists
        self._ts = 0
        self._ts_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{WEBHOOK_PATH}"

    def route(self, request: Received) -> Answer:
        if request.path == "/api/chat.postMessage":
            return self._post_message(request)
        if request.path.startswith("/services/"):
            if request.path != WEBHOOK_PATH:
                return Answer(404, b"no_service", "text/plain")
            try:
                body = request.json()
            except ValueError:
                return Answer(400, b"invalid_payload", "text/plain")
            if not isinstance(body, dict) or not body.get("text"):
                return Answer(400, b"no_text", "text/plain")
            return Answer(200, b"ok", "text/plain")
        return Answer.of_json(404, {"ok": False, "error": "unknown_method"})

    def _post_message(self, request: Received) -> Answer:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return Answer.of_json(200, {"ok": False, "error": "not_authed"})
        if auth.removeprefix("Bearer ") != self.token:
            return Answer.of_json(200, {"ok": False, "error": "invalid_auth"})
        try:
            body = request.json()
        except ValueError:
            return Answer.of_json(200, {"ok": False, "error": "invalid_json"})
        channel = body.get("channel") if isinstance(body, dict) else None
        if not channel:
            return Answer.of_json(200, {"ok": False, "error": "channel_not_found"})
        if not (body.get("text") or body.get("blocks")):
            return Answer.of_json(200, {"ok": False, "error": "no_text"})
        if self.channels is not None and channel not in self.channels:
            return Answer.of_json(200, {"ok": False, "error": "channel_not_found"})
        with self._ts_lock:
            self._ts += 1
            ts = f"1700000000.{self._ts:06d}"
        return Answer.of_json(200, {"ok": True, "channel": channel, "ts": ts,
                                    "message": {"text": body.get("text"), "ts": ts}})

    # -- what was received --------------------------------------------------------------
    def messages(self) -> list[dict]:
        """The Web API messages accepted (channel, text, ...)."""
        return [r.json() for r in list(self.received)
                if r.path == "/api/chat.postMessage"
                and r.headers.get("authorization") == f"Bearer {self.token}"]

    def webhook_messages(self) -> list[dict]:
        return [json.loads(r.body) for r in list(self.received) if r.path == WEBHOOK_PATH]
