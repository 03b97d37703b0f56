from reconciler.adapters.aws import AwsClients
from reconciler.adapters.tables import ensure_tables


def test_ensure_tables_is_idempotent(settings):
    clients = AwsClients(settings)
    first = ensure_tables(clients, settings)
    assert set(first.values()) == {"created"}
    second = ensure_tables(clients, settings)
    assert set(second.values()) == {"found"}
    ddb = clients.client("dynamodb")
    ttl = ddb.describe_time_to_live(TableName=settings.executions_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveStatus"] == "ENABLED"
