"""Apply: execute a Plan, recording each change in the registry as soon as it succeeds.

Order: the plan's dependencies (``Change.depends_on``, ``core/plan/dependencies.py``), never
re-derived here: a change runs after every change it depends on, and is skipped (reported with
the failed change it waits for) when one of them failed or was skipped; ``Change.after`` only
orders (a monitor's failure holds back nothing else of its cron: the registry item then
records the monitor as it is). Independent changes run at once: a pool of ``WORKERS`` threads
takes the changes whose prerequisites are all done, earliest in ``execution_order`` first;
every AWS call of the apply first waits for a token of its quota's bucket (``Pacer``, AWS's
default rates or the namespace's ``--api-rate``), so the apply goes as fast as the quotas allow
and is not throttled. A reached quota (``QuotaExceeded``: rules per bus, schedules, task
definition revisions) fails its change and stops the changes that would reach it too (creates
of that kind: reported skipped, naming the quota and the way out); everything else goes on.
Task definitions are found by family before registering, so a retry adds no revision. Every
resource is
tagged as ours when created, so a crash at any point leaves state that the next observe
recognises (a schedule without registry item is adopted; a registry item without schedule gets
its schedule back) and the next pass converges. A failure stops only its dependents.

Every write goes through ``fence`` (``reconciler.adapters.lease``): AWS control-plane writes
are preceded by its local check, registry writes are conditional on the lease in DynamoDB.
``LeaseLost`` stops the whole apply at once: no change is started after it, paced calls
waiting for a token are not made, and the workers are joined (bounded); a replica that lost
the lease writes nothing more.
"""

from __future__ import annotations

import contextvars
import heapq
import inspect
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from reconciler.adapters import registry, rules, schedules, taskdefs
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import Fence, LeaseLost
from reconciler.adapters.pacing import Pacer, paced
from reconciler.core import quotas
from reconciler.core.desired import family_of
from reconciler.core.plan.dependencies import execution_order
from reconciler.core.plan.model import Action, Change, Plan, Resource
from reconciler.core.plan.monitors import MonitorRecord
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import CronctlError, PermanentError, QuotaExceeded
from reconciler.logs import get_logger
from reconciler.service.monitoring.monitors import MonitorWriter
from reconciler.settings import Settings

log = get_logger("cronctl.apply")

# ``progress(done, total)`` after each change is tried (applied, failed or skipped): the
# argument of ``apply_plan``, else this context's (``cronctl reconcile`` sets it on a
# terminal). A callback with an ``eta_s`` parameter also gets the seconds the rest should
# take (``core.quotas.eta_s``: the calls left at the paced rates, or the pace so far).
PROGRESS: ContextVar[Callable[..., None] | None] = ContextVar("cronctl_apply_progress",
                                                             default=None)
