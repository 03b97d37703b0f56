"""The reconcile leader lease and the fence that every write of a pass goes through.

The lease is item ``leader`` of the leases table: ``owner``, ``expires_at`` (epoch seconds) and
``generation``, a number that grows with every change of holder. Taking the lease (free,
released or expired) increments the generation by a conditional write; a renewal by the holder,
conditional on ``owner`` and ``generation``, keeps it; a release removes ``owner`` and keeps the
generation. So a replica whose lease was taken over can never write with its old generation.

A pass writes through a ``Fence`` bound to one tenure (one generation) of the lease:

- registry writes carry ``Fence.condition()``, a ``ConditionCheck`` on the ``leader`` item in
  the same ``TransactWriteItems``: DynamoDB itself refuses them once the lease changed hands;
- every other AWS write (rules, targets, schedules, task definitions, tags), which cannot be
  conditional, is preceded by ``Fence.check()``: the lease is still held as of its last
  successful renewal + duration - a safety margin (monotonic clock). When a third of the
  duration has passed, or the lease is not certainly held, it renews first (conditional on
  owner and generation); a failed renewal raises ``LeaseLost``. ``Fence.guard(clients)``
  gives clients whose every non-read call is checked.

``UNFENCED`` is for passes with no lease by design (a single writer: tests and benchmarks on
their own namespace); ``cronctl serve`` and ``cronctl reconcile`` always write through a lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.errors import Conflict, CronctlError
from reconciler.settings import Settings

LEASE_ID = "leader"
_READS = ("describe_", "list_", "get_", "scan", "query", "batch_get_", "can_paginate",
          "generate_presigned_")


class LeaseLost(CronctlError):
    """This replica no longer holds the lease it started the pass with: the pass stops."""


class LeaseHeld(CronctlError):
    """Another replica holds a live lease (the lease could not be taken)."""

    def __init__(self, message: str, holder: LeaseHolder | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True)
class LeaseHolder:
    """The ``leader`` item as read: ``owner`` None when released."""

    owner: str | None
    generation: int
    expires_at: float


class Fence(Protocol):
    """What a pass's writes go through (see the module docstring)."""

    def check(self) -> None: ...

    def condition(self) -> dict | None: ...

    def guard(self, clients: AwsClients) -> AwsClients: ...


class _Unfenced:
    """No lease by design: nothing is checked, registry writes are plain."""

    def check(self) -> None:
        return None

    def condition(self) -> dict | None:
        return None

    def guard(self, clients: AwsClients) -> AwsClients:
        return clients

    def __repr__(self) -> str:
        return "UNFENCED"


UNFENCED: Fence = _Unfenced()


@dataclass
class _Tenure:
    """One holding of the lease: its generation and when its last renewal was sent."""

    generation: int
    renewed_at: float  # monotonic


