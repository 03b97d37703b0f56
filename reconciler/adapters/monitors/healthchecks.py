"""Healthchecks.io Management API v3 and pings (as documented: ``X-Api-Key`` header, JSON
bodies; ping URLs ``<ping_url>``, ``/start``, ``/fail``, ``/<exit-status>`` with ``rid``).

Calls per pass: ``GET /api/v3/checks/?tag=cronctl-ns-<ns>`` (the namespace's checks) and
``GET /api/v3/checks/<uuid>`` only for a check the registry records that the list did not
return (its tags were edited); creates ``POST /api/v3/checks/``, updates
``POST /api/v3/checks/<uuid>``, deletes ``DELETE /api/v3/checks/<uuid>``.
"""

from __future__ import annotations

from reconciler.adapters.monitors.http import MonitorHttp
from reconciler.core.monitors.model import (
    HEALTHCHECKS,
    MonitorFields,
    ObservedMonitor,
    namespace_tag,
)
from reconciler.errors import NotFound, PermanentError

SERVICE = "Healthchecks.io"


def payload(fields: MonitorFields) -> dict:
    """The create/update body (a cron check: schedule + tz; a simple check: timeout)."""
    body = fields.as_dict()
    body["desc"] = "Managed by cronctl: change the cron's file, not this check."
    return body


def observed(check: dict) -> ObservedMonitor:
    """A check of the API's answer as an ObservedMonitor (the id is its UUID, read from
    ``update_url``, the one place the API gives it to a read-write key)."""
    if not isinstance(check, dict):
        raise PermanentError(f"{SERVICE} answered something other than a check: "
                             f"{str(check)[:200]!r}")
    update_url = str(check.get("update_url") or "")
    uuid = check.get("uuid") or update_url.rstrip("/").rsplit("/", 1)[-1]
    if not uuid:
        raise PermanentError(f"{SERVICE} answered a check without update_url or uuid")
    schedule = check.get("schedule") if "schedule" in check else None
    fields = MonitorFields(
        HEALTHCHECKS, key=str(check.get("slug") or ""), name=str(check.get("name") or ""),
        tags=tuple(sorted(str(check.get("tags") or "").split())),
        grace_s=_int(check.get("grace")), schedule=schedule,
        tz=check.get("tz") if schedule is not None else None,
        period_s=None if schedule is not None else _int(check.get("timeout")))
    return ObservedMonitor(str(uuid), fields, ping_url=check.get("ping_url"))


def _int(value) -> int | None:
    return int(value) if isinstance(value, int | float) else None


class HealthchecksClient:
    def __init__(self, api_url: str, api_key: str, timeout_s: float) -> None:
        self.base = f"{api_url.rstrip('/')}/api/v3/checks/"
        self.http = MonitorHttp(SERVICE, timeout_s, headers={"X-Api-Key": api_key})

    def list(self, namespace: str) -> list[ObservedMonitor]:
        answer = self.http.call("GET", self.base,
                                params={"tag": namespace_tag(HEALTHCHECKS, namespace)},
                                what="list checks")
        checks = answer.body.get("checks") if isinstance(answer.body, dict) else None
        if not isinstance(checks, list):
            raise PermanentError(f"{SERVICE} answered the list of checks without 'checks'")
        return [observed(c) for c in checks if isinstance(c, dict)]

    def get(self, uuid: str) -> ObservedMonitor | None:
        try:
            answer = self.http.call("GET", f"{self.base}{uuid}", what=f"get check {uuid}")
        except NotFound:
            return None
        return observed(answer.body)

    def create(self, fields: MonitorFields) -> ObservedMonitor:
        answer = self.http.call("POST", self.base, json=payload(fields),
                                what=f"create check {fields.key}")
        return observed(answer.body)

    def update(self, uuid: str, fields: MonitorFields) -> ObservedMonitor:
        answer = self.http.call("POST", f"{self.base}{uuid}", json=payload(fields),
                                what=f"update check {uuid}")
        return observed(answer.body)

    def delete(self, uuid: str) -> None:
        try:
            self.http.call("DELETE", f"{self.base}{uuid}", what=f"delete check {uuid}")
        except NotFound:
            return  # gone already

    def close(self) -> None:
        self.http.close()


class HealthchecksPings:
    """``start`` / ``finish`` pings of a check (``ping_url``: the check's, from the API)."""

    def __init__(self, ping_base: str, timeout_s: float) -> None:
        self.ping_base = ping_base.rstrip("/")
        self.http = MonitorHttp(SERVICE, timeout_s)

    def url_of(self, monitor_id: str, ping_url: str | None) -> str:
        return (ping_url or f"{self.ping_base}/{monitor_id}").rstrip("/")

    def start(self, monitor_id: str, ping_url: str | None, run_id: str) -> None:
        self.http.call("GET", f"{self.url_of(monitor_id, ping_url)}/start",
                       params={"rid": run_id}, what="start ping")

    def finish(self, monitor_id: str, ping_url: str | None, run_id: str, *, ok: bool,
               exit_code: int | None, body: str, duration_s: float | None = None) -> None:
        url = self.url_of(monitor_id, ping_url)
        if not ok:
            url += f"/{exit_code}" if exit_code is not None and 1 <= exit_code <= 255 \
                else "/fail"
        self.http.call("POST", url, params={"rid": run_id}, data=body,
                       what="success ping" if ok else "failure ping")

    def close(self) -> None:
        self.http.close()
