"""Read-only access to the registry table (``<ns>-registry``); the control plane writes it."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.executions import from_attributes
from reconciler.core.registry_model import RegistryItem
from reconciler.settings import Settings


class RegistryReader:
    """Get one cron's registry item, or all of them (sorted by name)."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ddb = clients.client("dynamodb")
        self._table = settings.registry_table

    def get(self, name: str) -> RegistryItem | None:
        response = call_retrying(self._ddb.get_item, TableName=self._table,
                                 Key={"name": {"S": name}}, ConsistentRead=True)
        item = response.get("Item")
        return RegistryItem.from_item(from_attributes(item)) if item else None

    def all(self) -> list[RegistryItem]:
        items: list[RegistryItem] = []
        kwargs = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = call_retrying(self._ddb.scan, **kwargs)
            items += [RegistryItem.from_item(from_attributes(i)) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(items, key=lambda item: item.name)
