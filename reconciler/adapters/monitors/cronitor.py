"""Cronitor's Monitor API and Telemetry API (as documented: HTTP Basic auth with the API key
as the username and no password; JSON bodies; telemetry at
``<ping_base>/p/<apiKey>/<key>?state=run|complete|fail``).

Calls per pass: ``GET /api/monitors?tag=cronctl-ns:<ns>&page=N`` (pages of ``monitors``
until ``total_monitor_count`` are read; the answer is filtered again here by our tags and key,
so a service that ignores the filter changes nothing), and ``GET /api/monitors/<key>`` only
for a monitor the registry records that the list did not return; creates
``POST /api/monitors`` (refused with 400 when the key exists: another team's monitor is never
overwritten), updates ``PUT /api/monitors`` with ``{"monitors": [...]}``, deletes
``DELETE /api/monitors/<key>``.
"""

from __future__ import annotations

from reconciler.adapters.monitors.http import MonitorHttp
from reconciler.core.monitors.model import (
    CRONITOR,
    MonitorFields,
    ObservedMonitor,
    namespace_tag,
)
from reconciler.errors import NotFound, PermanentError

SERVICE = "Cronitor"
MAX_PAGES = 200


def payload(fields: MonitorFields) -> dict:
    body = fields.as_dict()
    body["note"] = "Managed by cronctl: change the cron's file, not this monitor."
    return body


def observed(monitor: dict) -> ObservedMonitor:
    key = monitor.get("key")
    if not isinstance(key, str) or not key:
        raise PermanentError(f"{SERVICE} answered a monitor without a key")
    grace = monitor.get("grace_seconds")
    fields = MonitorFields(
        CRONITOR, key=key, name=str(monitor.get("name") or ""),
        tags=tuple(sorted(str(t) for t in monitor.get("tags") or ())),
        grace_s=int(grace) if isinstance(grace, int | float) else None,
        schedule=monitor.get("schedule"), tz=monitor.get("timezone"),
        assertions=tuple(str(a) for a in monitor.get("assertions") or ()))
    return ObservedMonitor(key, fields)


class CronitorClient:
    def __init__(self, api_url: str, api_key: str, timeout_s: float) -> None:
        self.base = f"{api_url.rstrip('/')}/monitors"
        self.http = MonitorHttp(SERVICE, timeout_s, auth=(api_key, ""))

    def list(self, namespace: str) -> list[ObservedMonitor]:
        found: list[ObservedMonitor] = []
        for page in range(1, MAX_PAGES + 1):
            answer = self.http.call("GET", self.base, params={
                "tag": namespace_tag(CRONITOR, namespace), "page": page},
                what="list monitors")
            body = answer.body if isinstance(answer.body, dict) else {}
            monitors = body.get("monitors")
            if not isinstance(monitors, list):
                raise PermanentError(f"{SERVICE} answered the list of monitors without "
                                     "'monitors'")
            found += [observed(m) for m in monitors if isinstance(m, dict)]
            total = body.get("total_monitor_count")
            if not monitors or not isinstance(total, int) or len(found) >= total:
                break
        return [m for m in found if m.fields.owned_by(namespace)]

    def get(self, key: str) -> ObservedMonitor | None:
        try:
            answer = self.http.call("GET", f"{self.base}/{key}", what=f"get monitor {key}")
        except NotFound:
            return None
        return observed(answer.body) if isinstance(answer.body, dict) else None

    def create(self, fields: MonitorFields) -> ObservedMonitor:
        answer = self.http.call("POST", self.base, json=payload(fields),
                                what=f"create monitor {fields.key}")
        return observed(answer.body) if isinstance(answer.body, dict) \
            else ObservedMonitor(fields.key, fields)

    def update(self, key: str, fields: MonitorFields) -> ObservedMonitor:
        self.http.call("PUT", self.base, json={"monitors": [payload(fields)]},
                       what=f"update monitor {key}")
        return ObservedMonitor(key, fields)

    def delete(self, key: str) -> None:
        try:
            self.http.call("DELETE", f"{self.base}/{key}", what=f"delete monitor {key}")
        except NotFound:
            return

    def close(self) -> None:
        self.http.close()


class CronitorPings:
    """Telemetry events of a job monitor: ``run``, then ``complete`` or ``fail``."""

    def __init__(self, ping_base: str, api_key: str, timeout_s: float) -> None:
        self.ping_base = ping_base.rstrip("/")
        self.api_key = api_key
        self.http = MonitorHttp(SERVICE, timeout_s)

    def _url(self, key: str) -> str:
        return f"{self.ping_base}/p/{self.api_key}/{key}"

    def start(self, monitor_id: str, ping_url: str | None, run_id: str) -> None:
        self.http.call("GET", self._url(monitor_id),
                       params={"state": "run", "series": run_id}, what="run event")

    def finish(self, monitor_id: str, ping_url: str | None, run_id: str, *, ok: bool,
               exit_code: int | None, body: str, duration_s: float | None = None) -> None:
        params: dict[str, object] = {"state": "complete" if ok else "fail", "series": run_id}
        if exit_code is not None:
            params["status_code"] = exit_code
        if duration_s is not None:
            params["metric"] = f"duration:{duration_s:g}"
        params["message"] = body
        self.http.call("GET", self._url(monitor_id), params=params,
                       what="complete event" if ok else "fail event")

    def close(self) -> None:
        self.http.close()
