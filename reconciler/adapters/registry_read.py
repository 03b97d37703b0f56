"""Read access to the registry table for the execution plane and the CLI; the control plane
(``reconciler.adapters.registry``) writes it."""

from __future__ import annotations

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.registry_model import RegistryItem
from reconciler.settings import Settings


class RegistryReader:
    """Get one cron's registry item, or all of them (sorted by name)."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients, self._settings = clients, settings

    def get(self, name: str) -> RegistryItem | None:
        response = call_retrying(self._clients.client("dynamodb").get_item,
                                 TableName=self._settings.registry_table,
                                 Key={"name": {"S": name}}, ConsistentRead=True)
        item = response.get("Item")
        return registry.from_wire(item) if item else None

    def all(self) -> list[RegistryItem]:
        items = registry.scan(self._clients, self._settings)
        return [items[name] for name in sorted(items)]
