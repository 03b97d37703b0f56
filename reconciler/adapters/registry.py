"""The registry table (``<ns>-registry``): one item per cron, read in one paginated Scan.

Writes go through a fence (``reconciler.adapters.lease``): with a lease, each put or delete is a
``TransactWriteItems`` whose first item is a ``ConditionCheck`` on the leader lease (owner and
generation), so DynamoDB refuses the write of a replica that lost the lease (``LeaseLost``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from reconciler.adapters.aws import AwsClients, call, call_retrying, retrying
from reconciler.adapters.lease import Fence, LeaseLost
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import Conflict, TransientError
from reconciler.settings import Settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_wire(item: dict) -> dict:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def from_wire(item: dict) -> RegistryItem:
    """A DynamoDB item (wire format) as a RegistryItem."""
    data = {k: _deserializer.deserialize(v) for k, v in item.items()}
    return RegistryItem.from_item(
        {k: int(v) if isinstance(v, Decimal) else v for k, v in data.items()})


def scan(clients: AwsClients, settings: Settings) -> dict[str, RegistryItem]:
    """Every registry item, by cron name."""
    ddb = clients.client("dynamodb")
    items: dict[str, RegistryItem] = {}
    kwargs = {"TableName": settings.registry_table, "ConsistentRead": True}
    while True:
        page = call_retrying(ddb.scan, **kwargs)
        for raw in page.get("Items", []):
            item = from_wire(raw)
            items[item.name] = item
        if not page.get("LastEvaluatedKey"):
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def put(clients: AwsClients, settings: Settings, item: RegistryItem, *,
        fence: Fence) -> RegistryItem:
    """Write (create or replace) one item, stamping ``updated_at``, conditional on ``fence``;
    returns what was written."""
    stamped = replace(item, updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    _write(clients, fence, stamped.name, {"Put": {"TableName": settings.registry_table,
                                                  "Item": _to_wire(stamped.to_item())}})
    return stamped


def delete(clients: AwsClients, settings: Settings, name: str, *, fence: Fence) -> None:
    """Delete one item (absent is fine), conditional on ``fence``."""
    _write(clients, fence, name, {"Delete": {"TableName": settings.registry_table,
                                             "Key": {"name": {"S": name}}}})


def _write(clients: AwsClients, fence: Fence, name: str, operation: dict) -> None:
    ddb = clients.client("dynamodb")
    condition = fence.condition()
    if condition is None:
        if "Put" in operation:
            call_retrying(ddb.put_item, **operation["Put"])
        else:
            call_retrying(ddb.delete_item, **operation["Delete"])
        return

    def transact() -> None:
        try:
            call(ddb.transact_write_items,
                 TransactItems=[{"ConditionCheck": condition}, operation])
        except Conflict as exc:
            reasons = _cancellation_codes(exc)
            if reasons[:1] == ["ConditionalCheckFailed"]:
                raise LeaseLost(f"registry write of {name} refused by DynamoDB: {fence!r} no "
                                "longer holds the leader lease") from exc
            if "TransactionConflict" in reasons:  # a concurrent write (a lease renewal)
                raise TransientError(str(exc)) from exc
            raise

    retrying()(transact)()


def _cancellation_codes(exc: Conflict) -> list[str]:
    """The per-item codes of a cancelled transaction (``[]`` when not one)."""
    response = getattr(exc.__cause__, "response", None) or {}
    return [reason.get("Code", "") for reason in response.get("CancellationReasons") or []]
