"""The registry table (``<ns>-registry``): one item per cron, read in one paginated Scan.

Writes go through a fence (``reconciler.adapters.lease``): with a lease, each put or delete is a
``TransactWriteItems`` whose first item is a ``ConditionCheck`` on the leader lease (owner and
generation), so DynamoDB refuses the write of a replica that lost the lease (``LeaseLost``).

The namespace's recorded settings live in the same table, in the item ``#namespace`` (a name
no cron can have: cron names are ``[a-z0-9-]``), with a ``version`` that grows at every change;
the scan of the crons leaves it out. Item ``#applied`` records the last converged pass
(``core/plan/pass_check.py``: commit, settings version, when, lease generation), written and
cleared through the fence like every registry write. Item ``#sweep`` holds the drift sweep's
rotation (``core/plan/sweep.SweepCursor``), read with ``#applied`` and written (fenced) after
a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from reconciler.adapters.aws import AwsClients, call, call_retrying, retrying
from reconciler.adapters.lease import Fence, LeaseLost
from reconciler.core.plan.pass_check import AppliedRecord
from reconciler.core.plan.sweep import Rotation, SweepCursor
from reconciler.core.registry_model import RegistryItem
from reconciler.errors import Conflict, PermanentError, TransientError
from reconciler.settings import Settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_wire(item: dict) -> dict:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def from_wire(item: dict) -> RegistryItem:
    """A DynamoDB item (wire format) as a RegistryItem."""
    data = {k: _deserializer.deserialize(v) for k, v in item.items()}
    try:
        return RegistryItem.from_item(
            {k: int(v) if isinstance(v, Decimal) else v for k, v in data.items()})
    except ValueError as exc:
        raise PermanentError(str(exc)) from None


NAMESPACE_ITEM = "#namespace"
APPLIED_ITEM = "#applied"
SWEEP_ITEM = "#sweep"


@dataclass(frozen=True)
class NamespaceRecord:
    """The namespace's recorded settings (``NamespaceSettings.to_record``) and their version."""

    version: int
    settings: dict
    updated_at: str | None = None


def _plain(value):
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set)):
        return [_plain(v) for v in value]
    return value


def namespace_from_wire(item: dict) -> NamespaceRecord:
    data = _plain({k: _deserializer.deserialize(v) for k, v in item.items()})
    return NamespaceRecord(version=int(data.get("version", 0)),
                           settings=dict(data.get("settings") or {}),
                           updated_at=data.get("updated_at"))


def scan(clients: AwsClients, settings: Settings) -> dict[str, RegistryItem]:
    """Every cron's registry item, by cron name (the namespace item left out)."""
    return scan_with_namespace(clients, settings)[0]


def scan_with_namespace(clients: AwsClients, settings: Settings
                        ) -> tuple[dict[str, RegistryItem], NamespaceRecord | None]:
    """Every cron's registry item, and the namespace's recorded settings, in one Scan."""
    ddb = clients.client("dynamodb")
    items: dict[str, RegistryItem] = {}
    record = None
    kwargs = {"TableName": settings.registry_table, "ConsistentRead": True}
    while True:
        page = call_retrying(ddb.scan, **kwargs)
        for raw in page.get("Items", []):
            if raw.get("name", {}).get("S", "").startswith("#"):
                if raw["name"]["S"] == NAMESPACE_ITEM:
                    record = namespace_from_wire(raw)
                continue
            item = from_wire(raw)
            items[item.name] = item
        if not page.get("LastEvaluatedKey"):
            return items, record
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_namespace(clients: AwsClients, settings: Settings) -> NamespaceRecord | None:
    """The namespace's recorded settings (one GetItem); None when none are recorded.
    A missing registry table raises ``NotFound``."""
    response = call_retrying(clients.client("dynamodb").get_item,
                             TableName=settings.registry_table,
                             Key={"name": {"S": NAMESPACE_ITEM}}, ConsistentRead=True)
    item = response.get("Item")
    return namespace_from_wire(item) if item else None


def read_applied(clients: AwsClients, settings: Settings
                 ) -> tuple[AppliedRecord | None, NamespaceRecord | None]:
    """The record of the last converged pass and the namespace's recorded settings, in one
    request (a consistent BatchGetItem). A missing registry table raises ``NotFound``."""
    applied, namespace, _cursor = read_pass_records(clients, settings)
    return applied, namespace


