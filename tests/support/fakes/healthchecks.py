"""A Healthchecks.io fake: Management API v3 and the pinging API, as documented
(/work/shared/fixtures/monitors/healthchecks_api_v3.json).

- ``GET /api/v3/checks/`` (``?tag=`` repeatable, ``?slug=``), ``POST /api/v3/checks/`` (201),
  ``GET|POST|DELETE /api/v3/checks/<uuid>`` (404 unknown); ``X-Api-Key`` header (or
  ``api_key`` in a JSON body) must be the key, else 401; checks answered in the documented
  shape (``ping_url``, ``update_url``, ``pause_url``, ``resume_url``, ``schedule``+``tz`` for a
  cron check, ``timeout`` for a simple one). An update with ``timeout`` and no ``schedule`` makes
  the check simple; with ``schedule`` a cron check.
- pings ``/<uuid>``, ``/<uuid>/start``, ``/<uuid>/fail``, ``/<uuid>/log``,
  ``/<uuid>/<0-255>`` (HEAD, GET, POST; ``rid``): 200 ``OK``, 404 unknown check, 400 bad
  exit status. The ping endpoint is this same server (``ping_url`` = ``<url>/<uuid>``).
"""

from __future__ import annotations

import re
import uuid as uuids

from tests.support.fakes.http_fake import HttpFake, Received, Reply

API = "/api/v3/checks/"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
FIELDS = ("name", "slug", "tags", "desc", "grace", "timeout", "schedule", "tz", "channels",
          "manual_resume", "methods")


class FakeHealthchecks(HttpFake):
    name = "healthchecks"

    def __init__(self, api_key: str = "hc-key") -> None:
        self.api_key = api_key
        self.checks: dict[str, dict] = {}   # uuid -> stored fields
        super().__init__()

    # -- state ------------------------------------------------------------------------------
    def add_check(self, **fields) -> str:
        """A check made outside cronctl (another team's, or ours edited in the UI)."""
        uid = str(uuids.uuid4())
        self.checks[uid] = {"name": "", "slug": "", "tags": "", "desc": "", "grace": 3600,
                            "timeout": 86400, "n_pings": 0, "status": "new", **fields}
        return uid

    def edit(self, uid: str, **fields) -> None:
        """An edit in the service's UI."""
        with self._lock:
            self.checks[uid].update(fields)
            if "timeout" in fields and "schedule" not in fields:
                self.checks[uid].pop("schedule", None)
                self.checks[uid].pop("tz", None)

    def by_slug(self, slug: str) -> list[dict]:
        return [{"uuid": u, **c} for u, c in self.checks.items() if c.get("slug") == slug]

    def pings(self, uid: str | None = None) -> list[Received]:
        return [r for r in self.received("/") if not r.path.startswith("/api/")
                and (uid is None or r.path.split("/")[1] == uid)]

    # -- documented shape -------------------------------------------------------------------
    def as_json(self, uid: str) -> dict:
        check = self.checks[uid]
        data = {"name": check["name"], "slug": check["slug"], "tags": check["tags"],
                "desc": check["desc"], "grace": check["grace"], "n_pings": check["n_pings"],
                "status": check["status"], "started": False, "last_ping": None,
                "next_ping": None, "manual_resume": False, "methods": "", "start_kw": "",
                "success_kw": "", "failure_kw": "", "filter_subject": False,
                "filter_body": False, "channels": check.get("channels", ""),
                "ping_url": f"{self.url}/{uid}",
                "update_url": f"{self.url}{API}{uid}",
                "pause_url": f"{self.url}{API}{uid}/pause",
                "resume_url": f"{self.url}{API}{uid}/resume"}
        if "schedule" in check:
            data.update(schedule=check["schedule"], tz=check.get("tz", "UTC"))
        else:
            data["timeout"] = check["timeout"]
        return data

    def route(self, request: Received) -> Reply:
        if request.path.startswith("/api/"):
            return self._api(request)
        return self._ping(request)

    def _authorised(self, request: Received) -> bool:
        if request.headers.get("x-api-key") == self.api_key:
            return True
        if request.method == "POST" and request.body:
            try:
                return request.json().get("api_key") == self.api_key
            except ValueError:
                return False
        return False

    def _api(self, request: Received) -> Reply:
        if not self._authorised(request):
            return Reply(401, {"error": "missing or invalid API key"})
        if request.path == API:
            if request.method == "GET":
                tags = request.query.get("tag", [])
                slug = request.one("slug")
                found = [self.as_json(u) for u, c in self.checks.items()
                         if all(t in c["tags"].split() for t in tags)
                         and (slug is None or c["slug"] == slug)]
                return Reply(200, {"checks": found})
            if request.method == "POST":
                body = request.json() or {}
                uid = str(uuids.uuid4())
                self.checks[uid] = {"name": "", "slug": "", "tags": "", "desc": "",
                                    "grace": 3600, "timeout": 86400, "n_pings": 0,
                                    "status": "new"}
                self._apply(uid, body)
                return Reply(201, self.as_json(uid))
            return Reply(405, {"error": "method not allowed"})
        match = re.fullmatch(API + f"({UUID})", request.path)
        if not match or match.group(1) not in self.checks:
            return Reply(404, {"error": "not found"})
        uid = match.group(1)
        if request.method == "GET":
            return Reply(200, self.as_json(uid))
        if request.method == "POST":
            self._apply(uid, request.json() or {})
            return Reply(200, self.as_json(uid))
        if request.method == "DELETE":
            data = self.as_json(uid)
            del self.checks[uid]
            return Reply(200, data)
        return Reply(405, {"error": "method not allowed"})

    def _apply(self, uid: str, body: dict) -> None:
        check = self.checks[uid]
        for key in FIELDS:
            if key in body:
                check[key] = body[key]
        if "timeout" in body and "schedule" not in body:
            check.pop("schedule", None)
            check.pop("tz", None)
        elif "schedule" in body:
            check.setdefault("tz", "UTC")

    def _ping(self, request: Received) -> Reply:
        parts = request.path.strip("/").split("/")
        if not parts or parts[0] not in self.checks or len(parts) > 2:
            return Reply(404, "not found", "text/plain")
        if len(parts) == 2 and parts[1] not in ("start", "fail", "log"):
            if not parts[1].isdigit() or not 0 <= int(parts[1]) <= 255:
                return Reply(400, "invalid url format", "text/plain")
        self.checks[parts[0]]["n_pings"] += 1
        return Reply(200, "OK", "text/plain; charset=utf-8")