WORKERS = 16  # changes at once: AWS answers in ~50-100 ms, the events bucket takes 50 calls/s
# At most this share of the workers applies changes of one resource kind at once, so that the
# kinds behind a slow quota (task definitions: 1 registration per second) leave workers to
# the others (schedules, registry items) instead of all waiting for their bucket.
KIND_SHARE = 0.5
STOP_JOIN_S = 30.0  # how long a stopping apply waits for the calls in flight
# Without a progress callback (not a terminal: the daemon, CI), an apply of at least this many
# changes logs one ``apply progress`` line per tenth done.
LOG_PROGRESS_FROM = 50
# The changes a reached quota stops, by the operation that answered it: creates of that kind
# (an update or delete adds nothing that counts against it). Other quotas (targets per rule,
# tags per resource) are the resource's own: they stop nothing else.
QUOTA_STOPS: dict[str, tuple[Resource, Action, str | None]] = {
    "PutRule": (Resource.SCHEDULE, Action.CREATE, "rules"),
    "CreateSchedule": (Resource.SCHEDULE, Action.CREATE, "scheduler"),
    "CreateScheduleGroup": (Resource.SCHEDULE, Action.CREATE, "scheduler"),
    "RegisterTaskDefinition": (Resource.TASK_DEFINITION, Action.CREATE, None),
}


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
    is the id of that failed change; or because a quota it would reach was reached by change
    ``after``: ``reason`` then says which quota and how to raise it."""

    change: Change
    after: str
    reason: str = ""


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
        self._group_lock = threading.Lock()  # the schedule group is made once
        self._monitor_lock = threading.Lock()  # one monitor call at a time (one HTTP client)
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
        with self._monitor_lock:
            self._monitor(change)

    def _monitor(self, change: Change) -> None:
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
                with self._group_lock:
                    if not self.group_ready:
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
               progress: Callable[..., None] | None = None, workers: int | None = None,
               pacer: Pacer | None = None) -> ApplyResult:
    """Execute ``plan``; returns what was applied and what failed (per cron), in
    ``execution_order``. As soon as ``fence`` raises ``LeaseLost`` the apply stops: the result
    carries it, with what was applied before. ``workers``: changes at once (default
    ``WORKERS``); ``pacer``: the buckets the AWS calls wait for (default: the namespace's
    ``api_rates`` over AWS's default quotas)."""
    run = _Run(plan)
    applier = None
    try:
        fence.check()
        applier = _Applier(clients, settings, fence)
        pacer = pacer or Pacer(quotas.configured(settings.api_rates))
        run.pacer = pacer
        run.progress = _reporter(progress or PROGRESS.get(), len(plan.pending))
        try:
            with paced(pacer, run.stop, fence.check):
                _apply(applier, plan, run, max(1, workers or WORKERS))
        finally:
            applier.monitors.close()
    except LeaseLost as exc:
        return ApplyResult(lease_lost=exc, **run.result(), **_outcome(applier))
    return ApplyResult(**run.result(), **_outcome(applier))


def _outcome(applier: _Applier | None) -> dict:
    if applier is None:
        return {}
    return {"written": dict(applier.written), "task_definitions": dict(applier.td_arns)}


def _reporter(report: Callable[..., None] | None,
              total: int) -> Callable[[int, float | None], None]:
    """``report(done, total[, eta_s=])``, or (none) a log line per tenth of a large apply."""
    if report is None:
        if total < LOG_PROGRESS_FROM:
            return lambda _done, _eta: None
        logged = [0]

        def log_tenths(done: int, eta: float | None) -> None:
            tenth = done * 10 // total
            if tenth > logged[0] or done == total:
                logged[0] = tenth
                log.info("apply progress", done=done, total=total,
                         eta_s=None if eta is None else round(eta))
        return log_tenths
    try:
        parameters = inspect.signature(report).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "eta_s" in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                    for p in parameters.values()):
        return lambda done, eta: report(done, total, eta_s=eta)
    return lambda done, _eta: report(done, total)


class _Run:
    """What one apply found so far (kept by the coordinating thread only), and its ETA."""

    def __init__(self, plan: Plan) -> None:
        self.applied: list[tuple[float, Change]] = []
        self.errors: list[tuple[float, ApplyError]] = []
        self.skipped: list[tuple[float, Skipped]] = []
        self.stop = threading.Event()
        self.pacer: Pacer | None = None
        self.progress: Callable[[int, float | None], None] = lambda _done, _eta: None
        self.done = 0
        self.left = len(plan.pending)
        self.started = time.monotonic()
        # the paced calls of the changes not done yet (service.Operation -> count)
        self.calls_left: Counter[str] = Counter()
        for change in plan.pending:
            self.calls_left.update(_calls(change))

    def tried(self, change: Change) -> None:
        """A pending change is done (applied, failed or skipped): the progress callback."""
        self.done += 1
        self.left -= 1
        self.calls_left.subtract(_calls(change))
        self.progress(self.done, self.eta())

    def eta(self) -> float | None:
        """Seconds the changes left should take: their paced calls at the buckets' rates from
        the tokens there now, or the pace of the changes done so far, whichever is longer."""
        if self.pacer is None:
            return None
        if self.left <= 0:
            return 0.0
        calls = {op: n for op, n in self.calls_left.items() if n > 0}
        paced_s = quotas.eta_s(calls, self.pacer.buckets, self.pacer.tokens())
        observed = (time.monotonic() - self.started) / self.done * self.left
        return max(paced_s, observed)

    def result(self) -> dict:
        return {"applied": tuple(c for _, c in sorted(self.applied, key=lambda t: t[0])),
                "errors": tuple(e for _, e in sorted(self.errors, key=lambda t: t[0])),
                "skipped": tuple(s for _, s in sorted(self.skipped, key=lambda t: t[0]))}


