"""One reconcile pass: read source -> load -> observe -> plan -> apply (unless dry-run).

A source that cannot be read (``SourceError``) ends the pass before anything is observed or
changed: an unreadable source never deletes anything.

Every write of the apply goes through ``fence`` (``reconciler.adapters.lease``): the daemon's
loop and ``cronctl reconcile`` pass the fence of the leader lease they hold; a pass that loses
the lease stops at once (``LeaseLost``) and says so in its errors and its log line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import UNFENCED, Fence
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.desired import Deployment
from reconciler.core.plan.model import Action, Change, Plan
from reconciler.core.plan.planner import desired_state, make_plan
from reconciler.errors import ConfigError, CronctlError, NamespaceSettingsChanged, SourceError
from reconciler.logs import get_logger
from reconciler.service.control.apply import ApplyError, Skipped, apply_plan
from reconciler.service.control.observe import observe
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

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.errors and not self.plan.errors \
            and not self.apply_errors


def read_source(settings: Settings) -> Snapshot:
    """The cron files at the configured ref; a plain folder (no Git) is read as is."""
    from reconciler.adapters.gitsource.reader import is_remote, read_directory, read_git

    repo = settings.repo
    if not is_remote(repo) and os.path.isdir(repo) \
            and not os.path.exists(os.path.join(repo, ".git")) and settings.ref is None:
        return read_directory(repo, [settings.path])
    return read_git(repo, settings.ref, settings.path)


def deployment(settings: Settings, account: str, partition: str = "aws") -> Deployment:
    return Deployment(
        namespace=settings.namespace, region=settings.region, account=account,
        backend=settings.scheduler, sidecar_image=settings.sidecar_image,
        log_group=settings.log_group_name, execution_role_arn=settings.execution_role_arn,
        default_task_role_arn=settings.default_task_role_arn,
        scheduler_role_arn=settings.scheduler_role_arn, partition=partition,
        fargate=settings.placement.fargate, rules_quota=settings.rules_quota,
        monitor=settings.monitor, year=datetime.now(UTC).year, now=datetime.now(UTC))


def _snapshot(settings: Settings, source: Source) -> Snapshot:
    if source is None:
        return read_source(settings)
    return source() if callable(source) else source


def plan_pass(clients: AwsClients, settings: Settings, snapshot: Snapshot) -> Plan:
    """Load the snapshot, observe AWS and compute the plan (no changes made)."""
    from reconciler.core.cronfile.loader import load_snapshot

    loaded = load_snapshot(snapshot, settings.path)
    partition, account = clients.identity()
    observed = observe(clients, settings, account,
                       tuple(s.replaces.rule for s in loaded.specs if s.replaces))
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
    desired = desired_state(tuple(loaded.specs), deployment(settings, account, partition),
                            commit=snapshot.commit, held_back=frozenset(held),
                            held_files={n: f for n, f in held_files.items() if f},
                            held_reasons={n: tuple(problems.get(f, ()))
                                          for n, f in held_files.items() if f})
    return make_plan(desired, observed, settings)


def _held_file(name: str, item, problems: dict[str, list[str]]) -> str | None:
    """The invalid file a held-back cron comes from: its registered file when that file has
    problems, else a file with problems named after the cron."""
    if item is not None and item.file in problems:
        return item.file
    return next((f for f in sorted(problems) if PurePosixPath(f).stem == name), None)


def run_pass(clients: AwsClients, settings: Settings, *, dry_run: bool,
             source: Source = None, fence: Fence = UNFENCED) -> PassResult:
    """One pass. ``source``: a Snapshot or a callable returning one (default: the repo).
    ``fence``: what every write goes through; ``UNFENCED`` only for a namespace with a single
    writer by design (tests, benchmarks)."""
    started = time.monotonic()
    with clients.counter.scope() as calls:
        commit, plan, applied, errors, apply_errors, lost, skipped, changed = _pass(
            clients, settings, dry_run, source, fence)
    result = PassResult(commit=commit, plan=plan, applied=applied, errors=errors,
                        apply_errors=apply_errors, skipped=skipped,
                        api_calls=dict(sorted(calls.items())),
                        duration_s=round(time.monotonic() - started, 3), dry_run=dry_run,
                        lease_lost=lost is not None, settings_changed=changed)
    if lost is not None:
        log.error("reconcile.lease_lost", fence=repr(fence), error=str(lost),
                  applied_before=len(applied),
                  message="this replica lost the leader lease: pass stopped, nothing more "
                          "written; the new holder reconciles")
    _log(result)
    return result


def _pass(clients: AwsClients, settings: Settings, dry_run: bool, source: Source,
          fence: Fence):
    """The steps of a pass: (commit, plan, applied, errors, apply_errors, lease_lost,
    skipped, settings_changed). Errors are worded for a reader: never an exception's class
    name."""
    commit, plan, applied, errors, apply_errors, lost, skipped = (None, None, (), (), (), None,
                                                                  ())
    changed = False
    try:
        if settings.scheduler not in BACKENDS:
            raise ConfigError(f"unknown scheduler {settings.scheduler!r}: use "
                              f"{' or '.join(BACKENDS)}")
        snapshot = _snapshot(settings, source)
        commit = snapshot.commit
        plan = plan_pass(clients, settings, snapshot)
        if not dry_run:
            result = apply_plan(clients, settings, plan, fence=fence)
            applied, apply_errors, lost = result.applied, result.errors, result.lease_lost
            skipped = result.skipped
            if lost is not None:
                errors = (f"this replica lost the leader lease: {lost}; pass stopped",)
    except SourceError as exc:
        errors = (f"source unreadable, nothing changed: {exc}",)
    except NamespaceSettingsChanged as exc:
        errors, changed = (str(exc),), True
    except CronctlError as exc:
        errors = (str(exc),)
    return commit, plan, applied, errors, apply_errors, lost, skipped, changed


def _log(result: PassResult) -> None:
    counts = result.plan.counts() if result.plan else {}
    log.info("reconcile.pass", commit=result.commit, dry_run=result.dry_run,
             create=counts.get(Action.CREATE, 0), update=counts.get(Action.UPDATE, 0),
             delete=counts.get(Action.DELETE, 0), applied=len(result.applied),
             plan_errors=len(result.plan.errors) if result.plan else 0,
             apply_errors=len(result.apply_errors), skipped=len(result.skipped),
             errors=list(result.errors),
             duration_s=result.duration_s, aws_calls=sum(result.api_calls.values()),
             aws_calls_by_operation=result.api_calls)
