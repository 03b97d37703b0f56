"""A fake PagerDuty Events API v2: ``POST /v2/enqueue``. A valid event (routing_key of 32
characters, event_action trigger | acknowledge | resolve, a trigger's payload with summary,
source and a valid severity) gets ``202 {"status": "success", "message": "Event processed",
"dedup_key": ...}`` (a trigger without dedup_key gets one); anything else ``400 {"status":
"invalid event", "message": "Event object is invalid", "errors": [...]}``.

    with PagerDutyFake() as pagerduty:
        settings = settings.with_(pagerduty_events_url=pagerduty.events_url)
        ... pagerduty.events(action="trigger")
"""

from __future__ import annotations

import uuid

from tests.support.fakes.recording_server import Answer, Received, RecordingServer

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutyFake(RecordingServer):
    name = "pagerduty"

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def route(self, request: Received) -> Answer:
        if request.path != "/v2/enqueue":
            return Answer.of_json(404, {"status": "not found"})
        try:
            event = request.json()
        except ValueError:
            return self._invalid(["Invalid JSON"])
        errors = self._errors(event)
        if errors:
            return self._invalid(errors)
        key = event.get("dedup_key") or uuid.uuid4().hex
        return Answer.of_json(202, {"status": "success", "message": "Event processed",
                                    "dedup_key": key})

    @staticmethod
    def _invalid(errors: list[str]) -> Answer:
        return Answer.of_json(400, {"status": "invalid event",
                                    "message": "Event object is invalid", "errors": errors})

    @staticmethod
    def _errors(event) -> list[str]:
        if not isinstance(event, dict):
            return ["Event must be a JSON object"]
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("'routing_key' must be a 32-character string")
        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append("'event_action' must be one of trigger, acknowledge, resolve")
        if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing")
            else:
                for field in ("summary", "source"):
                    if not isinstance(payload.get(field), str) or not payload.get(field):
                        errors.append(f"'payload.{field}' is missing or blank")
                if payload.get("severity") not in SEVERITIES:
                    errors.append("'payload.severity' must be critical, error, warning or info")
                if len(str(payload.get("summary") or "")) > 1024:
                    errors.append("'payload.summary' is longer than 1024 characters")
        return errors

    def events(self, action: str | None = None) -> list[dict]:
        """The valid events received (in order), optionally of one ``event_action``."""
        found = []
        for request in list(self.received):
            try:
                event = request.json()
            except ValueError:
                continue
            if isinstance(event, dict) and not self._errors(event) and (
                    action is None or event.get("event_action") == action):
                found.append(event)
        return found
