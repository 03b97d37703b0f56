from reconciler.adapters.aws import AwsClients, call
from reconciler.errors import NotFound


def test_clients_count_calls_and_translate_errors(settings):
    clients = AwsClients(settings)
    ddb = clients.client("dynamodb")
    assert call(ddb.list_tables)["TableNames"] == []
    try:
        call(ddb.describe_table, TableName="missing")
    except NotFound as exc:
        assert exc.code == "ResourceNotFoundException"
    else:
        raise AssertionError("describe_table on a missing table must raise NotFound")
    assert clients.counter.snapshot() == {"dynamodb.ListTables": 1, "dynamodb.DescribeTable": 1}
