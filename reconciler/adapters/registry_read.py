"""Read access to the registry table for the execution plane and the CLI; the control plane
(``reconciler.adapters.registry``) writes it."""

from __future__ import annotations

from contextlib import contextmanager

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import NotFound
from reconciler.settings import Settings


class RegistryReader:
    """Get one cron's registry item, or all of them (sorted by name).

    A missing registry table raises ``NotFound`` saying which namespace is not bootstrapped.
    """

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients, self._settings = clients, settings

    def get(self, name: str) -> RegistryItem | None:
        if name.startswith("#"):  # the namespace's own item, never a cron
            return None
        with self._table_must_exist():
            response = call_retrying(self._clients.client("dynamodb").get_item,
                                     TableName=self._settings.registry_table,
                                     Key={"name": {"S": name}}, ConsistentRead=True)
        item = response.get("Item")
        return registry.from_wire(item) if item else None

    def all(self) -> list[RegistryItem]:
        with self._table_must_exist():
            items = registry.scan(self._clients, self._settings)
        return [items[name] for name in sorted(items)]

    @contextmanager
    def _table_must_exist(self):
        try:
            yield
        except NotFound as exc:
            table, namespace = self._settings.registry_table, self._settings.namespace
            raise NotFound(f"registry table {table} not found: namespace {namespace!r} is not "
                           f"bootstrapped here (run `cronctl bootstrap --namespace "
                           f"{namespace}`)", exc.code) from exc
