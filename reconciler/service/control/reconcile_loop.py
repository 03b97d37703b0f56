"""The reconcile loop: a pass every ``interval_s`` and on ``trigger()``, only while leader.

Leadership is the leader lease (``reconciler.adapters.lease``): ``lease_s`` long (30 s by
default, whatever the interval), generation + 1 at every change of holder. A ``LeaseKeeper``
thread renews it every third of its duration, during passes and between them, and on a replica
that does not hold it tries to take it over as often (and right when the holder's lease ends),
so a dead leader is replaced within one lease period; the replica that takes it runs a pass at
once. Every write of a pass goes through the fence of the tenure it started with: a replica
that lost the lease writes nothing more (``LeaseLost`` ends its pass). ``stop()`` releases the
lease so another replica takes over at once.

Cheap passes (``core/plan/pass_check.py``): the loop remembers the last converged pass it made
or found recorded (``PassResult.recorded``) with the lease generation it held. While it keeps
holding that generation, nobody else can have written, so a pass at the same commit makes no
AWS call at all; a pass asked for by ``trigger()`` (SIGHUP, webhooks) reads the namespace's
record once, which also notices changed namespace settings; every ``drift_check_s`` a pass is
a sweep (list calls and a budgeted rotating deep check, ``core/plan/sweep.py``).

Known state (``core/plan/known.py``): the loop also keeps what its last applying pass observed,
updated with what it applied (``PassResult.known``), valid under the same lease generation and
settings version. A pass at a new commit then observes nothing: it plans against that state
and applies (one changed cron: its writes, the record cleared and written, nothing read), and
parses only the cron files that changed (``load_cache``).

``run_leased_pass`` is ``cronctl reconcile``: it takes the lease for one pass (refusing, with
``LeaseHeld``, while a live daemon holds it), keeps it renewed and releases it after.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.lease import LeaderLease, LeaseHeld, LeaseHolder
from reconciler.core.cronfile.parse_cache import ParseCache
from reconciler.core.plan.pass_check import AppliedRecord, PassPolicy
from reconciler.errors import ConfigError, NotFound
from reconciler.logs import get_logger
from reconciler.service.control.reconcile import PassResult, Source, run_pass
from reconciler.service.memory import trim
from reconciler.service.metrics import Metrics
from reconciler.settings import Settings

__all__ = ["LeaderLease", "LeaseKeeper", "ReconcileLoop", "run_leased_pass"]

log = get_logger("cronctl.reconcile_loop")


def replica_id(role: str) -> str:
    """An owner id naming the process: ``<role>@<host>:<pid>/<random>``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}/{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Keeps ``lease`` on thread ``cronctl-lease``: renews it a third of its duration after
    each renewal; with ``take_over``, also takes it when free, released or expired (tried at
    least every third of the duration, and right when the holder's lease ends) and then calls
    ``on_acquired(generation)``."""

    def __init__(self, lease: LeaderLease, *, take_over: bool,
                 on_acquired: Callable[[int], None] | None = None) -> None:
        self.lease = lease
        self.take_over = take_over
        self._on_acquired = on_acquired
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("lease keeper already started")
        self._thread = threading.Thread(target=self._run, name="cronctl-lease", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float) -> bool:
        """Stop renewing (the lease is not released here); True when the thread ended."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if not self.take_over:  # just taken: the first renewal is due a third of it later
            self._stop.wait(max(0.05, self.lease.next_attempt_in()))
        while not self._stop.is_set():
            delay = self.tick()
            self._stop.wait(delay)

    def tick(self) -> float:
        """One renewal / take-over attempt; the seconds to wait before the next."""
        lease = self.lease
        before = lease.generation
        try:
            if self.take_over:
                lease.acquire()
            elif before is not None:
                lease.renew()
        except Exception as exc:  # noqa: BLE001 - the keeper must outlive AWS trouble
            log.warning("reconcile.lease_renewal_failed", owner=lease.owner, generation=before,
                        error=f"{type(exc).__name__}: {exc}")
            return max(0.05, lease.duration_s / 10)
        after = lease.generation
        if before is not None and after != before:
            log.warning("reconcile.lease_lost", owner=lease.owner, generation=before,
                        holder=lease.holder.owner if lease.holder else None)
        if after is not None and after != before:
            log.info("reconcile.lease_acquired", owner=lease.owner, generation=after,
                     lease_s=lease.duration_s)
            if self._on_acquired is not None:
                self._on_acquired(after)
        return max(0.05, lease.next_attempt_in())


class ReconcileLoop:
    """Runs ``pass_fn`` on thread ``cronctl-reconcile`` while this replica holds the lease:
    when it takes the lease, every interval and on ``trigger()``. An exception in a pass is
    logged and the loop goes on. ``lease_s`` overrides ``settings.lease_s``; ``clock`` is the
    wall clock (aware UTC) passes are decided by (replaceable in tests)."""

    def __init__(self, clients: AwsClients, settings: Settings, *, owner_id: str | None = None,
                 pass_fn: Callable[..., PassResult] = run_pass,
                 lease_s: float | None = None, metrics: Metrics | None = None,
                 on_settings_changed: Callable[[], None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.clients = clients
        self.settings = settings
        self.owner_id = owner_id or replica_id("serve")
        self.lease = LeaderLease(clients, settings, self.owner_id,
                                 lease_s if lease_s is not None else settings.lease_s)
        self.keeper = LeaseKeeper(self.lease, take_over=True, on_acquired=self._acquired)
        self._pass_fn = metrics.observing_passes(pass_fn) if metrics else pass_fn
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._passed_generation: int | None = None  # generation the latest pass started with
        self._clock = clock or (lambda: datetime.now(UTC))
        # this loop's last converged pass (with the generation it held): a later pass at its
        # commit under the same generation reads nothing
        self._applied: AppliedRecord | None = None
        self._triggered = False  # the next pass was asked for: it reads the record
        # the known state after this loop's last applying pass (``core/plan/known.py``)
        self._known = None
        # the cron files parsed by the last pass, by content: only changed files are parsed
        self._load_cache = ParseCache()
        self._thread: threading.Thread | None = None
        self.last_result: PassResult | None = None
        # Called once when a pass finds the namespace's recorded settings changed since
        # start (``cronctl serve`` then rebuilds its components with them).
        self.on_settings_changed = on_settings_changed
        self.passes = 0
        self.skipped = 0
        self.lost = 0  # passes stopped because the lease was lost

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("reconcile loop already started")
        self._thread = threading.Thread(target=self._run, name="cronctl-reconcile", daemon=True)
        self._thread.start()
        self.keeper.start()

    def trigger(self) -> None:
        """Run a pass now (SIGHUP, CI webhook); at the applied commit it stays cheap, reading
        only the namespace's record (and noticing changed namespace settings)."""
        self._triggered = True
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the loop and the keeper, then release the lease; True when both threads
        ended in time. A pass still running after that writes nothing more (its fence)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self.keeper.signal_stop()
        self._wake.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            stopped = not self._thread.is_alive()
        stopped = self.keeper.stop(max(0.0, deadline - time.monotonic())) and stopped
        try:
            self.lease.release()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.warning("reconcile.lease_release_failed", error=str(exc))
        return stopped

    def _acquired(self, generation: int) -> None:
        # A pass at once on taking the lease, unless one already started with it.
        with self._lock:
            if generation != self._passed_generation:
                self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._once()
            self._wake.wait(self.settings.interval_s)

    def _once(self) -> None:
        try:
            with self._lock:
                self._wake.clear()
                if not self.lease.held:  # a tick is also a take-over attempt
                    self.lease.acquire()
                fence = self.lease.fence() if self.lease.held else None
                if fence is not None:
                    self._passed_generation = fence.generation
            if fence is None:
                self.skipped += 1
                holder = self.lease.holder
                log.info("reconcile.skipped", reason="another replica holds the leader lease",
                         owner=self.owner_id, holder=holder.owner if holder else None)
                return
            if self._stop.is_set():
                return
            known = self._known
            if known is not None and not known.valid_for(fence.generation,
                                                         self.settings.recorded_version):
                known = None
            policy = PassPolicy(drift_check_s=self.settings.drift_check_s,
                                remembered=self._applied, verify=self._triggered, known=known,
                                load_cache=self._load_cache)
            self._triggered = False
            self._applied = None  # until this pass says it still holds
            self._known = None
            result = self._pass_fn(self.clients, self.settings, dry_run=False, fence=fence,
                                   policy=policy, now=self._clock())
            self._applied = _remembered(result, fence.generation)
            # a cheap pass changed nothing: the known state holds; else the pass's own
            self._known = known if getattr(result, "cheap", False) \
                else getattr(result, "known", None)
            self.last_result = _kept(result)
            if not getattr(result, "cheap", False):
                trim()  # the pass's working state is garbage now: give its pages back
            self.passes += 1
            if getattr(result, "lease_lost", False):
                self.lost += 1
            if getattr(result, "settings_changed", False) and self.on_settings_changed:
                callback, self.on_settings_changed = self.on_settings_changed, None
                log.warning("reconcile.settings_changed",
                            message="the namespace's recorded settings changed: restarting "
                                    "the daemon's components with them")
                callback()
        except Exception as exc:  # noqa: BLE001 - a failing pass must not end the loop
            log.error("reconcile.pass_failed", error=f"{type(exc).__name__}: {exc}")


def _kept(result: PassResult) -> PassResult:
    """What the loop keeps of a pass until the next (``last_result``): its plan without the
    no-op changes (one per resource of every cron: nothing proportional to the fleet is kept
    that the known state does not already hold)."""
    plan = getattr(result, "plan", None)
    if plan is None or not isinstance(result, PassResult):
        return result
    return replace(result, plan=replace(plan, changes=plan.pending))


def _remembered(result: PassResult, generation: int) -> AppliedRecord | None:
    """What the loop remembers after ``result``, under the lease ``generation`` the pass held:
    the record of a converged pass, or the record a cheap pass found (an applying pass clears
    the record before it changes anything, so a record means its commit is applied whole and
    nothing was applied since; under the same generation only this loop can apply); else
    nothing."""
    recorded = getattr(result, "recorded", None)
    if recorded is None:
        return None
    if getattr(result, "converged", False) or getattr(result, "cheap", False):
        return replace(recorded, generation=generation)
    return None


def run_leased_pass(clients: AwsClients, settings: Settings, *, owner: str | None = None,
                    source: Source = None, full_check: bool = False) -> PassResult:
    """One applying pass holding the leader lease (``cronctl reconcile``): taken when free,
    released or expired, renewed during the pass, released after. Raises ``LeaseHeld`` when a
    live replica holds it, ``ConfigError`` when the namespace has no leases table."""
    lease = LeaderLease(clients, settings, owner or replica_id("reconcile"), settings.lease_s)
    try:
        taken = lease.acquire()
        if not taken and (lease.holder is None or lease.holder.owner is None):
            taken = lease.acquire()  # released between the attempt and the read: once more
    except NotFound as exc:
        raise ConfigError(
            f"leases table {settings.leases_table} not found: namespace "
            f"{settings.namespace!r} is not set up; run `cronctl bootstrap --namespace "
            f"{settings.namespace}` (or deploy deploy/cloudformation.yaml) first") from exc
    if not taken:
        raise LeaseHeld(held_message(settings, lease.holder), lease.holder)
    keeper = LeaseKeeper(lease, take_over=False)
    keeper.start()
    try:
        return run_pass(clients, settings, dry_run=False, source=source, fence=lease.fence(),
                        full_check=full_check)
    finally:
        keeper.stop(timeout=10.0)
        lease.release()


def held_message(settings: Settings, holder: LeaseHolder | None) -> str:
    """One line: who holds the lease, until when, and the way out."""
    if holder is None or holder.owner is None:
        return (f"the leader lease of namespace {settings.namespace!r} changed hands while "
                "being taken; run this again")
    until = datetime.fromtimestamp(holder.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f"the leader lease of namespace {settings.namespace!r} is held by {holder.owner} "
            f"(generation {holder.generation}) until {until}, renewed while it runs: ask that "
            "daemon for a pass (send it SIGHUP, or POST /reconcile to its webhook), or run "
            "this again after that time if it has stopped")
