"""One reconcile pass: read source -> load -> observe -> plan -> apply (unless dry-run).

A source that cannot be read (``SourceError``) ends the pass before anything is observed or
changed: an unreadable source never deletes anything.

Every write of the apply goes through ``fence`` (``reconciler.adapters.lease``): the daemon's
loop and ``cronctl reconcile`` pass the fence of the leader lease they hold; a pass that loses
the lease stops at once (``LeaseLost``) and says so in its errors and its log line.

Cheap passes (``core/plan/pass_check.py``): a pass that converged (``PassResult.converged``,
the one definition) records its commit in the namespace (registry item ``#applied``, fenced);
an applying pass at a commit clears it before it changes anything, and after it when it did
not converge, so a pass that died or failed leaves no record behind. A pass at
the recorded commit with the same settings version is cheap: no observe, no plan, no apply;
it reads the record (with the namespace settings and the sweep's rotation, one BatchGetItem)
unless the daemon's memory of its own converged pass under the same lease generation says it
already. Otherwise the pass is (``PassKind``): *full* (``full_check``, ``cronctl reconcile
--full-check``, a plain folder, changed settings: every resource read one by one); a *sweep*
(list calls, plus a budgeted rotation of one-by-one reads, ``core/plan/sweep.py``; its rotation
recorded after it, fenced, as registry item ``#sweep``): the CLI at a new commit, the daemon's
drift check every ``drift_check_s``; or *incremental* (the daemon holding a known state,
``core/plan/known.py``, for its lease generation: nothing observed, the plan made against it;
the state updated from what the apply wrote and kept in ``PassResult.known``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePosixPath

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import UNFENCED, Fence
from reconciler.adapters.pacing import Pacer, paced
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.desired import Deployment
from reconciler.core.plan.known import KnownState, after_apply, share_specs
from reconciler.core.plan.model import Action, Change, DeepCheck, Observed, Plan
from reconciler.core.plan.pass_check import (
    AppliedRecord,
    PassDecision,
    PassFacts,
    PassKind,
    PassPolicy,
    cheap_summary,
    decide,
)
from reconciler.core.plan.planner import desired_state, make_plan
from reconciler.core.plan.sweep import SweepCursor, oldest
from reconciler.core.quotas import configured
from reconciler.errors import (
    ConfigError,
    CronctlError,
    NamespaceSettingsChanged,
    NotFound,
    SourceError,
)
from reconciler.logs import get_logger
from reconciler.service.control import git_cache
from reconciler.service.control.apply import ApplyError, Skipped, apply_plan
from reconciler.service.control.observe import (
    SweepRequest,
    not_set_up,
    observe,
    observe_sweep,
    refresh,
)
from reconciler.service.namespace import check_unchanged
from reconciler.settings import Settings

log = get_logger("cronctl.reconcile")

Source = Snapshot | Callable[[], Snapshot] | None
BACKENDS = ("rules", "scheduler")


@dataclass(frozen=True)
class PassResult:
    """What one pass did. ``plan`` is None when the pass stopped before planning."""

    commit: str | None
    plan: Plan | None
    applied: tuple[Change, ...] = ()
    errors: tuple[str, ...] = ()
    apply_errors: tuple[ApplyError, ...] = ()
    api_calls: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0
    dry_run: bool = False
    lease_lost: bool = False  # the pass stopped because this replica lost the leader lease
    skipped: tuple[Skipped, ...] = ()  # changes not tried: a change they depend on failed
    # the namespace's recorded settings changed since this process read them: nothing done
    settings_changed: bool = False
    # full or cheap, and why (None: the pass stopped before it could tell, e.g. no source)
    check: PassDecision | None = None
    # the converged pass this one recorded (a full pass) or relied on (a cheap pass)
    recorded: AppliedRecord | None = None
    summary: str | None = None  # a cheap pass's one line (``cheap_summary``)
    # when AWS was last listed for this pass's plan (now, or the known state's last sweep)
    checked_at: datetime | None = None
    # the known state after this pass (an applying pass with no error, under a lease): what
    # the daemon plans its next incremental pass against
    known: KnownState | None = None

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.errors and not self.plan.errors \
            and not self.apply_errors

    @property
    def cheap(self) -> bool:
        return self.check is not None and self.check.kind == PassKind.CHEAP

    @property
    def converged(self) -> bool:
        """The one definition of a converged pass, the only kind recorded as applied: a full
        applying pass at a commit that planned and applied its whole plan: no pass error, no
        plan error, no failed or skipped change, no cron held back, the lease kept and the
        namespace settings unchanged."""
        plan = self.plan
        return (not self.dry_run and not self.cheap and self.commit is not None
                and plan is not None and not self.errors and not plan.errors
                and not plan.held_back and not self.apply_errors and not self.skipped
                and not self.lease_lost and not self.settings_changed)


def read_source(settings: Settings) -> Snapshot:
    """The cron files at the configured ref; a plain folder (no Git) is read as is."""
    from reconciler.adapters.gitsource.reader import is_remote, read_directory

    repo = settings.repo
    if not is_remote(repo) and os.path.isdir(repo) \
            and not os.path.exists(os.path.join(repo, ".git")) and settings.ref is None:
        return read_directory(repo, [settings.path])
    return git_cache.read_git(repo, settings.ref, settings.path)


def deployment(settings: Settings, account: str, partition: str = "aws",
               now: datetime | None = None) -> Deployment:
    now = now or datetime.now(UTC)
    return Deployment(
        namespace=settings.namespace, region=settings.region, account=account,
        backend=settings.scheduler, sidecar_image=settings.sidecar_image,
        log_group=settings.log_group_name, execution_role_arn=settings.execution_role_arn,
        default_task_role_arn=settings.default_task_role_arn,
        scheduler_role_arn=settings.scheduler_role_arn, partition=partition,
        fargate=settings.placement.fargate, rules_quota=settings.rules_quota,
        monitor=settings.monitor, year=now.year, now=now)


def _snapshot(settings: Settings, source: Source) -> Snapshot:
    if source is None:
        return read_source(settings)
    return source() if callable(source) else source


def plan_pass(clients: AwsClients, settings: Settings, snapshot: Snapshot,
              now: datetime | None = None) -> Plan:
    """Load the snapshot, observe AWS (every resource) and compute the plan (no changes)."""
    return _planned(clients, settings, snapshot, now, PassKind.FULL).plan


@dataclass(frozen=True)
class _Planned:
    plan: Plan
    observed: Observed
    cursor: SweepCursor | None = None  # the rotation after a sweep (recorded after it)


def _planned(clients: AwsClients, settings: Settings, snapshot: Snapshot,
             now: datetime | None, kind: PassKind, known: KnownState | None = None,
             cursor: SweepCursor | None = None,
             load_cache: ParseCache | None = None, pacer: Pacer | None = None) -> _Planned:
    """Load the snapshot (parsing only what ``load_cache`` lacks), observe as ``kind`` says
    (full, sweep from ``cursor``, or nothing but the ``known`` state), compute the plan.
    Observe's reads draw from ``pacer`` (default: the namespace's rates), like the apply's
    calls: a full check of 10,000 rules is 10,000 reads of EventBridge's 50 a second."""
    from reconciler.core.cronfile.loader import load_snapshot

    loaded = load_snapshot(snapshot, settings.path, cache=load_cache)
    partition, account = clients.identity()
    with paced(pacer or Pacer(configured(settings.api_rates))):
        observed, swept = _observed(clients, settings, loaded, account, kind, known, cursor,
                                    now)
    if kind != PassKind.INCREMENTAL:  # kept as the known state: one copy of each spec
        observed = share_specs(observed, loaded.specs)
    problems: dict[str, list[str]] = {}
    for diagnostic in (*loaded.diagnostics, *snapshot.refused):
        lines = problems.setdefault(diagnostic.file, [])
        if str(diagnostic) not in lines:
            lines.append(str(diagnostic))
    held = set(loaded.held_back)
    held |= {name for name, item in observed.registry.items() if item.file in problems}
    held -= {spec.name for spec in loaded.specs}
    held_files = {name: _held_file(name, observed.registry.get(name), problems)
                  for name in held}
    desired = desired_state(tuple(loaded.specs), deployment(settings, account, partition, now),
                            commit=snapshot.commit, held_back=frozenset(held),
                            held_files={n: f for n, f in held_files.items() if f},
                            held_reasons={n: tuple(problems.get(f, ()))
                                          for n, f in held_files.items() if f})
    return _Planned(make_plan(desired, observed, settings), observed, swept)