def _calls(change: Change) -> tuple[str, ...]:
    backend = ""
    if change.resource == Resource.SCHEDULE:
        live = change.desired if change.action != Action.DELETE else change.observed.current
        backend = getattr(live, "backend", "") or ""
    return quotas.calls_of(str(change.resource), str(change.action), backend)


@dataclass
class _Done:
    """A task's end, as a worker hands it to the coordinating thread."""

    change: Change
    position: float
    bookkeeping: bool = False  # a registry rewrite of ``schedule_since``, not a change
    applied: bool = False  # the change itself succeeded
    error: BaseException | None = None
    extra: list[ApplyError] = field(default_factory=list)  # bookkeeping errors


class _Workers:
    """``count`` named threads running tasks, each in the context copied when it was
    submitted (pacing, the pass's call count, logging context); results in a queue. Stopped
    by ``close``: one sentinel per thread and a bounded join."""

    def __init__(self, count: int) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"cronctl-apply-{index}",
                                          daemon=True) for index in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[[], _Done]) -> None:
        self._tasks.put((contextvars.copy_context(), task))

    def _work(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            context, task = item
            self._done.put(context.run(task))

    def next(self, timeout: float | None = None) -> _Done | None:
        try:
            return self._done.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, timeout: float = STOP_JOIN_S) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _apply(applier: _Applier, plan: Plan, run: _Run, workers: int) -> None:
    for change in plan.changes:
        if change.resource == Resource.TASK_DEFINITION and change.action == Action.NO_OP:
            applier.td_arns[change.cron] = change.observed.arn
    handlers = {Resource.TASK_DEFINITION: applier.task_definition,
                Resource.SCHEDULE: applier.schedule, Resource.REGISTRY: applier.registry,
                Resource.MONITOR: applier.monitor}
    order = execution_order(plan.changes)
    position = {change.id: index for index, change in enumerate(order)}
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    for change in order:
        prerequisites = set((*change.depends_on, *change.after))
        waiting[change.id] = len(prerequisites)
        for dep in prerequisites:
            dependents.setdefault(dep, []).append(change.id)
    # the changes whose prerequisites are done, by kind (each kind has its share of the
    # workers), earliest in ``order`` first
    ready: dict[Resource, list[int]] = {}
    for change in order:
        if waiting[change.id] == 0:
            ready.setdefault(change.resource, []).append(position[change.id])
    failed: dict[str, str] = {}  # change id -> the failed change it is (or waits for)
    registered: dict[str, Change] = {}  # cron -> its registry write applied so far
    reached: dict[tuple, tuple[str, str]] = {}  # what a quota stops -> (change id, message)
    in_flight = 0
    per_kind_cap = max(1, int(workers * KIND_SHARE))
    kind_in_flight: Counter[Resource] = Counter()

    def finish(change: Change) -> None:
        for dependent in dependents.get(change.id, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready.setdefault(order[position[dependent]].resource, []),
                               position[dependent])

    tried = run.tried

    def task(change: Change, follow: Change | None) -> Callable[[], _Done]:
        def run_change() -> _Done:
            done = _Done(change, position[change.id])
            try:
                handler = handlers.get(change.resource)
                if handler is None:
                    raise PermanentError(f"apply has no handler for {change.resource} changes")
                handler(change)
                done.applied = True
                if follow is not None and change.cron in applier.schedule_since:
                    # written before the schedule (adopting: a rule the cron replaces):
                    # record when the cron's schedule started
                    _record_schedule_start(applier, follow, done.extra)
            except BaseException as exc:  # noqa: BLE001 (handed to the coordinating thread)
                done.error = exc
            return done
        return run_change

    def bookkeeping(change: Change) -> Callable[[], _Done]:
        def rewrite() -> _Done:
            done = _Done(change, position[change.id] + 0.5, bookkeeping=True)
            try:
                _record_schedule_start(applier, change, done.extra)
            except BaseException as exc:  # noqa: BLE001
                done.error = exc
            return done
        return rewrite

    pool = _Workers(min(workers, max(1, len(order))))
    try:
        while in_flight or any(ready.values()):
            while in_flight < workers:
                # the earliest ready change of a kind that has not its share of the workers
                kinds = [kind for kind, heap in ready.items()
                         if heap and kind_in_flight[kind] < per_kind_cap]
                if not kinds:
                    break
                kind = min(kinds, key=lambda k: ready[k][0])
                change = order[heapq.heappop(ready[kind])]
                at = position[change.id]
                blocker = next((failed[dep] for dep in change.depends_on if dep in failed),
                               None)
                if change.action == Action.NO_OP:
                    if blocker is None and change.resource == Resource.REGISTRY \
                            and change.cron in applier.schedule_since:
                        pool.submit(bookkeeping(change))
                        in_flight += 1
                    else:
                        finish(change)
                    continue
                if blocker is not None:
                    failed[change.id] = blocker
                    run.skipped.append((at, Skipped(change, blocker)))
                    tried(change)
                    finish(change)
                    continue
                quota = reached.get(_quota_key(change))
                if quota is not None:
                    failed[change.id] = quota[0]
                    run.skipped.append((at, Skipped(change, quota[0], quota[1])))
                    tried(change)
                    finish(change)
                    continue
                follow = registered.get(change.cron) \
                    if change.resource == Resource.SCHEDULE else None
                pool.submit(task(change, follow))
                in_flight += 1
                kind_in_flight[change.resource] += 1
            if not in_flight:
                continue
            done = pool.next()
            in_flight -= 1
            change = done.change
            if not done.bookkeeping:
                kind_in_flight[change.resource] -= 1
            if isinstance(done.error, LeaseLost) or (
                    done.error is not None and not isinstance(done.error, CronctlError)):
                if done.applied and not done.bookkeeping:
                    run.applied.append((done.position, change))
                _stop(pool, run, in_flight)
                raise done.error
            run.errors.extend((done.position + 0.5, error) for error in done.extra)
            if done.bookkeeping:
                if isinstance(done.error, CronctlError):  # (raised past its own handling)
                    run.errors.append((done.position, ApplyError(
                        change.cron, change.resource, Action.UPDATE, str(done.error))))
                finish(change)
                continue
            if done.error is None:
                run.applied.append((done.position, change))
                if change.resource == Resource.REGISTRY and change.action != Action.DELETE:
                    registered[change.cron] = change
            else:
                failed[change.id] = change.id
                run.errors.append((done.position, ApplyError(
                    change.cron, change.resource, change.action, str(done.error), change.id)))
                if isinstance(done.error, QuotaExceeded):
                    stops = QUOTA_STOPS.get(done.error.operation)
                    if stops is not None and stops not in reached:
                        reached[stops] = (change.id, _quota_reason(done.error))
            tried(change)
            finish(change)
    finally:
        pool.close()


