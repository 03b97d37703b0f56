"""The daemon's status page: ``GET /`` and ``GET /crons/<name>`` (rendered by
``reconciler.core.status.page``).

Reads the registry and the executions table at each request (nothing is cached, and the
answer says ``Cache-Control: no-store``). A name is checked against ``NAME_PATTERN`` before
anything is looked up; an unknown cron is a 404 page. When the tables cannot be read the
answer is a 503 page saying why. The next run and the execution that gives a cron's state (a
run in progress, also behind newer SKIPPED fires) are computed as ``cronctl status`` computes
them (``core.status.render.next_run_of`` and ``current_execution``).
The pages carry no script, and their Content-Security-Policy allows none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from reconciler.adapters.alert_states import AlertStates
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.alerts.decide import describe_state
from reconciler.core.alerts.model import AlertState
from reconciler.core.executions.records import Execution
from reconciler.core.registry_model import RegistryItem
from reconciler.core.spec import NAME_PATTERN
from reconciler.core.status import page as status_page
from reconciler.core.status.render import current_execution, next_run_of
from reconciler.errors import CronctlError
from reconciler.logs import get_logger
from reconciler.service.http.routes import Answer
from reconciler.settings import Settings

log = get_logger("cronctl.status_page")

OVERVIEW_PATH = "/"
CRON_PREFIX = "/crons/"
HISTORY = 20  # executions shown on a cron's page
DEFAULT_NAMESPACE = "crons"
HTML = "text/html; charset=utf-8"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_status_path(path: str) -> bool:
    """True for the paths this module answers: ``/`` and everything under ``/crons/``."""
    return path == OVERVIEW_PATH or path.startswith(CRON_PREFIX)


class StatusPages:
    """Answers the status page's requests; ``answer`` is what the HTTP routes call."""

    def __init__(self, clients: AwsClients | None, settings: Settings,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 history: int = HISTORY, registry: RegistryReader | None = None,
                 executions: ExecutionStore | None = None,
                 open_runs: Callable[[], list[Execution]] | None = None,
                 alert_states: Callable[[list[str]], dict[str, AlertState]] | None = None
                 ) -> None:
        self._settings = settings
        # Each cron's alert state (one BatchGetItem for the overview): from the executions
        # table by default; none when the page is built without AWS clients.
        if alert_states is None:
            alert_states = AlertStates(clients, settings).many if clients is not None \
                else (lambda names: {})
        self._alert_states = alert_states
        self._registry = registry or RegistryReader(clients, settings)
        self._executions = executions or ExecutionStore(clients, settings)
        # Every open run of the namespace (one query of the sparse index): by default from the
        # store built here; a caller that passes ``executions`` passes its own, else none.
        if open_runs is None:
            open_runs = self._executions.unfinished if executions is None else list
        self._open_runs = open_runs
        self._now = now
        self._history = history

    def answer(self, method: str, path: str) -> Answer | None:
        """The answer to a request of the status page; None when ``path`` is not one."""
        if not is_status_path(path):
            return None
        if method != "GET":
            return Answer(405, "method not allowed\n", "method_not_allowed", {"Allow": "GET"})
        now = self._now()
        namespace = self._settings.namespace
        try:
            if path == OVERVIEW_PATH:
                return _html(200, "status_page", status_page.overview_page(
                    self._overview(now)))
            name = path[len(CRON_PREFIX):]
            if not re.fullmatch(NAME_PATTERN, name):
                return _html(404, "not_found", status_page.not_found_page(namespace, None, now))
            page = self._cron_page(name, now)
            if page is None:
                return _html(404, "not_found", status_page.not_found_page(namespace, name, now))
            return _html(200, "status_page", status_page.cron_page(page))
        except CronctlError as exc:
            log.warning("status_page_unavailable", path=path, error=str(exc))
            return _html(503, "unavailable", status_page.unavailable_page(namespace, str(exc),
                                                                           now))

    def _row(self, item: RegistryItem, now: datetime, last,
             alert: AlertState | None = None) -> status_page.CronRow:
        spec = item.spec
        return status_page.CronRow(
            name=item.name, schedule=spec.schedule, timezone=spec.timezone,
            suspended=spec.suspend,
            next_run=next_run_of(spec, now, item.schedule_since), last=last,
            alert=describe_state(alert, spec))

    def _open_by_cron(self) -> dict[str, list[Execution]]:
        found: dict[str, list[Execution]] = {}
        for run in self._open_runs():
            found.setdefault(run.cron, []).append(run)
        return found

    def _overview(self, now: datetime) -> status_page.Overview:
        rows = []
        open_runs = self._open_by_cron()
        items = self._registry.all()
        alerts = self._alert_states([item.name for item in items])
        for item in items:
            latest = self._executions.recent(item.name, 1)
            rows.append(self._row(item, now, current_execution(
                [*latest, *open_runs.get(item.name, [])]), alerts.get(item.name)))
        return status_page.Overview(namespace=self._settings.namespace, now=now, crons=rows)

    def _cron_page(self, name: str, now: datetime) -> status_page.CronPage | None:
        item = self._registry.get(name)
        if item is None:
            return None
        executions = self._executions.recent(name, self._history)
        current = current_execution([*executions, *self._open_by_cron().get(name, [])])
        settings = self._settings
        flags = (() if settings.namespace == DEFAULT_NAMESPACE
                 else ("--namespace", settings.namespace))
        return status_page.CronPage(
            namespace=settings.namespace, now=now,
            cron=self._row(item, now, current, self._alert_states([name]).get(name)),
            executions=executions, docs=item.spec.docs, file=item.file,
            commit=item.commit, log_group=settings.log_group_name,
            # Console links only for AWS itself, not for a local endpoint.
            console_region=None if settings.endpoint_url else settings.region,
            logs_flags=flags)


def _html(status: int, reason: str, text: str) -> Answer:
    return Answer(status, text, reason, dict(HEADERS), content_type=HTML)
