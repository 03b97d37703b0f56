"""The registry table (``<ns>-registry``): one item per cron, read in one paginated Scan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.registry_model import RegistryItem
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


def put(clients: AwsClients, settings: Settings, item: RegistryItem) -> RegistryItem:
    """Write (create or replace) one item, stamping ``updated_at``; returns what was written."""
    stamped = replace(item, updated_at=datetime.now(UTC).isoformat(timespec="seconds"))
    data = stamped.to_item()
    call_retrying(clients.client("dynamodb").put_item, TableName=settings.registry_table,
                  Item=_to_wire(data))
    return stamped


def delete(clients: AwsClients, settings: Settings, name: str) -> None:
    call_retrying(clients.client("dynamodb").delete_item, TableName=settings.registry_table,
                  Key={"name": {"S": name}})