class LeaderLease:
    """The ``leader`` item seen from replica ``owner``; thread-safe (the pass and the
    heartbeat share it). ``wall`` and ``mono`` are the clocks (replaceable in tests)."""

    def __init__(self, clients: AwsClients, settings: Settings, owner: str, duration_s: float,
                 *, margin_s: float | None = None, wall: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.leases_table
        self.owner = owner
        self.duration_s = duration_s
        self.margin_s = duration_s / 5 if margin_s is None else margin_s
        self._wall, self._mono = wall, mono
        self._lock = threading.RLock()
        self._tenure: _Tenure | None = None
        self.holder: LeaseHolder | None = None  # as last seen by a take or a read

    # --- state -----------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._tenure is not None

    @property
    def generation(self) -> int | None:
        tenure = self._tenure
        return tenure.generation if tenure else None

    def fence(self) -> LeaseFence:
        """A fence bound to the current tenure; ``LeaseLost`` when the lease is not held."""
        with self._lock:
            if self._tenure is None:
                raise LeaseLost(f"{self.owner} does not hold the leader lease")
            return LeaseFence(self, self._tenure)

    def next_attempt_in(self) -> float:
        """Seconds until the next renewal (held: a third of the duration after the last) or
        take-over attempt (at most a third of the duration, sooner when the holder's lease
        ends sooner)."""
        third = self.duration_s / 3
        with self._lock:
            if self._tenure is not None:
                return max(0.0, self._tenure.renewed_at + third - self._mono())
            holder = self.holder
        if holder is None or holder.owner is None:
            return third
        return min(third, max(0.05, holder.expires_at - self._wall() + 0.05))

    # --- writes ----------------------------------------------------------------------------
    def acquire(self, now: float | None = None) -> bool:
        """Renew the lease when held, else take it when free, released or expired
        (generation + 1). False when another owner holds a live lease (``holder`` says who).
        ``now``: wall-clock epoch seconds (default: the wall clock)."""
        with self._lock:
            if self._tenure is not None and self._renew(self._tenure, now):
                return True
            return self._take(now)

    def renew(self, now: float | None = None) -> bool:
        """Renew the held lease (same generation); False when it is not held any more."""
        with self._lock:
            return self._tenure is not None and self._renew(self._tenure, now)

    def release(self) -> None:
        """Give the lease up (owner removed, generation kept) so another replica takes it at
        once; fences of this tenure fail from now on."""
        with self._lock:
            tenure, self._tenure = self._tenure, None
            if tenure is None:
                return
            try:
                call_retrying(
                    self._ddb.update_item, TableName=self._table, Key=_key(),
                    UpdateExpression="REMOVE #owner SET expires_at = :zero",
                    ConditionExpression="#owner = :me AND generation = :g",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":me": {"S": self.owner},
                                               ":g": {"N": str(tenure.generation)},
                                               ":zero": {"N": "0"}})
            except Conflict:
                return

    def read(self) -> LeaseHolder | None:
        """The ``leader`` item as stored now (None when it was never taken)."""
        item = call_retrying(self._ddb.get_item, TableName=self._table, Key=_key(),
                             ConsistentRead=True).get("Item")
        if item is None:
            return None
        return LeaseHolder(owner=item.get("owner", {}).get("S"),
                           generation=int(item.get("generation", {}).get("N", "0")),
                           expires_at=float(item.get("expires_at", {}).get("N", "0")))

    def condition_for(self, generation: int) -> dict:
        """The ``ConditionCheck`` of a ``TransactWriteItems`` that succeeds only while this
        owner holds ``generation``."""
        return {"TableName": self._table, "Key": _key(),
                "ConditionExpression": "#owner = :me AND generation = :g",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":me": {"S": self.owner},
                                              ":g": {"N": str(generation)}}}

    def check(self, tenure: _Tenure) -> None:
        """The local fence of ``tenure`` (see the module docstring)."""
        with self._lock:
            if self._tenure is not tenure:
                raise LeaseLost(f"leader lease generation {tenure.generation} of "
                                f"{self.owner} is no longer held")
            if self._mono() - tenure.renewed_at < self.duration_s / 3:
                return
            try:
                renewed: bool | None = self._renew(tenure)
            except CronctlError:
                renewed = None  # not known: still fine while certainly valid
            if renewed is False:
                raise LeaseLost(f"leader lease generation {tenure.generation} of {self.owner} "
                                "was taken over by another replica")
            if renewed is None and \
                    self._mono() >= tenure.renewed_at + self.duration_s - self.margin_s:
                raise LeaseLost(f"leader lease generation {tenure.generation} of {self.owner} "
                                "could not be renewed before it expired")

    # --- internals (lock held) -------------------------------------------------------------
    def _renew(self, tenure: _Tenure, now: float | None = None) -> bool:
        wall = self._wall() if now is None else now
        started = self._mono()
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table, Key=_key(),
                UpdateExpression="SET expires_at = :exp",
                ConditionExpression="#owner = :me AND generation = :g",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner},
                                           ":g": {"N": str(tenure.generation)},
                                           ":exp": {"N": _seconds(wall + self.duration_s)}})
        except Conflict:
            if self._tenure is tenure:
                self._tenure = None
            return False
        tenure.renewed_at = max(tenure.renewed_at, started)
        self.holder = LeaseHolder(self.owner, tenure.generation, wall + self.duration_s)
        return True

    def _take(self, now: float | None) -> bool:
        wall = self._wall() if now is None else now
        started = self._mono()
        try:
            answer = call_retrying(
                self._ddb.update_item, TableName=self._table, Key=_key(),
                UpdateExpression="SET #owner = :me, expires_at = :exp, "
                                 "generation = if_not_exists(generation, :zero) + :one",
                ConditionExpression="attribute_not_exists(lease_id) "
                                    "OR attribute_not_exists(#owner) OR expires_at < :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner},
                                           ":exp": {"N": _seconds(wall + self.duration_s)},
                                           ":now": {"N": _seconds(wall)},
                                           ":zero": {"N": "0"}, ":one": {"N": "1"}},
                ReturnValues="ALL_NEW")
        except Conflict:
            self.holder = holder = self.read()
            if holder is not None and holder.owner == self.owner and holder.expires_at > wall:
                # Our own take, whose answer was lost and whose retry found it done.
                self._tenure = _Tenure(holder.generation, started)
                return True
            return False
        generation = int(answer["Attributes"]["generation"]["N"])
        self._tenure = _Tenure(generation, started)
        self.holder = LeaseHolder(self.owner, generation, wall + self.duration_s)
        return True


class LeaseFence:
    """The fence of one tenure of a ``LeaderLease``."""

    def __init__(self, lease: LeaderLease, tenure: _Tenure) -> None:
        self._lease, self._tenure = lease, tenure

    @property
    def owner(self) -> str:
        return self._lease.owner

    @property
    def generation(self) -> int:
        return self._tenure.generation

    def check(self) -> None:
        self._lease.check(self._tenure)

    def condition(self) -> dict:
        return self._lease.condition_for(self._tenure.generation)

    def guard(self, clients: AwsClients) -> AwsClients:
        return FencedClients(clients, self)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"LeaseFence(owner={self.owner!r}, generation={self.generation})"


class FencedClients:
    """``AwsClients`` whose clients call ``fence.check()`` before every operation that is not a
    read (``describe_*``, ``list_*``, ``get_*``, ``scan``, ``query``...)."""

    def __init__(self, clients: AwsClients, fence: Fence) -> None:
        self._clients, self._fence = clients, fence

    def client(self, service: str) -> _FencedClient:
        return _FencedClient(self._clients.client(service), self._fence)

    def __getattr__(self, name: str):
        return getattr(self._clients, name)  # counter, identity, account_id, settings


class _FencedClient:
    def __init__(self, client, fence: Fence) -> None:
        self._client, self._fence = client, fence

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if name.startswith("_") or name.startswith(_READS) or not callable(attribute):
            return attribute
        fence = self._fence

        def fenced(*args, **kwargs):
            fence.check()
            return attribute(*args, **kwargs)

        fenced.__name__ = name
        return fenced


def _key() -> dict:
    return {"lease_id": {"S": LEASE_ID}}


def _seconds(value: float) -> str:
    return str(round(value, 3))
