"""PagerDuty Events API v2: ``POST <pagerduty_events_url>`` with ``routing_key``,
``event_action`` (trigger | resolve), ``dedup_key`` (``<namespace>/<cron>/<kind>``) and, on a
trigger, the ``payload`` (summary, source, severity, custom_details) and ``links``. PagerDuty
answers 202 when it accepted the event, 400 for an invalid event, 429 when rate limited."""

from __future__ import annotations

import requests

from reconciler.adapters.notifiers.http import post
from reconciler.core.alerts.model import TRIGGER, Notice
from reconciler.errors import PermanentError
from reconciler.settings import Settings


class PagerDuty:
    def __init__(self, settings: Settings, session: requests.Session | None = None) -> None:
        self._url = settings.pagerduty_events_url
        self._timeout = settings.notify_timeout_s
        self._session = session or requests.Session()

    def deliver(self, notice: Notice) -> None:
        if not notice.routing_key:
            raise PermanentError(f"PagerDuty {notice.action} of {notice.dedup_key}: no routing "
                                 "key (notifications.pagerduty)")
        body: dict = {"routing_key": notice.routing_key, "event_action": notice.action,
                      "dedup_key": notice.dedup_key}
        if notice.action == TRIGGER:
            body["payload"] = {"summary": notice.summary or notice.dedup_key,
                               "source": f"cronctl/{notice.namespace}",
                               "severity": notice.severity,
                               "component": notice.cron,
                               "custom_details": dict(notice.details)}
            if notice.links:
                body["links"] = [{"href": href, "text": text} for href, text in notice.links]
        post(self._session, self._url, f"PagerDuty {notice.action} of {notice.dedup_key}",
             self._timeout, json=body)

    def close(self) -> None:
        self._session.close()