def _observed(clients: AwsClients, settings: Settings, loaded, account: str, kind: PassKind,
              known: KnownState | None, cursor: SweepCursor | None,
              now: datetime | None) -> tuple[Observed, SweepCursor | None]:
    """What AWS holds, as ``kind`` says, and the sweep's rotation after it (sweeps only)."""
    replaced_rules = tuple(s.replaces.rule for s in loaded.specs if s.replaces)
    swept = None
    if kind == PassKind.INCREMENTAL and known is not None:
        registry_items = known.observed.registry
        changed = tuple(s.replaces.rule for s in loaded.specs if s.replaces and (
            s.name not in registry_items
            or registry_items[s.name].spec_hash != s.spec_hash()))
        coverage = DeepCheck(read=0, listed=_resources(known.observed),
                             since=oldest(known.cursor))
        observed = refresh(clients, settings, known.observed, changed, coverage)
    elif kind == PassKind.SWEEP:
        observed, swept = observe_sweep(
            clients, settings, account, replaced_rules,
            SweepRequest(cursor or SweepCursor(), settings.drift_check_s, settings.deep_check_s,
                         now or datetime.now(UTC), configured(settings.api_rates)))
    else:
        observed = observe(clients, settings, account, replaced_rules)
    return observed, swept


def _resources(observed: Observed) -> int:
    """The resources a deep check reads one by one: schedules and task definitions."""
    return len(observed.rules) + len(observed.schedules) + len(observed.task_definitions)


