"""Slack: the Web API's ``chat.postMessage`` (Bearer token, the cron's channel) when the
process has a token, else the incoming webhook (whose channel Slack fixes: the message names
the cron's channel). Slack answers a refused Web API call with HTTP 200 and
``{"ok": false, "error": ...}``: ``ratelimited`` is transient, the rest permanent (with what to
fix for ``invalid_auth`` / ``not_authed`` / ``channel_not_found`` / ``not_in_channel``)."""

from __future__ import annotations

import requests

from reconciler.adapters.notifiers.http import post
from reconciler.core.alerts.model import Notice
from reconciler.errors import PermanentError, TransientError
from reconciler.settings import Settings

_FIXES = {
    "invalid_auth": "the Slack token is not valid: check CRONCTL_SLACK_TOKEN",
    "not_authed": "no Slack token was sent: check CRONCTL_SLACK_TOKEN",
    "account_inactive": "the Slack token belongs to a deactivated app or user",
    "token_revoked": "the Slack token was revoked: set a new CRONCTL_SLACK_TOKEN",
    "channel_not_found": "the channel does not exist or the app cannot see it: check "
                         "notifications.slack in the cron file",
    "not_in_channel": "the Slack app is not a member of the channel: invite it",
    "missing_scope": "the Slack token lacks the chat:write scope",
}


class Slack:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self._token = settings.slack_token
        self._webhook = settings.slack_webhook_url
        self._api = settings.slack_api_url.rstrip("/")
        self._timeout = settings.notify_timeout_s
        self._session = session or requests.Session()

    @property
    def configured(self) -> bool:
        return bool(self._token or self._webhook)

    def deliver(self, notice: Notice) -> None:
        if self._token:
            self._post_message(notice)
        elif self._webhook:
            self._post_webhook(notice)
        else:
            raise PermanentError(
                f"Slack is not configured: {notice.channel} cannot be notified; set "
                "CRONCTL_SLACK_TOKEN or CRONCTL_SLACK_WEBHOOK_URL")

    def _post_message(self, notice: Notice) -> None:
        what = f"Slack chat.postMessage to {notice.channel}"
        response = post(self._session, f"{self._api}/chat.postMessage", what, self._timeout,
                        headers={"Authorization": f"Bearer {self._token}"},
                        json={"channel": notice.channel, "text": notice.text,
                              "unfurl_links": False})
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(f"{what}: the answer is not JSON") from exc
        if not isinstance(body, dict):
            raise TransientError(f"{what}: unexpected answer")
        if body.get("ok") is True:
            return
        error = str(body.get("error") or "unknown_error")
        if error in ("ratelimited", "rate_limited", "internal_error", "fatal_error",
                     "service_unavailable", "request_timeout"):
            raise TransientError(f"{what}: Slack answered {error}")
        fix = _FIXES.get(error)
        raise PermanentError(f"{what}: Slack refused it ({error})" + (f": {fix}" if fix else ""),
                             code=error)

    def _post_webhook(self, notice: Notice) -> None:
        text = f"[{notice.channel}] {notice.text}" if notice.channel else notice.text
        post(self._session, self._webhook, f"Slack incoming webhook (for {notice.channel})",
             self._timeout, json={"text": text})

    def close(self) -> None:
        self._session.close()
