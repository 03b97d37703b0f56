"""A Cronitor fake: the Monitor API and the Telemetry API, as documented
(/work/shared/fixtures/monitors/cronitor_api.json).

- ``/api/monitors``: HTTP Basic auth with the API key as the username (no password), else 401.
  ``PUT /api/monitors`` ``{"monitors": [...]}`` creates or updates each by ``key`` (200, the
  list back); ``POST /api/monitors`` creates one (201; 400 when the key exists);
  ``GET /api/monitors/<key>``, ``DELETE /api/monitors/<key>`` (404 unknown; 204 deleted).
  ``GET /api/monitors`` lists: the list endpoint is the one of the API's export
  (``GET /api/monitors``, "?format=yaml" documented); its JSON page is
  ``{"page": n, "page_size": 50, "total_monitor_count": N, "monitors": [...]}``, ``?page=``
  paging and ``?tag=`` filtering (the shape cronctl relies on: it filters again itself).
- telemetry ``GET /p/<apiKey>/<key>?state=run|complete|fail&series=&status_code=&metric=``:
  always 200 (as documented, even with invalid credentials).
"""

from __future__ import annotations

import base64

from tests.support.fakes.http_fake import HttpFake, Received, Reply

API = "/api/monitors"
PAGE_SIZE = 50
FIELDS = ("type", "key", "name", "schedule", "timezone", "assertions", "notify",
          "grace_seconds", "tags", "note", "paused")


class FakeCronitor(HttpFake):
    name = "cronitor"

    def __init__(self, api_key: str = "cronitor-key") -> None:
        self.api_key = api_key
        self.monitors: dict[str, dict] = {}
        super().__init__()

    def add_monitor(self, **fields) -> str:
        self.monitors[fields["key"]] = {"type": "job", "tags": [], **fields}
        return fields["key"]

    def edit(self, key: str, **fields) -> None:
        with self._lock:
            self.monitors[key].update(fields)

    def telemetry(self, key: str | None = None) -> list[Received]:
        return [r for r in self.received("/p/")
                if key is None or r.path.split("/")[3:4] == [key]]

    def _authorised(self, request: Received) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.api_key

    def route(self, request: Received) -> Reply:
        if request.path.startswith("/p/"):
            return Reply(200, "OK", "text/plain")
        if not request.path.startswith(API):
            return Reply(404, {"error": "not found"})
        if not self._authorised(request):
            return Reply(401, {"error": "Invalid API key"})
        if request.path in (API, API + "/"):
            if request.method == "GET":
                tags = request.query.get("tag", [])
                page = int(request.one("page") or 1)
                found = [m for _, m in sorted(self.monitors.items())
                         if all(t in m.get("tags", []) for t in tags)]
                return Reply(200, {"page": page, "page_size": PAGE_SIZE,
                                   "total_monitor_count": len(found),
                                   "monitors": found[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]})
            if request.method == "PUT":
                body = request.json() or {}
                out = []
                for monitor in body.get("monitors", []):
                    if not monitor.get("key") or not monitor.get("type"):
                        return Reply(400, {"error": "type and key are required"})
                    stored = self.monitors.setdefault(monitor["key"], {})
                    stored.update({k: v for k, v in monitor.items() if k in FIELDS})
                    out.append(stored)
                return Reply(200, {"monitors": out})
            if request.method == "POST":
                monitor = request.json() or {}
                if not monitor.get("key") or not monitor.get("type"):
                    return Reply(400, {"error": "type and key are required"})
                if monitor["key"] in self.monitors:
                    return Reply(400, {"error": f"key {monitor['key']} is already taken"})
                self.monitors[monitor["key"]] = {k: v for k, v in monitor.items()
                                                 if k in FIELDS}
                return Reply(201, self.monitors[monitor["key"]])
            return Reply(405, {"error": "method not allowed"})
        key = request.path[len(API) + 1:]
        if key not in self.monitors:
            return Reply(404, {"error": "not found"})
        if request.method == "GET":
            return Reply(200, self.monitors[key])
        if request.method == "DELETE":
            del self.monitors[key]
            return Reply(204)
        return Reply(405, {"error": "method not allowed"})