def read_pass_records(clients: AwsClients, settings: Settings
                      ) -> tuple[AppliedRecord | None, NamespaceRecord | None, SweepCursor | None]:
    """``read_applied`` and the sweep's rotation (``#sweep``), in the same one request."""
    ddb = clients.client("dynamodb")
    keys = [{"name": {"S": NAMESPACE_ITEM}}, {"name": {"S": APPLIED_ITEM}},
            {"name": {"S": SWEEP_ITEM}}]
    found: dict[str, dict] = {}
    while keys:
        response = call_retrying(ddb.batch_get_item, RequestItems={
            settings.registry_table: {"Keys": keys, "ConsistentRead": True}})
        for raw in response.get("Responses", {}).get(settings.registry_table, []):
            found[raw["name"]["S"]] = raw
        keys = response.get("UnprocessedKeys", {}).get(settings.registry_table,
                                                       {}).get("Keys", [])
    namespace = found.get(NAMESPACE_ITEM)
    return (_applied_from_wire(found[APPLIED_ITEM]) if APPLIED_ITEM in found else None,
            namespace_from_wire(namespace) if namespace else None,
            _cursor_from_wire(found[SWEEP_ITEM]) if SWEEP_ITEM in found else None)


def read_sweep(clients: AwsClients, settings: Settings) -> SweepCursor | None:
    """The sweep's rotation (one GetItem); None when none is recorded."""
    response = call_retrying(clients.client("dynamodb").get_item,
                             TableName=settings.registry_table,
                             Key={"name": {"S": SWEEP_ITEM}}, ConsistentRead=True)
    item = response.get("Item")
    return _cursor_from_wire(item) if item else None


def _moment(text) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _cursor_from_wire(item: dict) -> SweepCursor | None:
    data = _plain({k: _deserializer.deserialize(v) for k, v in item.items()})
    try:
        return SweepCursor({kind: Rotation(str(value.get("after") or ""),
                                           _moment(value.get("started")),
                                           _moment(value.get("previous")))
                            for kind, value in (data.get("rotations") or {}).items()})
    except (AttributeError, TypeError, ValueError):
        return None  # unreadable: the rotation starts again


def write_sweep(clients: AwsClients, settings: Settings, cursor: SweepCursor, *,
                fence: Fence) -> None:
    """Record the sweep's rotation (replacing the previous one), through ``fence``."""
    def text(moment: datetime | None) -> str | None:
        return moment.isoformat(timespec="seconds") if moment else None

    item = {"name": SWEEP_ITEM, "kind": "sweep", "rotations": {
        kind: {"after": rotation.after, "started": text(rotation.started),
               "previous": text(rotation.previous)}
        for kind, rotation in sorted(cursor.rotations.items())}}
    _write(clients, fence, SWEEP_ITEM, {"Put": {"TableName": settings.registry_table,
                                                "Item": _to_wire(item)}})


def _applied_from_wire(item: dict) -> AppliedRecord | None:
    data = _plain({k: _deserializer.deserialize(v) for k, v in item.items()})
    try:
        return AppliedRecord(
            commit=str(data["commit"]),
            settings_version=None if data.get("settings_version") is None
            else int(data["settings_version"]),
            checked_at=datetime.fromisoformat(data["checked_at"]),
            generation=None if data.get("generation") is None else int(data["generation"]),
            valid_until=datetime.fromisoformat(data["valid_until"])
            if data.get("valid_until") else None)
    except (KeyError, TypeError, ValueError):
        return None  # unreadable: as if none was recorded (the next pass is a full one)


def write_applied(clients: AwsClients, settings: Settings, record: AppliedRecord, *,
                  fence: Fence) -> None:
    """Record the last converged pass (replacing the previous record), through ``fence``."""
    item = {"name": APPLIED_ITEM, "kind": "applied", "commit": record.commit,
            "settings_version": record.settings_version,
            "checked_at": record.checked_at.isoformat(timespec="seconds"),
            "generation": record.generation,
            "valid_until": record.valid_until.isoformat(timespec="seconds")
            if record.valid_until else None}
    _write(clients, fence, APPLIED_ITEM, {"Put": {"TableName": settings.registry_table,
                                                  "Item": _to_wire(item)}})


def clear_applied(clients: AwsClients, settings: Settings, *, fence: Fence) -> None:
    """Forget the last converged pass (the next pass is a full one), through ``fence``."""
    delete(clients, settings, APPLIED_ITEM, fence=fence)


def write_namespace(clients: AwsClients, settings: Settings, record: dict,
                    expected_version: int) -> NamespaceRecord:
    """Record the namespace's settings as version ``expected_version + 1``, only if the
    recorded version is still ``expected_version`` (0: none recorded); else ``Conflict``."""
    version = expected_version + 1
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    item = {"name": NAMESPACE_ITEM, "kind": "namespace-settings", "version": version,
            "settings": record, "updated_at": stamp}
    condition = ("attribute_not_exists(#n)" if expected_version == 0 else "version = :v")
    kwargs = {"TableName": settings.registry_table, "Item": _to_wire(item),
              "ConditionExpression": condition}
    if expected_version == 0:
        kwargs["ExpressionAttributeNames"] = {"#n": "name"}
    else:
        kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
    call_retrying(clients.client("dynamodb").put_item, **kwargs)
    return NamespaceRecord(version=version, settings=record, updated_at=stamp)


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
