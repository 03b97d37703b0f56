"""The in-process AWS emulator (moto in server mode) for ``cronctl serve --embedded``."""

from __future__ import annotations

import logging
import os
import threading

from reconciler.logs import get_logger

log = get_logger("cronctl.embedded")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_SESSION_TOKEN": "embedded",
}


_atomic_lock = threading.RLock()
_atomic_patched = False


def atomic_dynamodb() -> None:
    """Make the in-process emulator handle one DynamoDB request at a time (idempotent).

    moto checks a write's condition and then writes with nothing holding other requests off in
    between, so two concurrent conditional writes can both succeed; on AWS a conditional write
    is atomic, and every claim, overlap lock and compare-and-swap of cronctl relies on that."""
    global _atomic_patched
    with _atomic_lock:
        if _atomic_patched:
            return
        from moto.dynamodb.responses import DynamoHandler

        handle = DynamoHandler.call_action

        def call_action(self):
            with _atomic_lock:
                return handle(self)

        DynamoHandler.call_action = call_action
        _atomic_patched = True


_transactions_patched = False


def cheap_transactions() -> None:
    """Make the emulator's ``TransactWriteItems`` cost what the items it touches cost
    (idempotent; with ``atomic_dynamodb``, which keeps other requests off meanwhile).

    moto deep-copies every table a transaction touches, to roll back a cancelled one: a
    dispatch (the run's record and its overlap lock, one transaction) then costs time in
    proportion to the executions table's size, which only grows (moto never expires items),
    and concurrent requests can find a table changing under the copy (HTTP 500). Here every
    condition is checked first against the items as they are, nothing is written unless all
    hold (``TransactionCanceledException`` with a reason per item, ``ALL_OLD`` items
    included, as before), and only the touched items are kept to undo a write that fails."""
    global _transactions_patched
    with _atomic_lock:
        if _transactions_patched:
            return
        import copy

        from moto.dynamodb.comparisons import get_filter_expression
        from moto.dynamodb.exceptions import (
            ConditionalCheckFailed,
            MultipleTransactionsException,
            TooManyTransactionsException,
            TransactionCanceledException,
            TransactWriteSingleOpException,
        )
        from moto.dynamodb.models import DynamoDBBackend

        def transact_write_items(self, transact_items):
            if len(transact_items) > 100:
                raise TooManyTransactionsException()
            ops, seen, errors = [], set(), []
            for entry in transact_items:
                if len(entry) > 1:
                    raise TransactWriteSingleOpException
                op_type, op = next(iter(entry.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                table_name = op["TableName"]
                if op_type == "Put":
                    table = self.get_table(table_name)
                    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
                    if table.range_key_attr is not None:
                        key[table.range_key_attr] = op["Item"][table.range_key_attr]
                else:
                    key = op["Key"]
                unique = (str(table_name), str(dict(sorted(key.items()))))
                if unique in seen:
                    raise MultipleTransactionsException()
                seen.add(unique)
                ops.append((op_type, op, table_name, key))
                current = self.get_item(table_name, key)
                condition = op.get("ConditionExpression")
                if condition is not None and not get_filter_expression(
                        condition, op.get("ExpressionAttributeNames"),
                        op.get("ExpressionAttributeValues")).expr(current):
                    old = current.to_json()["Attributes"] if current is not None and \
                        op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
                    errors.append(("ConditionalCheckFailed",
                                   ConditionalCheckFailed().message, old))
                else:
                    errors.append((None, None, None))
            if any(code is not None for code, _, _ in errors):
                raise TransactionCanceledException(errors)
            undo = [(table_name, key, copy.deepcopy(self.get_item(table_name, key)))
                    for _op_type, _op, table_name, key in ops]
            try:
                for op_type, op, table_name, key in ops:
                    names = op.get("ExpressionAttributeNames")
                    values = op.get("ExpressionAttributeValues")
                    if op_type == "Put":
                        self.put_item(table_name, op["Item"])
                    elif op_type == "Delete":
                        self.delete_item(table_name, key)
                    elif op_type == "Update":
                        self.update_item(table_name, key,
                                         update_expression=op["UpdateExpression"],
                                         expression_attribute_names=names,
                                         expression_attribute_values=values)
            except Exception:
                for table_name, key, before in undo:
                    if before is None:
                        self.delete_item(table_name, key)
                    else:
                        self.put_item(table_name, before.to_json()["Attributes"])
                raise

        DynamoDBBackend.transact_write_items = transact_write_items
        _transactions_patched = True


class EmbeddedAws:
    """A moto server on a loopback port. Its URL becomes ``Settings.endpoint_url``.

    Credentials are fake and set only in this process, so nothing can reach real AWS.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server = None
        self.url: str | None = None

    def start(self) -> str:
        """Start once (later calls return the running emulator's URL)."""
        if self.url:
            return self.url
        try:
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "embedded mode needs moto[server]: pip install 'cronctl[embedded]'") from exc
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per emulator call
        atomic_dynamodb()
        cheap_transactions()
        for key, value in FAKE_CREDENTIALS.items():
            os.environ[key] = value
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        log.info("embedded AWS emulator started", url=self.url)
        return self.url

    def stop(self, timeout: float = 5.0) -> bool:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.url = None
        return True