def _stop(pool: _Workers, run: _Run, in_flight: int) -> None:
    """Stop at once: no more changes; paced calls waiting for a token are not made; the
    changes in flight end (each write checks the fence first) and those that were applied
    are reported (bounded by ``STOP_JOIN_S``)."""
    run.stop.set()
    deadline = time.monotonic() + STOP_JOIN_S
    while in_flight:
        done = pool.next(timeout=max(0.0, deadline - time.monotonic()))
        if done is None:
            return
        in_flight -= 1
        if done.applied and not done.bookkeeping:
            run.applied.append((done.position, done.change))


def _quota_key(change: Change) -> tuple[Resource, Action, str | None]:
    """What of ``QUOTA_STOPS`` ``change`` is: its resource, action and (a schedule) backend."""
    backend = getattr(change.desired, "backend", None) \
        if change.resource == Resource.SCHEDULE else None
    return change.resource, change.action, backend


def _quota_reason(error: QuotaExceeded) -> str:
    """Why the changes a reached quota stops are not tried: the quota and the way out."""
    text = str(error)
    way_out = text.split(" is reached: ", 1)[1] if " is reached: " in text else ""
    way_out = way_out.split(f" ({error.code}", 1)[0] if error.code else way_out
    return (f"{error.quota or 'a service quota'} is reached"
            f"{f': {way_out}' if way_out else ''}")


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
