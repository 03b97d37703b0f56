"""The executions table and the per-cron overlap locks in the leases table.

Every write that decides something is conditional, so several dispatchers and consumers
(replicas, duplicate deliveries) can race safely:
- ``create`` is ``attribute_not_exists(execution_id)``: one record per execution id;
- ``apply`` is a compare-and-swap on ``version`` (the record read before applying the event,
  whose version is below the event's): a stale event never overwrites a newer state, and a
  run becomes terminal exactly once;
- ``claim`` takes a PENDING record that has no task for one attempt, until an expiry, by
  conditional write: one attempt at a time resumes a run;
- a lock ``lock#<cron>`` is taken only when absent, expired, or held by ``expected_holder``,
  and released only by its holder.

Records carry ``unfinished = "1"``, the key of the sparse index ``unfinished`` that the
watchdog queries, from their creation until they are terminal, their overlap lock is
released *and* their outbox is empty: a crash between storing a final state and releasing the
lock, or before the effects of the outbox (log line, ping, alerts) are carried out, leaves the
run in the index, and the next sweep finishes the work.

The outbox (``outbox``, a string set of effect names; see ``reconciler.core.alerts.model``)
is written with the final state in the same conditional write (``apply``, ``finish_unstarted``
with ``effects``). Its effects are carried out under a claim (``claim_outbox``: owner and
expiry, conditional), each removed only after it succeeded (``remove_effects``,
``release_outbox``, conditional on the claim); a failed delivery leaves it, with when it may
be retried. Whoever writes last of "lock released" and "outbox empty" sees both in the answer
(``ReturnValues``) and takes the run out of the index (``close``, conditional); a drain that
carried out every effect of a finished run whose lock is released empties the outbox and takes
the run out of the index in one write (``finish_outbox``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.tables import EXECUTIONS_BY_CRON, EXECUTIONS_UNFINISHED, UNFINISHED
from reconciler.core.executions.records import (
    PENDING,
    RUNNING,
    TERMINAL,
    EventWrite,
    Execution,
)
from reconciler.core.executions.repairs import LockState
from reconciler.errors import Conflict, TransientError
from reconciler.settings import Settings

# Attributes that only the outbox's own writes change: an event-derived write (``apply``)
# never sets them from what it read.
OUTBOX_FIELDS = frozenset({"outbox", "outbox_owner", "outbox_until", "outbox_retry_at",
                           "outbox_attempts", "outbox_failing_since", "notices", "overlong_at"})

# How long a lock handed to the run waiting for it lasts before that run renews it.
HAND_OVER_S = 300.0

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attributes(data: dict) -> dict:
    return {k: _serializer.serialize(_epoch(v) if isinstance(v, float) else v)
            for k, v in data.items() if v is not None}


def from_attributes(item: dict) -> dict:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class ExecutionStore:
    """Reads and conditional writes of ``<ns>-executions``."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.executions_table

    def create(self, execution: Execution) -> bool:
        """Store a new record; False when one with this id exists already (a duplicate)."""
        return self.create_or_get(execution)[0]

    def create_or_get(self, execution: Execution) -> tuple[bool, Execution | None]:
        """Store a new record: ``(True, None)``; else ``(False, the stored record)``.

        When the first answer is lost and the retry finds the record, the stored record is
        ours: it carries this ``execution.attempt_id``, and the caller tells it apart from a
        real duplicate by that."""
        data = execution.to_dict()
        if not execution.terminal or execution.outbox:
            data[UNFINISHED] = "1"
        try:
            call_retrying(self._ddb.put_item, TableName=self._table,
                          Item=to_attributes(data),
                          ConditionExpression="attribute_not_exists(execution_id)",
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Conflict as exc:
            old = getattr(exc.__cause__, "response", {}).get("Item")
            stored = Execution.from_dict(from_attributes(old)) if old else \
                self.get(execution.execution_id)
            return False, stored
        return True, None

    def create_with(self, execution: Execution, others: list[dict]
                    ) -> tuple[bool, Execution | None, list[tuple[str, dict | None]]]:
        """Store a new record together with ``others`` (``TransactWriteItems`` items: the
        registry item's check, the overlap lock), all or nothing, in one request.

        ``(True, None, [])`` when stored; else ``(False, the stored record or None, the
        codes and ``ALL_OLD`` items of ``others``)`` (``(False, None, [])``: the record
        existed and is gone already). DynamoDB reports each item's reason
        (``ConditionalCheckFailed`` with the item as it is, ``None`` for an item whose
        condition held); a record that exists already is reported first, and the caller
        treats the run as existing (duplicate or resumed) whatever the others say. A lost
        first answer retried finds the record with this ``attempt_id``, as ``create_or_get``
        does. A transaction that conflicts with another one on the same items (or is
        throttled) is retried a few times, then ``TransientError``."""
        data = execution.to_dict()
        if not execution.terminal or execution.outbox:
            data[UNFINISHED] = "1"
        put = {"Put": {"TableName": self._table, "Item": to_attributes(data),
                       "ConditionExpression": "attribute_not_exists(execution_id)",
                       "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                call_retrying(self._ddb.transact_write_items, TransactItems=[put, *others])
                return True, None, []
            except Conflict as exc:
                reasons = cancellation_reasons(exc)
                if not reasons:
                    raise
            codes = [code for code, _ in reasons]
            if codes[0] == "ConditionalCheckFailed":
                old = reasons[0][1]
                stored = Execution.from_dict(from_attributes(old)) if old else \
                    self.get(execution.execution_id)
                return False, stored, reasons[1:] if stored is not None else []
            if any(code in RETRIED_CODES for code in codes):
                time.sleep(0.05 * (attempt + 1))
                continue
            if all(code in ("ConditionalCheckFailed", "None") for code in codes):
                return False, None, reasons[1:]
            raise TransientError(f"TransactWriteItems cancelled: {codes}")
        raise TransientError("TransactWriteItems kept conflicting with other writes")

    def get(self, execution_id: str) -> Execution | None:
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"execution_id": {"S": execution_id}}, ConsistentRead=True)
        item = response.get("Item")
        return Execution.from_dict(from_attributes(item)) if item else None

    def apply(self, execution: Execution, read_version: int | None,
              effects: frozenset[str] = frozenset()) -> bool:
        """Write an event-derived record if the stored version is still ``read_version``.

        Compare-and-swap on ``version``: stronger than "stored version < new version" (which
        ``apply_event`` already ensured against what was read), because it also makes the
        transition to a terminal state happen exactly once when replicas race on two events
        of one task. Returns False when someone else wrote first (re-read and re-apply).
        ``effects`` are added to the outbox in the same write (a run becoming terminal).
        """
        data = execution.to_dict()
        fields = [k for k in data if k != "execution_id" and k not in OUTBOX_FIELDS]
        names = {f"#{k}": k for k in fields}
        names["#version"] = "version"
        values = to_attributes({f":{k}": data[k] for k in fields})
        if read_version is None:
            condition = "attribute_exists(execution_id) AND attribute_not_exists(#version)"
        else:
            condition = "#version = :read_version"
            values[":read_version"] = {"N": str(read_version)}
        update = "SET " + ", ".join(f"#{k} = :{k}" for k in fields)
        if effects:
            update += " ADD outbox :effects"
            values[":effects"] = {"SS": sorted(effects)}
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution.execution_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except Conflict:
            return False
        return True

    def store_event(self, execution_id: str, write: EventWrite,
                    effects: frozenset[str] = frozenset(), outbox_owner: str | None = None,
                    claim_s: float = 60.0, now: float | None = None
                    ) -> tuple[bool, Execution | None]:
        """Store an event without reading the record first: one conditional UpdateItem (see
        ``records.EventWrite`` for its conditions). ``(True, the record after)`` when stored
        (the record only for a final state); else ``(False, the record as it is)`` (None: no
        such record), from the failed write's ``ALL_OLD``: the caller goes on with it, no
        read needed. A final state stores ``effects`` in the outbox in the same write and,
        with ``outbox_owner``, claims the outbox for it until ``now + claim_s`` (only if
        nobody holds a live claim and no failed delivery waits for its retry): the drain that
        follows needs no claim of its own."""
        now = time.time() if now is None else now
        names = {"#status": "status", "#version": "version"}
        values = to_attributes({":version": write.version, ":arn": write.task_arn,
                                ":pending": PENDING, ":running": RUNNING})
        condition = ("#status IN (:pending, :running) AND "
                     "(attribute_not_exists(#version) OR #version < :version) AND "
                     "(attribute_not_exists(task_arn) OR task_arn = :arn)")
        if write.attempt == 1:
            condition += " AND (attribute_not_exists(attempt) OR attempt = :attempt)"
        else:
            condition += " AND attempt = :attempt"
        values[":attempt"] = {"N": str(write.attempt)}
        for i, name in enumerate(write.needs):
            names[f"#need{i}"] = name
            condition += f" AND attribute_exists(#need{i})"
        if write.retry_free:
            names["#retry"] = "retry"
            condition += " AND attribute_not_exists(#retry)"
        sets = ["#version = :version", "task_arn = :arn"]
        for i, (name, value) in enumerate(write.sets.items()):
            names[f"#s{i}"] = name
            values[f":s{i}"] = _serializer.serialize(value)
            sets.append(f"#s{i} = :s{i}")
        for i, (name, value) in enumerate(write.sets_if_absent.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = _serializer.serialize(value)
            sets.append(f"#a{i} = if_not_exists(#a{i}, :a{i})")
        claims = write.terminal and outbox_owner is not None and bool(effects)
        if claims:
            sets += ["outbox_owner = :owner", "outbox_until = :until"]
            values.update(to_attributes({":owner": outbox_owner,
                                         ":until": _epoch(now + claim_s),
                                         ":now": _epoch(now)}))
            condition += (" AND (attribute_not_exists(outbox_until) OR outbox_until < :now)"
                          " AND attribute_not_exists(outbox_retry_at)")
        update = "SET " + ", ".join(sets)
        if write.terminal and effects:
            update += " ADD outbox :effects"
            values[":effects"] = {"SS": sorted(effects)}
        removes = [f"#r{i}" for i in range(len(write.removes))]
        names.update({f"#r{i}": name for i, name in enumerate(write.removes)})
        if removes:
            update += " REMOVE " + ", ".join(removes)
        try:
            answer = call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution_id}},
                UpdateExpression=update, ConditionExpression=condition,
                ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW" if write.terminal else "NONE",
                # An event that does not decide the outcome changes nothing when its write
                # is refused (stale, duplicate, another attempt's, no such run): the record
                # is not needed then.
                ReturnValuesOnConditionCheckFailure="ALL_OLD" if write.terminal else "NONE")
        except Conflict as exc:
            if not write.terminal:
                return False, None
            old = getattr(exc.__cause__, "response", {}).get("Item")
            # No item with ALL_OLD: there is no record (a task that is not ours).
            return False, Execution.from_dict(from_attributes(old)) if old else None
        attributes = answer.get("Attributes")
        return True, Execution.from_dict(from_attributes(attributes)) if attributes else None

    def add_note(self, execution_id: str, note: str) -> None:
        """Note on the record how its run was made (``Execution.note``); nothing else changes,
        and no other write removes it."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="SET note = :note",
                          ConditionExpression="attribute_exists(execution_id)",
                          ExpressionAttributeValues={":note": {"S": note}})
        except Conflict:
            pass  # the record is gone (expired): nothing to note

    def set_task(self, execution_id: str, task_arn: str) -> bool:
        """Record the task ARN that RunTask (or ListTasks) returned; the claim ends with it.

        False when the record names another task already, or was ended without a task
        (given up or replaced): it is left as it is."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="SET task_arn = :arn REMOVE claim_until, claimed_by",
                          ConditionExpression="attribute_exists(execution_id) AND "
                                              "(task_arn = :arn OR "
                                              "(attribute_not_exists(task_arn) AND "
                                              "(#status <> :gave_up OR "
                                              "attribute_exists(#version))))",
                          ExpressionAttributeNames={"#status": "status", "#version": "version"},
                          ExpressionAttributeValues={":arn": {"S": task_arn},
                                                     ":gave_up": {"S": "FAILED_TO_START"}})
        except Conflict:
            return False
        return True

    def claim(self, execution_id: str, attempt: str, claim_s: float,
              now: float | None = None) -> bool:
        """Take a PENDING record that has no task for ``attempt`` until ``now + claim_s``.

        Succeeds when nobody holds a live claim (or ``attempt`` holds it already)."""
        now = time.time() if now is None else now
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution_id}},
                UpdateExpression="SET claimed_by = :me, claim_until = :until",
                ConditionExpression="#status = :pending AND attribute_not_exists(task_arn) "
                                    "AND (attribute_not_exists(claim_until) OR "
                                    "claim_until < :now OR claimed_by = :me)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_attributes({
                    ":me": attempt, ":until": _epoch(now + claim_s), ":now": _epoch(now),
                    ":pending": PENDING}))
        except Conflict:
            return False
        return True

    def unclaim(self, execution_id: str, attempt: str) -> bool:
        """End ``attempt``'s claim at once, so that a retry may resume without waiting."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="REMOVE claim_until, claimed_by",
                          ConditionExpression="claimed_by = :me",
                          ExpressionAttributeValues={":me": {"S": attempt}})
        except Conflict:
            return False
        return True

    def retry(self, waiting: Execution, read: Execution) -> bool:
        """``retries``: store ``waiting`` (``core.executions.retries.after_attempt``: PENDING, no
        task, the next attempt and when it may start, the ended attempt in ``tries``) in place
        of the attempt ``read`` (compare-and-swap on its version; a record no event touched:
        still PENDING with the task it had). The run stays in the index of open runs with its
        lock; nothing goes to its outbox. False when someone else wrote first."""
        values = to_attributes({
            ":status": PENDING, ":attempt": waiting.attempt, ":retry_at": waiting.retry_at,
            ":deadline": waiting.start_deadline,
            ":tries": [t.to_dict() for t in waiting.tries or ()]})
        if read.version is not None:
            condition = "#version = :read_version"
            values[":read_version"] = {"N": str(read.version)}
        else:
            condition = "attribute_not_exists(#version) AND #status = :status AND " + (
                "task_arn = :arn" if read.task_arn else "attribute_not_exists(task_arn)")
            if read.task_arn:
                values[":arn"] = {"S": read.task_arn}
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": waiting.execution_id}},
                UpdateExpression="SET #status = :status, attempt = :attempt, "
                                 "retry_at = :retry_at, start_deadline = :deadline, "
                                 "tries = :tries REMOVE task_arn, #version, started_at, "
                                 "stopped_at, exit_code, reason, claimed_by, claim_until, "
                                 "overlong_at",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status", "#version": "version"},
                ExpressionAttributeValues=values)
        except Conflict:
            return False
        return True

    def mark_queued(self, execution_id: str, attempt: str, behind: str,
                    start_deadline: str) -> bool:
        """``concurrency: queue``: note that the PENDING run (claimed by ``attempt``) waits for
        ``behind``, with the start deadline of a run that waits, and end the claim; False when
        the record has moved on (started, or ended) or the claim is not ``attempt``'s."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="SET queued_behind = :behind, "
                                           "start_deadline = :deadline "
                                           "REMOVE claim_until, claimed_by",
                          ConditionExpression="#status = :pending AND "
                                              "attribute_not_exists(task_arn) AND "
                                              "claimed_by = :me",
                          ExpressionAttributeNames={"#status": "status"},
                          ExpressionAttributeValues=to_attributes({
                              ":behind": behind, ":deadline": start_deadline,
                              ":pending": PENDING, ":me": attempt}))
        except Conflict:
            return False
        return True

    def finish_unstarted(self, execution_id: str, status: str, reason: str,
                         lock_released: bool = True,
                         effects: frozenset[str] = frozenset()) -> bool:
        """End a PENDING record that has no task and that no event has touched
        (SKIPPED / FAILED_TO_START), with ``effects`` in its outbox; False when it has moved
        on meanwhile. It leaves the index of open runs at once only when its lock is released
        and it has no effects to carry out."""
        leaves = lock_released and not effects
        values = to_attributes({":status": status, ":reason": reason, ":now": _now_iso(),
                                ":pending": PENDING, ":released": lock_released})
        if effects:
            values[":effects"] = {"SS": sorted(effects)}
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution_id}},
                UpdateExpression="SET #status = :status, reason = :reason, stopped_at = :now, "
                                 "lock_released = :released "
                                 + ("ADD outbox :effects " if effects else "")
                                 + "REMOVE claim_until, claimed_by"
                                 + (", #unfinished" if leaves else ""),
                ConditionExpression="#status = :pending AND attribute_not_exists(#version) "
                                    "AND attribute_not_exists(task_arn)",
                ExpressionAttributeNames={"#status": "status", "#version": "version",
                                          **({"#unfinished": UNFINISHED} if leaves else {})},
                ExpressionAttributeValues=values)
        except Conflict:
            return False
        return True

    def mark_lock_released(self, execution_id: str, outbox_pending: bool = False) -> None:
        """Note that the record's overlap lock is gone (redeliveries need not release it) and
        take the finished run out of the index of open runs, unless its outbox still has
        effects to carry out (then whoever empties the outbox does). ``outbox_pending``: the
        caller knows it has (one write instead of two)."""
        if not outbox_pending:
            try:
                call_retrying(self._ddb.update_item, TableName=self._table,
                              Key={"execution_id": {"S": execution_id}},
                              UpdateExpression="SET lock_released = :yes REMOVE #unfinished",
                              ConditionExpression="attribute_not_exists(outbox)",
                              ExpressionAttributeNames={"#unfinished": UNFINISHED},
                              ExpressionAttributeValues={":yes": {"BOOL": True}})
                return
            except Conflict:
                pass
        answer = call_retrying(self._ddb.update_item, TableName=self._table,
                               Key={"execution_id": {"S": execution_id}},
                               UpdateExpression="SET lock_released = :yes",
                               ExpressionAttributeValues={":yes": {"BOOL": True}},
                               ReturnValues="ALL_NEW")
        self._close_if_done(answer.get("Attributes"))

    # -- the outbox ---------------------------------------------------------------------
    def claim_outbox(self, execution_id: str, owner: str, claim_s: float,
                     now: float | None = None, *, ignore_backoff: bool = False
                     ) -> Execution | None:
        """Take the record's outbox for ``owner`` until ``now + claim_s``: the record as it is
        then, or None when it has no effects, another replica holds a live claim, or (unless
        ``ignore_backoff``) a failed delivery may not be retried yet."""
        now = time.time() if now is None else now
        condition = ("attribute_exists(outbox) AND (attribute_not_exists(outbox_until) OR "
                     "outbox_until < :now OR outbox_owner = :me)")
        if not ignore_backoff:
            condition += " AND (attribute_not_exists(outbox_retry_at) OR outbox_retry_at <= :now)"
        try:
            answer = call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution_id}},
                UpdateExpression="SET outbox_owner = :me, outbox_until = :until",
                ConditionExpression=condition,
                ExpressionAttributeValues=to_attributes({
                    ":me": owner, ":until": _epoch(now + claim_s), ":now": _epoch(now)}),
                ReturnValues="ALL_NEW")
        except Conflict:
            return None
        return Execution.from_dict(from_attributes(answer["Attributes"]))

    def remove_effects(self, execution_id: str, owner: str, effects: frozenset[str],
                       *, release: bool = False, retry_at: float | None = None,
                       attempts: int | None = None,
                       failing_since: float | None = None) -> Execution | None:
        """Remove ``effects`` (carried out, or dropped) from the outbox while ``owner`` holds
        its claim; with ``release`` the claim ends too, and ``retry_at``/``attempts``/
        ``failing_since`` note a failed delivery (all None: no failure pending). The record
        after the write, or None when the claim was lost. Takes the run out of the index of
        open runs when that emptied the outbox of a finished run whose lock is released."""
        sets, removes = [], []
        values: dict = {":me": {"S": owner}}
        update = ""
        if effects:
            update += "DELETE outbox :done "
            values[":done"] = {"SS": sorted(effects)}
        if release:
            removes += ["outbox_owner", "outbox_until"]
            for name, value in (("outbox_retry_at", retry_at), ("outbox_attempts", attempts),
                                ("outbox_failing_since", failing_since)):
                if value is None:
                    removes.append(name)
                else:
                    sets.append(f"{name} = :{name}")
                    values[f":{name}"] = _serializer.serialize(
                        _epoch(value) if isinstance(value, float) else value)
        if sets:
            update += "SET " + ", ".join(sets) + " "
        if removes:
            update += "REMOVE " + ", ".join(removes)
        if not update.strip():
            return None
        try:
            answer = call_retrying(self._ddb.update_item, TableName=self._table,
                                   Key={"execution_id": {"S": execution_id}},
                                   UpdateExpression=update.strip(),
                                   ConditionExpression="outbox_owner = :me",
                                   ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except Conflict:
            return None
        attributes = answer.get("Attributes")
        self._close_if_done(attributes)
        return Execution.from_dict(from_attributes(attributes)) if attributes else None

    def finish_outbox(self, execution_id: str, owner: str,
                      lock_released_now: bool = False) -> bool:
        """Empty the outbox of a finished run whose lock is released, end ``owner``'s claim
        and take the run out of the index of open runs, in one write; False (nothing
        written) when ``owner`` lost the claim or the lock is not noted released. Only for a
        terminal run whose every effect ``owner`` carried out: nothing adds effects to one.
        ``lock_released_now``: the caller has just released the run's lock itself, and the
        same write notes it (``mark_lock_released`` folded in)."""
        update = ("REMOVE outbox, outbox_owner, outbox_until, outbox_retry_at, "
                  "outbox_attempts, outbox_failing_since, #unfinished")
        condition = "outbox_owner = :me AND lock_released = :yes"
        if lock_released_now:
            update = "SET lock_released = :yes " + update
            condition = "outbox_owner = :me"
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression=update,
                          ConditionExpression=condition,
                          ExpressionAttributeNames={"#unfinished": UNFINISHED},
                          ExpressionAttributeValues={":me": {"S": owner},
                                                     ":yes": {"BOOL": True}})
        except Conflict:
            return False
        return True

    def _close_if_done(self, attributes: dict | None) -> None:
        if not attributes or UNFINISHED not in attributes or "outbox" in attributes:
            return
        record = Execution.from_dict(from_attributes(attributes))
        if record.terminal and record.lock_released:
            self.close(record.execution_id)

    def close(self, execution_id: str) -> bool:
        """Take a finished run whose lock is released and whose outbox is empty out of the
        index of open runs; False when it is not (yet) all that."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="REMOVE #unfinished",
                          ConditionExpression="attribute_not_exists(outbox) AND "
                                              "lock_released = :yes AND #status IN (" +
                                              ", ".join(f":s{i}" for i in range(len(TERMINAL)))
                                              + ")",
                          ExpressionAttributeNames={"#unfinished": UNFINISHED,
                                                    "#status": "status"},
                          ExpressionAttributeValues={
                              ":yes": {"BOOL": True},
                              **{f":s{i}": {"S": s} for i, s in enumerate(sorted(TERMINAL))}})
        except Conflict:
            return False
        return True

    def mark_overlong(self, execution_id: str, now_iso: str, effect: str) -> bool:
        """Note that the run is past its ran-longer-than-threshold and put ``effect`` in its
        outbox; False when it was noted already (by this or another replica) or it ended: one
        alert per run."""
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          UpdateExpression="SET overlong_at = :now ADD outbox :effect",
                          ConditionExpression="attribute_not_exists(overlong_at) AND "
                                              "#status IN (:running, :pending)",
                          ExpressionAttributeNames={"#status": "status"},
                          ExpressionAttributeValues={":now": {"S": now_iso},
                                                     ":effect": {"SS": [effect]},
                                                     ":running": {"S": RUNNING},
                                                     ":pending": {"S": PENDING}})
        except Conflict:
            return False
        return True

    def existing(self, execution_ids: list[str]) -> set[str]:
        """Which of ``execution_ids`` have a record (BatchGetItem, 100 keys a call)."""
        found: set[str] = set()
        ids = list(dict.fromkeys(execution_ids))
        for start in range(0, len(ids), 100):
            keys = [{"execution_id": {"S": i}} for i in ids[start:start + 100]]
            request = {self._table: {"Keys": keys, "ProjectionExpression": "execution_id",
                                     "ConsistentRead": True}}
            for _ in range(10):
                answer = call_retrying(self._ddb.batch_get_item, RequestItems=request)
                found.update(item["execution_id"]["S"]
                             for item in answer.get("Responses", {}).get(self._table, []))
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05)
        return found

    def unfinished(self) -> list[Execution]:
        """Every open (non-terminal) record, oldest scheduled first (the sparse index)."""
        result: list[Execution] = []
        kwargs = {"TableName": self._table, "IndexName": EXECUTIONS_UNFINISHED,
                  "KeyConditionExpression": "#u = :one",
                  "ExpressionAttributeNames": {"#u": UNFINISHED},
                  "ExpressionAttributeValues": {":one": {"S": "1"}}}
        while True:
            page = call_retrying(self._ddb.query, **kwargs)
            result += [Execution.from_dict(from_attributes(i)) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return result
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def recent(self, cron: str, limit: int = 10) -> list[Execution]:
        """The cron's executions, newest scheduled first."""
        result: list[Execution] = []
        kwargs = {"TableName": self._table, "IndexName": EXECUTIONS_BY_CRON,
                  "KeyConditionExpression": "cron = :cron",
                  "ExpressionAttributeValues": {":cron": {"S": cron}},
                  "ScanIndexForward": False, "Limit": limit}
        while len(result) < limit:
            page = call_retrying(self._ddb.query, **kwargs)
            result += [Execution.from_dict(from_attributes(i)) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return result[:limit]


TRANSACT_ATTEMPTS = 4
# Cancellation reasons that say nothing about the conditions: another transaction on the same
# items, or throttling; the transaction is tried again.
RETRIED_CODES = frozenset({"TransactionConflict", "ThrottlingError",
                           "ProvisionedThroughputExceeded", "RequestLimitExceeded"})


def cancellation_reasons(exc: Exception) -> list[tuple[str, dict | None]]:
    """A cancelled transaction's reasons, one per item in order: its code (``"None"`` when
    the item was not the cause) and, with ``ALL_OLD``, the item as it is; ``[]`` when the
    error is not a cancelled transaction."""
    response = getattr(exc.__cause__, "response", None) or {}
    return [(str(r.get("Code") or "None"), r.get("Item") or None)
            for r in response.get("CancellationReasons") or []]


def _epoch(moment: float) -> Decimal:
    return Decimal(str(round(moment, 3)))


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def lock_id(cron: str) -> str:
    return f"lock#{cron}"


class OverlapLocks:
    """One lock item per cron in ``<ns>-leases``, naming the execution that holds it.

    A lock carries ``expires_at`` (epoch seconds: the holder's timeout plus the grace period
    from when it was taken): past it, the next dispatch takes the lock over even when no
    watchdog ran, so one lost task or lost event never blocks a cron for longer than that."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.leases_table

    def _item(self, cron: str, execution_id: str, hold_s: float, now: float) -> dict:
        return to_attributes({"lease_id": lock_id(cron), "execution_id": execution_id,
                              "acquired_at": _now_iso(), "expires_at": _epoch(now + hold_s)})

    def holder(self, cron: str) -> str | None:
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"lease_id": {"S": lock_id(cron)}}, ConsistentRead=True)
        item = response.get("Item")
        return item["execution_id"]["S"] if item else None

    def try_acquire(self, cron: str, execution_id: str, expected_holder: str | None = None,
                    hold_s: float = 24 * 3600 + 60,
                    now: float | None = None) -> tuple[bool, str | None]:
        """Take the lock if it is free, expired, held by ``expected_holder`` or by us already,
        for ``hold_s`` seconds. Returns ``(True, None)`` on success, else
        ``(False, current_holder)``."""
        now = time.time() if now is None else now
        condition = ("attribute_not_exists(lease_id) OR execution_id = :me OR "
                     "expires_at < :now")
        values = to_attributes({":me": execution_id, ":now": _epoch(now)})
        if expected_holder is not None:
            condition += " OR execution_id = :old"
            values[":old"] = {"S": expected_holder}
        try:
            call_retrying(self._ddb.put_item, TableName=self._table,
                          Item=self._item(cron, execution_id, hold_s, now),
                          ConditionExpression=condition,
                          ExpressionAttributeValues=values,
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Conflict as exc:
            old = getattr(exc.__cause__, "response", {}).get("Item")
            if old and "execution_id" in old:
                return False, old["execution_id"]["S"]
            return False, self.holder(cron)
        return True, None

    def acquire_item(self, cron: str, execution_id: str, hold_s: float,
                     now: float | None = None) -> dict:
        """``try_acquire`` as a ``TransactWriteItems`` item (taken with the run's record in
        one request): the lock when free, expired or held by ``execution_id`` already; on
        failure ``ALL_OLD`` names the holder."""
        now = time.time() if now is None else now
        return {"Put": {"TableName": self._table,
                        "Item": self._item(cron, execution_id, hold_s, now),
                        "ConditionExpression": "attribute_not_exists(lease_id) OR "
                                               "execution_id = :me OR expires_at < :now",
                        "ExpressionAttributeValues": to_attributes(
                            {":me": execution_id, ":now": _epoch(now)}),
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    def force(self, cron: str, execution_id: str, hold_s: float = 24 * 3600 + 60) -> None:
        """Take the lock whoever holds it (``trigger --force``)."""
        call_retrying(self._ddb.put_item, TableName=self._table,
                      Item=self._item(cron, execution_id, hold_s, time.time()))

    def get(self, cron: str) -> LockState | None:
        """The lock as stored (holder, expiry, the run waiting for it), or None when free."""
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"lease_id": {"S": lock_id(cron)}}, ConsistentRead=True)
        item = response.get("Item")
        if not item:
            return None
        data = from_attributes(item)
        return LockState(holder=str(data["execution_id"]),
                         expires_at=float(data.get("expires_at", 0)),
                         waiting=str(data["waiting"]) if data.get("waiting") else None)

    def wait(self, cron: str, holder: str, execution_id: str,
             expected_waiting: str | None = None) -> tuple[bool, LockState | None]:
        """``concurrency: queue``: note ``execution_id`` as the one run waiting for ``holder``
        (conditional: ``holder`` still holds the lock, and nobody else waits, or
        ``expected_waiting`` does: a stale mark taken over). ``(True, None)``, else
        ``(False, the lock as it is)``."""
        condition = ("execution_id = :holder AND (attribute_not_exists(waiting) OR "
                     "waiting = :me")
        values = {":holder": {"S": holder}, ":me": {"S": execution_id}}
        if expected_waiting is not None:
            condition += " OR waiting = :old"
            values[":old"] = {"S": expected_waiting}
        try:
            call_retrying(self._ddb.update_item, TableName=self._table,
                          Key={"lease_id": {"S": lock_id(cron)}},
                          UpdateExpression="SET waiting = :me",
                          ConditionExpression=condition + ")",
                          ExpressionAttributeValues=values)
        except Conflict:
            return False, self.get(cron)
        return True, None

    def release(self, cron: str, execution_id: str) -> bool:
        """Delete the lock only if ``execution_id`` holds it; True when deleted."""
        return self.release_to_waiting(cron, execution_id)[0]

    def release_to_waiting(self, cron: str, execution_id: str,
                           hand_over_s: float = HAND_OVER_S) -> tuple[bool, str | None]:
        """Release the lock if ``execution_id`` holds it; when a run waits for it
        (``concurrency: queue``), the lock is handed to that run for ``hand_over_s`` (it
        renews it when it starts; a crash before that leaves the watchdog to start it).
        ``(released, the run it was handed to or None)``."""
        try:
            answer = call_retrying(self._ddb.delete_item, TableName=self._table,
                                   Key={"lease_id": {"S": lock_id(cron)}},
                                   ConditionExpression="execution_id = :me",
                                   ExpressionAttributeValues={":me": {"S": execution_id}},
                                   ReturnValues="ALL_OLD")
        except Conflict:
            return False, None
        waiting = (answer.get("Attributes") or {}).get("waiting", {}).get("S")
        if not waiting or waiting == execution_id:
            return True, None
        now = time.time()
        try:
            call_retrying(self._ddb.put_item, TableName=self._table,
                          Item=self._item(cron, waiting, hand_over_s, now),
                          ConditionExpression="attribute_not_exists(lease_id)")
        except Conflict:
            return True, None      # taken meanwhile: the waiting run queues behind it
        return True, waiting


def started_pending(clients: AwsClients, table: str) -> list[dict]:
    """Every PENDING execution that has a task (a ``Scan``): what the embedded runner starts."""
    found = []
    for page in clients.client("dynamodb").get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="#s = :pending AND attribute_exists(task_arn)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":pending": {"S": PENDING}}):
        found += [from_attributes(item) for item in page.get("Items", [])]
    return found
