"""The executions table and the per-cron overlap locks in the leases table.

Every write that decides something is conditional, so several dispatchers and consumers
(replicas, duplicate deliveries) can race safely:
- ``create`` is ``attribute_not_exists(execution_id)``: one record per execution id;
- ``apply`` is a compare-and-swap on ``version`` (the record read before applying the event,
  whose version is below the event's): a stale event never overwrites a newer state, and a
  run becomes terminal exactly once;
- a lock ``lock#<cron>`` is taken only when absent or held by ``expected_holder``, and
  released only by its holder.
"""

from __future__ import annotations

from datetime import UTC, datetime

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.tables import EXECUTIONS_BY_CRON
from reconciler.core.executions import Execution
from reconciler.errors import Conflict
from reconciler.settings import Settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_attributes(data: dict) -> dict:
    return {k: _serializer.serialize(v) for k, v in data.items() if v is not None}


def from_attributes(item: dict) -> dict:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class ExecutionStore:
    """Reads and conditional writes of ``<ns>-executions``."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.executions_table

    def create(self, execution: Execution) -> bool:
        """Store a new record; False when one with this id exists already (a duplicate)."""
        try:
            call_retrying(self._ddb.put_item, TableName=self._table,
                          Item=to_attributes(execution.to_dict()),
                          ConditionExpression="attribute_not_exists(execution_id)")
        except Conflict:
            return False
        return True

    def get(self, execution_id: str) -> Execution | None:
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"execution_id": {"S": execution_id}}, ConsistentRead=True)
        item = response.get("Item")
        return Execution.from_dict(from_attributes(item)) if item else None

    def apply(self, execution: Execution, read_version: int | None) -> bool:
        """Write an event-derived record if the stored version is still ``read_version``.

        Compare-and-swap on ``version``: stronger than "stored version < new version" (which
        ``apply_event`` already ensured against what was read), because it also makes the
        transition to a terminal state happen exactly once when replicas race on two events
        of one task. Returns False when someone else wrote first (re-read and re-apply).
        """
        data = execution.to_dict()
        fields = [k for k in data if k != "execution_id"]
        names = {f"#{k}": k for k in fields}
        values = to_attributes({f":{k}": data[k] for k in fields})
        if read_version is None:
            condition = "attribute_exists(execution_id) AND attribute_not_exists(#version)"
        else:
            condition = "#version = :read_version"
            values[":read_version"] = {"N": str(read_version)}
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution.execution_id}},
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
                ConditionExpression=condition,
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except Conflict:
            return False
        return True

    def set_task(self, execution_id: str, task_arn: str) -> None:
        """Record the task ARN that RunTask returned (events may have recorded it first)."""
        call_retrying(self._ddb.update_item, TableName=self._table,
                      Key={"execution_id": {"S": execution_id}},
                      UpdateExpression="SET task_arn = :arn",
                      ExpressionAttributeValues={":arn": {"S": task_arn}})

    def finish_unstarted(self, execution_id: str, status: str, reason: str) -> bool:
        """Mark a record that no task event has touched (SKIPPED / FAILED_TO_START)."""
        try:
            call_retrying(
                self._ddb.update_item, TableName=self._table,
                Key={"execution_id": {"S": execution_id}},
                UpdateExpression="SET #status = :status, reason = :reason, stopped_at = :now",
                ConditionExpression="attribute_exists(execution_id) AND "
                                    "attribute_not_exists(version)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_attributes({
                    ":status": status, ":reason": reason, ":now": _now_iso()}))
        except Conflict:
            return False
        return True

    def discard_unstarted(self, execution_id: str) -> None:
        """Delete a PENDING record that never got a task (so a retry can dispatch again)."""
        try:
            call_retrying(self._ddb.delete_item, TableName=self._table,
                          Key={"execution_id": {"S": execution_id}},
                          ConditionExpression="#status = :pending AND "
                                              "attribute_not_exists(task_arn)",
                          ExpressionAttributeNames={"#status": "status"},
                          ExpressionAttributeValues={":pending": {"S": "PENDING"}})
        except Conflict:
            pass

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


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def lock_id(cron: str) -> str:
    return f"lock#{cron}"


class OverlapLocks:
    """One lock item per cron in ``<ns>-leases``, naming the execution that holds it."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.leases_table

    def _item(self, cron: str, execution_id: str) -> dict:
        return to_attributes({"lease_id": lock_id(cron), "execution_id": execution_id,
                              "acquired_at": _now_iso()})

    def holder(self, cron: str) -> str | None:
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"lease_id": {"S": lock_id(cron)}}, ConsistentRead=True)
        item = response.get("Item")
        return item["execution_id"]["S"] if item else None

    def try_acquire(self, cron: str, execution_id: str,
                    expected_holder: str | None = None) -> tuple[bool, str | None]:
        """Take the lock if it is free (or held by ``expected_holder``, or by us already).

        Returns ``(True, None)`` on success, else ``(False, current_holder)``.
        """
        if expected_holder is None:
            condition = "attribute_not_exists(lease_id) OR execution_id = :me"
            values = {":me": {"S": execution_id}}
        else:
            condition = "execution_id = :old OR execution_id = :me"
            values = {":old": {"S": expected_holder}, ":me": {"S": execution_id}}
        try:
            call_retrying(self._ddb.put_item, TableName=self._table,
                          Item=self._item(cron, execution_id), ConditionExpression=condition,
                          ExpressionAttributeValues=values,
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Conflict:
            return False, self.holder(cron)
        return True, None

    def force(self, cron: str, execution_id: str) -> None:
        """Take the lock whoever holds it (``trigger --force``)."""
        call_retrying(self._ddb.put_item, TableName=self._table,
                      Item=self._item(cron, execution_id))

    def release(self, cron: str, execution_id: str) -> bool:
        """Delete the lock only if ``execution_id`` holds it; True when deleted."""
        try:
            call_retrying(self._ddb.delete_item, TableName=self._table,
                          Key={"lease_id": {"S": lock_id(cron)}},
                          ConditionExpression="execution_id = :me",
                          ExpressionAttributeValues={":me": {"S": execution_id}})
        except Conflict:
            return False
        return True
