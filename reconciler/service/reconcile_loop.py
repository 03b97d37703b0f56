"""The reconcile loop: a pass every ``interval_s``, on ``trigger()``, only while leader.

Leadership is a lease: item ``leader`` of the leases table holding ``owner`` and
``expires_at`` (epoch seconds), taken or renewed with a conditional put before each pass. A
valid lease of another owner means this replica skips the pass. ``stop()`` releases the lease
so another replica takes over at its next pass.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.errors import Conflict
from reconciler.logs import get_logger
from reconciler.service.reconcile import PassResult, run_pass
from reconciler.settings import Settings

log = get_logger("cronctl.reconcile_loop")
LEASE_ID = "leader"


class LeaderLease:
    """A conditional-write lease in the leases table; ``owner`` identifies this replica."""

    def __init__(self, clients: AwsClients, settings: Settings, owner: str,
                 duration_s: float) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.leases_table
        self.owner = owner
        self.duration_s = duration_s

    def acquire(self, now: float | None = None) -> bool:
        """Take or renew the lease; False when another owner holds a valid one."""
        now = time.time() if now is None else now
        try:
            call_retrying(
                self._ddb.put_item, TableName=self._table,
                Item={"lease_id": {"S": LEASE_ID}, "owner": {"S": self.owner},
                      "expires_at": {"N": str(round(now + self.duration_s, 3))}},
                ConditionExpression="attribute_not_exists(lease_id) OR #owner = :me "
                                    "OR expires_at < :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner},
                                           ":now": {"N": str(round(now, 3))}})
            return True
        except Conflict:
            return False

    def release(self) -> None:
        try:
            call_retrying(self._ddb.delete_item, TableName=self._table,
                          Key={"lease_id": {"S": LEASE_ID}},
                          ConditionExpression="#owner = :me",
                          ExpressionAttributeNames={"#owner": "owner"},
                          ExpressionAttributeValues={":me": {"S": self.owner}})
        except Conflict:
            return


class ReconcileLoop:
    """Runs ``run_pass`` on thread ``cronctl-reconcile``: at start, every interval and on
    ``trigger()``. An exception in a pass is logged and the loop goes on."""

    def __init__(self, clients: AwsClients, settings: Settings, *, owner_id: str | None = None,
                 pass_fn: Callable[..., PassResult] = run_pass,
                 lease_s: float | None = None) -> None:
        self.clients = clients
        self.settings = settings
        self.owner_id = owner_id or f"cronctl-{uuid.uuid4()}"
        self.lease = LeaderLease(clients, settings, self.owner_id,
                                 lease_s if lease_s is not None else max(3 * settings.interval_s,
                                                                         30.0))
        self._pass_fn = pass_fn
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_result: PassResult | None = None
        self.passes = 0
        self.skipped = 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("reconcile loop already started")
        self._thread = threading.Thread(target=self._run, name="cronctl-reconcile", daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        """Run a pass now (SIGHUP, CI webhook)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the loop and release the lease; True when the thread ended in time."""
        self._stop.set()
        self._wake.set()
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout)
            stopped = not self._thread.is_alive()
        try:
            self.lease.release()
        except Exception as exc:  # noqa: BLE001 - best effort on the way out
            log.warning("reconcile.lease_release_failed", error=str(exc))
        return stopped

    def _run(self) -> None:
        while not self._stop.is_set():
            self._once()
            self._wake.wait(self.settings.interval_s)
            self._wake.clear()

    def _once(self) -> None:
        try:
            if not self.lease.acquire():
                self.skipped += 1
                log.info("reconcile.skipped", reason="another replica holds the leader lease",
                         owner=self.owner_id)
                return
            if self._stop.is_set():
                return
            self.last_result = self._pass_fn(self.clients, self.settings, dry_run=False)
            self.passes += 1
        except Exception as exc:  # noqa: BLE001 - a failing pass must not end the loop
            log.error("reconcile.pass_failed", error=f"{type(exc).__name__}: {exc}")
