"""DynamoDB table layouts of a namespace, and their idempotent creation.

- registry   ``<ns>-registry``:   PK ``name`` (S). One item per cron (see core.registry_model).
- executions ``<ns>-executions``: PK ``execution_id`` (S); GSI ``by-cron`` (PK ``cron`` S,
  SK ``scheduled_at`` S, projection ALL); sparse GSI ``unfinished`` (PK ``unfinished`` S,
  present only on open executions; SK ``scheduled_at``) for the watchdog; TTL attribute
  ``expires_at`` (epoch seconds).
- leases     ``<ns>-leases``:     PK ``lease_id`` (S). The reconcile leader lease
  (``leader``) and one overlap lock per cron (``lock#<cron>``, holding ``execution_id``
  and ``expires_at``).

A namespace bootstrapped before an index existed gets it added (``UpdateTable``).
"""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call, call_retrying
from reconciler.errors import Conflict
from reconciler.settings import Settings

EXECUTIONS_BY_CRON = "by-cron"
# Sparse index of the open (non-terminal) executions: only they carry the key attribute.
EXECUTIONS_UNFINISHED = "unfinished"
UNFINISHED = "unfinished"
TTL_ATTRIBUTE = "expires_at"


UNFINISHED_INDEX = {
    "IndexName": EXECUTIONS_UNFINISHED,
    "KeySchema": [
        {"AttributeName": UNFINISHED, "KeyType": "HASH"},
        {"AttributeName": "scheduled_at", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}


def table_definitions(settings: Settings) -> list[dict]:
    """CreateTable arguments for every table of the namespace (on-demand billing)."""
    return [
        {
            "TableName": settings.registry_table,
            "AttributeDefinitions": [{"AttributeName": "name", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "name", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": settings.executions_table,
            "AttributeDefinitions": [
                {"AttributeName": "execution_id", "AttributeType": "S"},
                {"AttributeName": "cron", "AttributeType": "S"},
                {"AttributeName": "scheduled_at", "AttributeType": "S"},
                {"AttributeName": UNFINISHED, "AttributeType": "S"},
            ],
            "KeySchema": [{"AttributeName": "execution_id", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": EXECUTIONS_BY_CRON,
                "KeySchema": [
                    {"AttributeName": "cron", "KeyType": "HASH"},
                    {"AttributeName": "scheduled_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }, UNFINISHED_INDEX],
            "BillingMode": "PAY_PER_REQUEST",
        },
        {
            "TableName": settings.leases_table,
            "AttributeDefinitions": [{"AttributeName": "lease_id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "lease_id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ]


def ensure_tables(clients: AwsClients, settings: Settings) -> dict[str, str]:
    """Create the namespace's tables where missing; returns ``{table: "created"|"found"}``."""
    ddb = clients.client("dynamodb")
    existing = set()
    for page in ddb.get_paginator("list_tables").paginate():
        existing.update(page["TableNames"])
    result = {}
    tags = [{"Key": "managed-by", "Value": "cronctl"},
            {"Key": "cronctl:namespace", "Value": settings.namespace}]
    for definition in table_definitions(settings):
        name = definition["TableName"]
        if name in existing:
            result[name] = "found"
            continue
        try:
            call_retrying(ddb.create_table, Tags=tags, **definition)
            result[name] = "created"
        except Conflict:
            result[name] = "found"
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    _ensure_unfinished_index(ddb, settings.executions_table, result)
    ttl = call_retrying(ddb.describe_time_to_live, TableName=settings.executions_table)
    if ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        call_retrying(ddb.update_time_to_live, TableName=settings.executions_table,
                      TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE})
    return result


def _ensure_unfinished_index(ddb, table: str, result: dict[str, str]) -> None:
    """Add the watchdog's sparse index to an executions table created without it."""
    description = call_retrying(ddb.describe_table, TableName=table)["Table"]
    names = {index["IndexName"] for index in description.get("GlobalSecondaryIndexes", [])}
    if EXECUTIONS_UNFINISHED in names:
        return
    call_retrying(ddb.update_table, TableName=table,
                  AttributeDefinitions=[{"AttributeName": UNFINISHED, "AttributeType": "S"},
                                        {"AttributeName": "scheduled_at", "AttributeType": "S"}],
                  GlobalSecondaryIndexUpdates=[{"Create": UNFINISHED_INDEX}])
    result[table] = "updated"


def check_readable(clients: AwsClients, table: str) -> None:
    """``DescribeTable`` once, not retried: raises when the table cannot be read (readiness)."""
    call(clients.client("dynamodb").describe_table, TableName=table)