def _held_file(name: str, item, problems: dict[str, list[str]]) -> str | None:
    """The invalid file a held-back cron comes from: its registered file when that file has
    problems, else a file with problems named after the cron."""
    if item is not None and item.file in problems:
        return item.file
    return next((f for f in sorted(problems) if PurePosixPath(f).stem == name), None)


def run_pass(clients: AwsClients, settings: Settings, *, dry_run: bool,
             source: Source = None, fence: Fence = UNFENCED, full_check: bool = False,
             policy: PassPolicy | None = None, now: datetime | None = None) -> PassResult:
    """One pass. ``source``: a Snapshot or a callable returning one (default: the repo).
    ``fence``: what every write goes through; ``UNFENCED`` only for a namespace with a single
    writer by design (tests, benchmarks). ``full_check``: observe everything even at the
    applied commit; ``policy``: the daemon's drift check and memory; ``now``: the wall clock
    (aware UTC) the pass is decided and recorded at."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    policy = policy or PassPolicy()
    with clients.counter.scope() as calls:
        result = _pass(clients, settings, dry_run, source, fence, full_check, policy, now)
        if not dry_run and result.check is not None and result.check.kind.observes:
            result = _record(clients, settings, result, fence)
    result = replace(result, api_calls=dict(sorted(calls.items())),
                     duration_s=round(time.monotonic() - started, 3))
    if result.lease_lost:
        log.error("reconcile.lease_lost", fence=repr(fence), error=result.errors[0],
                  applied_before=len(result.applied),
                  message="this replica lost the leader lease: pass stopped, nothing more "
                          "written; the new holder reconciles")
    _log(result)
    return result


def decide_pass(clients: AwsClients, settings: Settings, commit: str | None, fence: Fence,
                full_check: bool, policy: PassPolicy, now: datetime
                ) -> tuple[PassDecision, SweepCursor | None]:
    """The pass's kind (``core/plan/pass_check.decide``), reading the namespace's record of
    the applied commit only when the decision needs it (one BatchGetItem, which also checks
    that the namespace settings are still this process's, and reads the sweep's rotation:
    returned with the decision when read)."""
    facts = PassFacts(commit=commit, settings_version=settings.recorded_version, now=now,
                      full_check=full_check, generation=getattr(fence, "generation", None))
    decision = decide(facts, policy)
    if decision.kind != PassKind.READ:
        return decision, None
    try:
        record, namespace, cursor = registry.read_pass_records(clients, settings)
    except NotFound as exc:
        raise ConfigError(not_set_up(settings)) from exc
    check_unchanged(settings, namespace)
    # read: the rotation recorded, or none yet (it starts at the first name)
    return (decide(replace(facts, record=record, record_read=True), policy),
            cursor if cursor is not None else SweepCursor())


def _pass(clients: AwsClients, settings: Settings, dry_run: bool, source: Source,
          fence: Fence, full_check: bool, policy: PassPolicy, now: datetime) -> PassResult:
    """The steps of a pass (without its call counts and duration). Errors are worded for a
    reader: never an exception's class name."""
    commit, plan, applied, errors, apply_errors, lost, skipped = (None, None, (), (), (), None,
                                                                  ())
    changed, decision, known_after, checked_at = False, None, None, None
    try:
        if settings.scheduler not in BACKENDS:
            raise ConfigError(f"unknown scheduler {settings.scheduler!r}: use "
                              f"{' or '.join(BACKENDS)}")
        snapshot = _snapshot(settings, source)
        commit = snapshot.commit
        decision, cursor = decide_pass(clients, settings, commit, fence, full_check, policy,
                                       now)
        if decision.kind == PassKind.CHEAP:
            return PassResult(commit=commit, plan=Plan(commit=commit), dry_run=dry_run,
                              check=decision, recorded=decision.record,
                              summary=cheap_summary(decision.record, now))
        generation = getattr(fence, "generation", None)
        known = policy.known if isinstance(policy.known, KnownState) \
            and policy.known.valid_for(generation, settings.recorded_version) else None
        if decision.kind == PassKind.SWEEP:
            cursor = (known.cursor if known is not None else None) or cursor
            if cursor is None:
                cursor = registry.read_sweep(clients, settings)
        pacer = Pacer(configured(settings.api_rates))  # observe's reads and apply's calls
        planned = _planned(clients, settings, snapshot, now, decision.kind, known, cursor,
                           policy.load_cache, pacer)
        plan = planned.plan
        checked_at = known.swept_at if decision.kind == PassKind.INCREMENTAL else now
        if not dry_run:
            if commit is not None and plan.has_changes:
                # First forget what is applied: a pass that dies while applying leaves no
                # record behind, so the next pass is a full one.
                registry.clear_applied(clients, settings, fence=fence)
            result = apply_plan(clients, settings, plan, fence=fence, pacer=pacer)
            applied, apply_errors, lost = result.applied, result.errors, result.lease_lost
            skipped = result.skipped
            if lost is not None:
                errors = (f"this replica lost the leader lease: {lost}; pass stopped",)
            if planned.cursor is not None and lost is None:
                registry.write_sweep(clients, settings, planned.cursor, fence=fence)
            if lost is None and not apply_errors and not skipped and generation is not None:
                base = known.cursor if known is not None else (cursor or SweepCursor())
                known_after = KnownState(
                    after_apply(planned.observed, applied, result.written,
                                result.task_definitions, settings.namespace),
                    swept_at=checked_at, generation=generation,
                    settings_version=settings.recorded_version,
                    cursor=planned.cursor or base)
    except SourceError as exc:
        errors = (f"source unreadable, nothing changed: {exc}",)
    except NamespaceSettingsChanged as exc:
        errors, changed = (str(exc),), True
    except CronctlError as exc:
        errors = (str(exc),)
    return PassResult(commit=commit, plan=plan, applied=applied, errors=errors,
                      apply_errors=apply_errors, dry_run=dry_run, lease_lost=lost is not None,
                      skipped=skipped, settings_changed=changed, check=decision,
                      checked_at=checked_at, known=None if errors else known_after)


