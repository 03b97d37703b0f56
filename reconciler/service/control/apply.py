"""Apply: execute a Plan, recording each change in the registry as soon as it succeeds.

Order: the plan's dependencies (``Change.depends_on``, ``core/plan/dependencies.py``), never
re-derived here: a change runs after every change it depends on, and is skipped (reported with
the failed change it waits for) when one of them failed or was skipped; ``Change.after`` only
orders (a monitor's failure holds back nothing else of its cron: the registry item then
records the monitor as it is). Task definitions are found by family before registering, so a
retry adds no revision. Every resource is
tagged as ours when created, so a crash at any point leaves state that the next observe
recognises (a schedule without registry item is adopted; a registry item without schedule gets
its schedule back) and the next pass converges. A failure stops only its dependents.

Every write goes through ``fence`` (``reconciler.adapters.lease``): AWS control-plane writes
are preceded by its local check, registry writes are conditional on the lease in DynamoDB.
``LeaseLost`` stops the whole apply at once: a replica that lost the lease writes nothing more.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reconciler.adapters import registry, rules, schedules, taskdefs
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import Fence, LeaseLost
from reconciler.core.desired import family_of
from reconciler.core.plan.dependencies import execution_order
from reconciler.core.plan.model import Action, Change, Plan, Resource
from reconciler.core.plan.monitors import MonitorRecord
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import CronctlError, PermanentError
from reconciler.service.monitoring.monitors import MonitorWriter
from reconciler.settings import Settings

# ``progress(done, total)`` after each change is tried (applied or failed): the argument of
# ``apply_plan``, else this context's (``cronctl reconcile`` sets it on a terminal).
PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar("cronctl_apply_progress",
                                                                    default=None)


@dataclass(frozen=True)
class ApplyError:
    cron: str
    resource: Resource
    action: Action
    message: str
    change_id: str = ""


@dataclass(frozen=True)
class Skipped:
    """A change not tried because a change it depends on (directly or not) failed: ``after``
    is the id of that failed change."""

    change: Change
    after: str


@dataclass(frozen=True)
class ApplyResult:
    applied: tuple[Change, ...]
    errors: tuple[ApplyError, ...]
    lease_lost: LeaseLost | None = None  # set when the apply stopped there (nothing after)
    skipped: tuple[Skipped, ...] = ()
    # what the registry now holds for each cron whose item this apply wrote (None: deleted),
    # and the task definition ARN of each family it registered or found: what the daemon's
    # memory of the observed state is updated with
    written: dict[str, RegistryItem | None] = field(default_factory=dict)
    task_definitions: dict[str, str] = field(default_factory=dict)


class _Applier:
    def __init__(self, clients: AwsClients, settings: Settings, fence: Fence) -> None:
        self.clients = fence.guard(clients)  # every non-read call checks the fence first
        self.settings = settings
        self.fence = fence
        self.td_arns: dict[str, str] = {}
        self.written: dict[str, RegistryItem | None] = {}  # cron -> item written (None: deleted)
        self.group_ready = False
        self.report: Callable[[], None] = lambda: None  # progress, after each change
        # cron -> when this apply created its schedule or gave it a new expression (ISO UTC):
        # recorded as the registry's ``schedule_since``, from which AWS counts a rate().
        self.schedule_since: dict[str, str] = {}
        self.monitors = MonitorWriter(settings)
        # cron -> what its registry item records of its monitor, when this apply changed it
        # (created: the new id; a failed create: none; a failed delete: still the old one).
        self.monitor_records: dict[str, MonitorRecord] = {}

    def monitor(self, change: Change) -> None:
        """Create, update or delete a monitor at the monitoring service (fenced like every
        other write)."""
        self.fence.check()
        if change.action == Action.CREATE:
            self.monitor_records[change.cron] = MonitorRecord(change.desired.provider)
            made = self.monitors.create(change.desired)
            self.monitor_records[change.cron] = MonitorRecord(made.provider, made.id,
                                                              made.ping_url)
        elif change.action == Action.UPDATE:
            self.monitors.update(change.observed.id, change.desired)
        elif change.action == Action.DELETE:
            live = change.observed
            self.monitor_records[change.cron] = MonitorRecord(live.provider, live.id,
                                                              live.ping_url)
            self.monitors.delete(live.provider, live.id)
            self.monitor_records[change.cron] = MonitorRecord()

    def task_definition(self, change: Change) -> None:
        if change.action == Action.CREATE:
            self.td_arns[change.cron] = taskdefs.ensure(self.clients, change.desired)
        elif change.action == Action.DELETE:
            taskdefs.deregister_family(self.clients, change.cron)

    def schedule(self, change: Change) -> None:
        if change.action in (Action.CREATE, Action.UPDATE):
            wanted = change.desired
            if wanted.backend == "rules":
                rules.put(self.clients, self.settings.namespace, change.cron, wanted,
                          existing=change.action == Action.UPDATE,
                          hand_over=change.action == Action.UPDATE
                          and change.observed.current.target_arn is None)
                self._note_start(change)
                return
            if change.action == Action.CREATE and not self.group_ready:
                schedules.ensure_group(self.clients, self.settings.namespace)
                self.group_ready = True
            schedules.put(self.clients, wanted, exists=change.action == Action.UPDATE)
            self._note_start(change)
        elif change.action == Action.DELETE:
            live = change.observed.current
            if live.backend == "rules":
                rules.delete(self.clients, live.name)
            else:
                schedules.delete(self.clients, live.group or self.settings.schedule_group,
                                 live.name)

    def _note_start(self, change: Change) -> None:
        before = change.observed.current.expression if change.action == Action.UPDATE else None
        if before != change.desired.expression:  # created, or a new expression
            self.schedule_since[change.cron] = datetime.now(UTC).isoformat(timespec="seconds")

    def registry(self, change: Change) -> None:
        if change.action == Action.DELETE:
            registry.delete(self.clients, self.settings, change.cron, fence=self.fence)
            self.written[change.cron] = None
            return
        item: RegistryItem = change.desired
        family = family_of(self.settings.namespace, item.task_definition_hash or "")
        arn = self.td_arns.get(family) or item.task_definition_arn
        if arn is None:
            raise PermanentError(f"task definition {family} is not available")
        since = self.schedule_since.get(change.cron)
        if since is None and isinstance(change.observed, RegistryItem):
            since = change.observed.schedule_since  # the schedule kept its start
        item = replace(item, task_definition_arn=arn, schedule_since=since)
        record = self.monitor_records.get(change.cron)
        if record is not None:
            item = replace(item, monitor_provider=record.provider if record.id else None,
                           monitor_id=record.id, monitor_ping_url=record.ping_url)
        registry.put(self.clients, self.settings, item, fence=self.fence)
        self.written[change.cron] = item


def apply_plan(clients: AwsClients, settings: Settings, plan: Plan, *, fence: Fence,
               progress: Callable[[int, int], None] | None = None) -> ApplyResult:
    """Execute ``plan``; returns what was applied and what failed (per cron). As soon as
    ``fence`` raises ``LeaseLost`` the apply stops: the result carries it, with what was
    applied before."""
    applied: list[Change] = []
    errors: list[ApplyError] = []
    skipped: list[Skipped] = []
    applier = None
    try:
        fence.check()
        applier = _Applier(clients, settings, fence)
        report = progress or PROGRESS.get()
        if report is not None:
            done, total = itertools.count(1), len(plan.pending)
            applier.report = lambda: report(next(done), total)
        try:
            _apply(applier, plan, applied, errors, skipped)
        finally:
            applier.monitors.close()
    except LeaseLost as exc:
        return ApplyResult(applied=tuple(applied), errors=tuple(errors), lease_lost=exc,
                           skipped=tuple(skipped), **_outcome(applier))
    return ApplyResult(applied=tuple(applied), errors=tuple(errors), skipped=tuple(skipped),
                       **_outcome(applier))


def _outcome(applier: _Applier | None) -> dict:
    if applier is None:
        return {}
    return {"written": dict(applier.written), "task_definitions": dict(applier.td_arns)}


def _apply(applier: _Applier, plan: Plan, applied: list[Change], errors: list[ApplyError],
           skipped: list[Skipped]) -> None:
    for change in plan.changes:
        if change.resource == Resource.TASK_DEFINITION and change.action == Action.NO_OP:
            applier.td_arns[change.cron] = change.observed.arn
    handlers = {Resource.TASK_DEFINITION: applier.task_definition,
                Resource.SCHEDULE: applier.schedule, Resource.REGISTRY: applier.registry,
                Resource.MONITOR: applier.monitor}
    failed: dict[str, str] = {}  # change id -> the failed change it is (or waits for)
    registered: dict[str, Change] = {}  # cron -> its registry write applied so far
    for change in execution_order(plan.changes):
        blocker = next((failed[dep] for dep in change.depends_on if dep in failed), None)
        if change.action == Action.NO_OP:
            if blocker is None and change.resource == Resource.REGISTRY \
                    and change.cron in applier.schedule_since:
                _record_schedule_start(applier, change, errors)
            continue
        if blocker is not None:
            failed[change.id] = blocker
            skipped.append(Skipped(change, blocker))
            applier.report()
            continue
        try:
            handler = handlers.get(change.resource)
            if handler is None:
                raise PermanentError(f"apply has no handler for {change.resource} changes")
            handler(change)
            applied.append(change)
            if change.resource == Resource.REGISTRY and change.action != Action.DELETE:
                registered[change.cron] = change
            elif change.resource == Resource.SCHEDULE and change.cron in registered \
                    and change.cron in applier.schedule_since:
                # written before the schedule (adopting: a rule the cron replaces): record
                # when the cron's schedule started
                _record_schedule_start(applier, registered[change.cron], errors)
        except LeaseLost:
            raise
        except CronctlError as exc:
            failed[change.id] = change.id
            errors.append(ApplyError(change.cron, change.resource, change.action, str(exc),
                                     change.id))
        finally:
            applier.report()


def _record_schedule_start(applier: _Applier, change: Change,
                           errors: list[ApplyError]) -> None:
    """A registry item that is up to date while its schedule was re-created (drift), or
    written before its schedule was created (adopting): rewrite it to record the new
    ``schedule_since``. Bookkeeping, not a change of the plan: neither listed as applied nor
    counted in the progress."""
    try:
        applier.registry(change)
    except LeaseLost:
        raise
    except CronctlError as exc:
        errors.append(ApplyError(change.cron, change.resource, Action.UPDATE, str(exc)))
