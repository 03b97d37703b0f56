"""Read access to the registry table for the execution plane and the CLI; the control plane
(``reconciler.adapters.registry``) writes it."""

from __future__ import annotations

import pickle
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

from reconciler.adapters import registry
from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import NotFound
from reconciler.settings import Settings


@dataclass(frozen=True)
class CachedItem:
    """A cron's registry item and the item as stored (wire format), which ``check`` compares
    with what is stored when it is used."""

    item: RegistryItem
    wire: dict


# Every attribute a RegistryItem is read from: ``check`` requires each to be as cached (or
# still absent), so an item that passes it reads as the same RegistryItem.
ITEM_ATTRIBUTES = tuple(f.name for f in fields(RegistryItem))


def check(table: str, cached: CachedItem) -> dict:
    """A ``TransactWriteItems`` ``ConditionCheck``: the cron's registry item is still exactly
    ``cached`` (every attribute that it is read from equal, those it lacked still absent).
    On failure, ``ALL_OLD`` returns the item as it is now (no item: the cron was deleted)."""
    names, values, terms = {}, {}, []
    attributes = list(dict.fromkeys([*cached.wire, *ITEM_ATTRIBUTES]))
    for i, name in enumerate(attributes):
        names[f"#r{i}"] = name
        if name in cached.wire:
            values[f":r{i}"] = cached.wire[name]
            terms.append(f"#r{i} = :r{i}")
        else:
            terms.append(f"attribute_not_exists(#r{i})")
    return {"ConditionCheck": {"TableName": table, "Key": {"name": cached.wire["name"]},
                               "ConditionExpression": " AND ".join(terms),
                               "ExpressionAttributeNames": names,
                               "ExpressionAttributeValues": values,
                               "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


def pack(wire: dict) -> bytes:
    """An item as stored, held compactly: a dispatch needs it once per run, and a daemon
    holds one per cron (10,000 items as botocore's nested dicts, parsed besides, took about
    90 MiB; packed, under 10)."""
    return zlib.compress(pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(packed: bytes) -> dict:
    return pickle.loads(zlib.decompress(packed))


class RegistryCache:
    """Registry items kept in memory for dispatch, each used only under ``check``: the write
    that creates a run (a transaction) commits only if the item is, at that moment, still
    exactly the cached one; when it is not, the transaction is refused and its answer carries
    the item as it is now (``refresh``). So a cached item never starts a run that the item as
    stored would not (paused, suspended, changed or deleted crons included), with no read per
    dispatch. Thread-safe; one entry per cron used (the registry's size at most), held packed
    (``pack``) and parsed when used: an item that cannot be parsed fails that cron's
    dispatches only, as a read would."""

    def __init__(self, reader: RegistryReader) -> None:
        self._reader = reader
        self._items: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[CachedItem | None, bool]:
        """``(item, cached)``: the cached item and True, else the stored one (one GetItem,
        then cached) and False; None when there is no such cron."""
        with self._lock:
            found = self._items.get(name)
        if found is not None:
            wire = unpack(found)
            return CachedItem(registry.from_wire(wire), wire), True
        return self.read(name), False

    def read(self, name: str) -> CachedItem | None:
        """The item as stored now (one GetItem), cached."""
        return self.refresh(name, self._reader.get_wire(name))

    def refresh(self, name: str, wire: dict | None) -> CachedItem | None:
        """Cache the item as stored now (``wire``: a refused check's ``ALL_OLD``, or a read;
        None: the cron is gone) and return it."""
        if wire is None:
            with self._lock:
                self._items.pop(name, None)
            return None
        entry = CachedItem(registry.from_wire(wire), wire)
        packed = pack(wire)
        with self._lock:
            self._items[name] = packed
        return entry

    def prime(self, wires: list[dict]) -> int:
        """Cache every item of ``wires`` (a scan of the registry: the daemon's start); the
        number cached. Safe at any time: every use of an entry is checked."""
        entries = {sys.intern(w["name"]["S"]): pack(w) for w in wires}
        with self._lock:
            self._items.update(entries)
        return len(entries)

    def forget(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)


class RegistryReader:
    """Get one cron's registry item, or all of them (sorted by name).

    A missing registry table raises ``NotFound`` saying which namespace is not bootstrapped.
    """

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._clients, self._settings = clients, settings

    def get(self, name: str) -> RegistryItem | None:
        item = self.get_wire(name)
        return registry.from_wire(item) if item else None

    def get_wire(self, name: str) -> dict | None:
        """The cron's item as stored (wire format), or None."""
        if name.startswith("#"):  # the namespace's own item, never a cron
            return None
        with self._table_must_exist():
            response = call_retrying(self._clients.client("dynamodb").get_item,
                                     TableName=self._settings.registry_table,
                                     Key={"name": {"S": name}}, ConsistentRead=True)
        return response.get("Item") or None

    def all_wire(self) -> Iterator[dict]:
        """Every cron's item as stored (wire format; the namespace's own items left out), from
        one paginated Scan, page by page: a caller that keeps less than the items holds one
        page at a time, not the whole table."""
        ddb = self._clients.client("dynamodb")
        kwargs = {"TableName": self._settings.registry_table, "ConsistentRead": True}
        with self._table_must_exist():
            while True:
                page = call_retrying(ddb.scan, **kwargs)
                yield from (raw for raw in page.get("Items", [])
                            if not raw.get("name", {}).get("S", "#").startswith("#"))
                if not page.get("LastEvaluatedKey"):
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def each(self) -> Iterator[RegistryItem]:
        """Every cron's item, unordered, one Scan page held at a time (see ``all_wire``)."""
        for raw in self.all_wire():
            yield registry.from_wire(raw)

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