def _record(clients: AwsClients, settings: Settings, result: PassResult,
            fence: Fence) -> PassResult:
    """After an applying pass that planned: record it when it converged (checked when AWS
    was last listed for its plan); else, when it planned at a commit, clear the record so
    that the next pass is not a cheap one (an incremental pass that changed nothing leaves
    it: it learnt nothing). A failure to do so is logged: the next pass is then not cheap,
    or (record not cleared, lease lost) another replica's."""
    try:
        if result.converged:
            record = AppliedRecord(result.commit, settings.recorded_version,
                                   result.checked_at.replace(microsecond=0),
                                   getattr(fence, "generation", None),
                                   valid_until=result.plan.valid_until)
            registry.write_applied(clients, settings, record, fence=fence)
            return replace(result, recorded=record)
        quiet = result.check.kind == PassKind.INCREMENTAL and result.plan is not None \
            and not result.plan.has_changes
        if result.plan is not None and result.commit is not None and not result.lease_lost \
                and not quiet:
            registry.clear_applied(clients, settings, fence=fence)
    except CronctlError as exc:
        log.warning("reconcile.record_failed", commit=result.commit, error=str(exc),
                    message="the applied commit could not be recorded or cleared")
    return result


def _log(result: PassResult) -> None:
    counts = result.plan.counts() if result.plan else {}
    check = result.check.kind.value if result.check else None
    deep = result.plan.deep_check if result.plan else None
    log.info("reconcile.pass", commit=result.commit, dry_run=result.dry_run, check=check,
             check_reason=result.check.reason if result.check else None,
             summary=result.summary,
             deep_read=deep.read if deep else None, not_deep_read=deep.listed if deep else None,
             create=counts.get(Action.CREATE, 0), update=counts.get(Action.UPDATE, 0),
             delete=counts.get(Action.DELETE, 0), applied=len(result.applied),
             plan_errors=len(result.plan.errors) if result.plan else 0,
             apply_errors=len(result.apply_errors), skipped=len(result.skipped),
             errors=list(result.errors),
             duration_s=result.duration_s, aws_calls=sum(result.api_calls.values()),
             aws_calls_by_operation=result.api_calls)
