"""The fast paths of dispatch and the consumer: what each costs in AWS calls (counted by the
clients' botocore hooks, ``CallCounter``) and that a cached registry item never starts what
the item as stored would not.

- a new delivery: 3 calls (the record and the overlap lock in one TransactWriteItems, with
  the check of the cached registry item; RunTask; the task ARN's UpdateItem);
- a duplicate: 1 call (the refused transaction);
- a cron changed, suspended or deleted after its item was cached: the transaction is refused
  with the item as it is now, and the dispatch decides again with it;
- AWS's exact ``TransactionCanceledException`` shape (injected at the HTTP layer) is read the
  same way as the emulator's;
- the consumer: 1 UpdateItem per event (no read first); a run's first final event 3 calls
  (the final state with its outbox claimed, the lock's DeleteItem, the write that empties the
  outbox and notes the lock released); a redelivered event 1 call (the refused write), none
  for the consumer that stored it and settled the run.
"""

from __future__ import annotations

import json

from botocore.awsrequest import AWSResponse

from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.tables import UNFINISHED
from reconciler.core.executions import records as ex
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from tests.support.ecs_events import lifecycle, put_cron, send_events, tasks_started_by

AT = "2018-02-26T13:50:00Z"
LATER = ["2018-02-26T13:55:00Z", "2018-02-26T14:00:00Z", "2018-02-26T14:05:00Z"]


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, *_args) -> bytes:
        return self._data

    def stream(self, **_kwargs):
        yield self._data


class _Cancellations:
    """AWS's answers (``TransactionCanceledException`` bodies) to the next TransactWriteItems
    calls of ``clients``, one per call while any are queued; the real call after."""

    def __init__(self, clients) -> None:
        self.answers: list[bytes] = []
        self._ddb = clients.client("dynamodb")

    def _answer(self, request, **_kwargs):
        if not self.answers:
            return None
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.0"},
                           _Body(self.answers.pop(0)))

    def __enter__(self) -> _Cancellations:
        self._ddb.meta.events.register("before-send.dynamodb.TransactWriteItems", self._answer)
        return self

    def __exit__(self, *_exc) -> None:
        self._ddb.meta.events.unregister("before-send.dynamodb.TransactWriteItems",
                                         self._answer)


def _warm(clients, settings) -> Dispatcher:
    dispatcher = Dispatcher(clients, settings)
    dispatcher.warm()
    return dispatcher


def _finish(clients, settings, outcome) -> None:
    """The run ends (its lock released), as its final event would end it."""
    store = ExecutionStore(clients, settings)
    record = store.get(outcome.execution_id)
    OverlapLocks(clients, settings).release(record.cron, record.execution_id)


def test_a_new_delivery_costs_three_calls_and_a_duplicate_one(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", AT)
    assert outcome.status == "started"
    assert dict(calls) == {"dynamodb.TransactWriteItems": 1, "ecs.RunTask": 1,
                           "dynamodb.UpdateItem": 1}, calls
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    assert (record.status, record.task_arn, record.claimed_by) == \
        ("PENDING", outcome.task_arn, None)
    assert record.quiet is True        # no monitor, no alert state: nothing to ping or fold
    assert OverlapLocks(clients, settings).holder("hello") == outcome.execution_id
    with clients.counter.scope() as calls:
        again = dispatcher.dispatch("hello", AT)
    assert (again.status, again.task_arn) == ("duplicate", outcome.task_arn)
    assert dict(calls) == {"dynamodb.TransactWriteItems": 1}, calls
    assert len(tasks_started_by(clients, settings, outcome.execution_id)) == 1
    # The next fire, while the first run holds the lock: SKIPPED (forbid), nothing started.
    skipped = dispatcher.dispatch("hello", LATER[0])
    assert skipped.status == "skipped" and outcome.execution_id in skipped.reason
    assert tasks_started_by(clients, settings, skipped.execution_id) == []
    stored = ExecutionStore(clients, settings).get(skipped.execution_id)
    assert (stored.status, stored.lock_released) == ("SKIPPED", True)
    assert OverlapLocks(clients, settings).holder("hello") == outcome.execution_id


def test_a_cached_item_never_starts_a_suspended_changed_or_deleted_cron(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)
    first = dispatcher.dispatch("hello", AT)
    assert first.status == "started"
    _finish(clients, settings, first)

    # Suspended after the item was cached: the cached item says "not suspended", but the
    # transaction's check of it is refused; the item as stored now decides.
    put_cron(clients, settings, "hello", td, suspend=True)
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", LATER[0])
    assert outcome.status == "suspended"
    assert calls["dynamodb.TransactWriteItems"] == 1 and calls.get("ecs.RunTask", 0) == 0
    assert ExecutionStore(clients, settings).get(
        ex.execution_id("hello", LATER[0])) is None

    # Resumed (the cache says suspended: a run not started on a cached item's word is
    # decided by the item as stored, one read).
    put_cron(clients, settings, "hello", td, timeout_s=600)
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", LATER[1])
    assert outcome.status == "started", outcome
    assert calls["dynamodb.GetItem"] == 1 and calls["ecs.RunTask"] == 1
    lock = OverlapLocks(clients, settings).get("hello")
    assert lock.holder == outcome.execution_id
    _finish(clients, settings, outcome)

    # Deleted: unknown, nothing recorded.
    clients.client("dynamodb").delete_item(TableName=settings.registry_table,
                                           Key={"name": {"S": "hello"}})
    outcome = dispatcher.dispatch("hello", LATER[2])
    assert outcome.status == "unknown_cron"
    assert ExecutionStore(clients, settings).get(
        ex.execution_id("hello", LATER[2])) is None


def test_an_unreadable_registry_item_fails_only_its_own_crons_dispatches(plane, settings):
    """The cache holds items as stored and reads each when used: one item whose spec cannot
    be read (written by hand, or by a newer version) does not keep the others from being
    cached at start, and its own deliveries are answered 503 (delivered again) with nothing
    recorded."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    put_cron(clients, settings, "broken", td)
    clients.client("dynamodb").update_item(
        TableName=settings.registry_table, Key={"name": {"S": "broken"}},
        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "spec"},
        ExpressionAttributeValues={":s": {"S": "{not json"}})
    dispatcher = _warm(clients, settings)
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", AT)
    assert outcome.status == "started"
    assert dict(calls) == {"dynamodb.TransactWriteItems": 1, "ecs.RunTask": 1,
                           "dynamodb.UpdateItem": 1}, calls     # from the cache: no read
    message = {"MessageId": "m-1", "Message": json.dumps({"cron": "broken",
                                                          "scheduled_at": AT})}
    status, body = dispatcher.handle_sns_message(message)
    assert status == 503 and "no readable spec" in json.loads(body)["error"], body
    assert ExecutionStore(clients, settings).get(ex.execution_id("broken", AT)) is None


def test_a_changed_item_is_refreshed_from_the_refused_transaction(plane, settings):
    """The task definition changed since the item was cached: the new one is started, for
    one refused transaction more (its answer carries the item: no read)."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)
    first = dispatcher.dispatch("hello", AT)
    _finish(clients, settings, first)
    put_cron(clients, settings, "hello", td, timeout_s=900)   # any change of the item
    with clients.counter.scope() as calls:
        outcome = dispatcher.dispatch("hello", LATER[0])
    assert outcome.status == "started"
    assert dict(calls) == {"dynamodb.TransactWriteItems": 2, "ecs.RunTask": 1,
                           "dynamodb.UpdateItem": 1}, calls
    # The lock lasts the new timeout plus the grace period.
    lock = OverlapLocks(clients, settings).get("hello")
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    created = ex.parse_time(record.created_at).timestamp()
    assert abs(lock.expires_at - (created + 900 + settings.grace_s)) < 5


def _aws_cancellation(reasons: list[dict]) -> bytes:
    codes = ", ".join(r["Code"] for r in reasons)
    return json.dumps({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "Message": f"Transaction cancelled, please refer cancellation reasons for specific "
                   f"reasons [{codes}]",
        "CancellationReasons": reasons}).encode()


def test_awss_cancellation_shape_is_read_for_duplicates_and_held_locks(plane, settings):
    """AWS's answer, injected at the HTTP layer: the record's reason first (with ``ALL_OLD``,
    its ``Item``), ``{"Code": "None"}`` for items that were not the cause."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)
    holder = dispatcher.dispatch("hello", AT)
    stored = clients.client("dynamodb").get_item(
        TableName=settings.executions_table,
        Key={"execution_id": {"S": holder.execution_id}})["Item"]
    lock = clients.client("dynamodb").get_item(
        TableName=settings.leases_table, Key={"lease_id": {"S": "lock#hello"}})["Item"]
    with _Cancellations(clients) as cancellations:
        answers = cancellations.answers
        # A duplicate delivery: the record exists (its item returned).
        answers.append(_aws_cancellation([
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
             "Item": stored}, {"Code": "None"}, {"Code": "None"}]))
        with clients.counter.scope() as calls:
            duplicate = dispatcher.dispatch("hello", AT)
        assert (duplicate.status, duplicate.task_arn) == ("duplicate", holder.task_arn)
        assert dict(calls) == {"dynamodb.TransactWriteItems": 1}
        # A new fire while the lock is held: only the lock's condition failed (its item
        # names the holder); the record is then written alone and the run SKIPPED.
        answers.append(_aws_cancellation([
            {"Code": "None"}, {"Code": "None"},
            {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
             "Item": lock}]))
        skipped = dispatcher.dispatch("hello", LATER[0])
    assert skipped.status == "skipped" and holder.execution_id in skipped.reason
    assert ExecutionStore(clients, settings).get(skipped.execution_id).status == "SKIPPED"
    assert tasks_started_by(clients, settings, skipped.execution_id) == []


def test_a_conflicting_transaction_is_tried_again(plane, settings):
    """``TransactionConflict`` (another transaction on the same items) says nothing about the
    conditions: the write is tried again."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)
    with _Cancellations(clients) as cancellations:
        cancellations.answers.append(_aws_cancellation([
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
            {"Code": "None"}, {"Code": "None"}]))
        outcome = dispatcher.dispatch("hello", AT)
    assert outcome.status == "started"
    assert len(tasks_started_by(clients, settings, outcome.execution_id)) == 1


def test_consumer_events_cost_one_write_each_and_a_final_state_three(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = _warm(clients, settings).dispatch("hello", AT)
    _pending, running, _stopping, stopped = lifecycle(run.task_arn, run.execution_id,
                                                      main_exit=0)
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    other = EventConsumer(clients, settings, wait_time_s=0)     # another replica
    sqs = clients.client("sqs")
    store = ExecutionStore(clients, settings)

    def handle(events, by=consumer) -> dict:
        send_events(sqs, settings, events)
        with clients.counter.scope() as calls:
            received = 0
            while received < len(events):
                received += by.process_batch()
        return {k: v for k, v in calls.items() if k.startswith("dynamodb.")}

    assert handle([running]) == {"dynamodb.UpdateItem": 1}
    assert store.get(run.execution_id).status == "RUNNING"
    # Redelivered: the consumer that stored it knows it changes nothing (no call); another
    # one makes the refused write, and reads nothing.
    assert handle([running, running]) == {}
    assert handle([running, running], by=other) == {"dynamodb.UpdateItem": 2}
    calls = handle([stopped])
    assert calls == {"dynamodb.UpdateItem": 2, "dynamodb.DeleteItem": 1}, calls
    record = clients.client("dynamodb").get_item(
        TableName=settings.executions_table,
        Key={"execution_id": {"S": run.execution_id}})["Item"]
    assert record["status"]["S"] == "SUCCESS" and record["lock_released"]["BOOL"] is True
    assert "outbox" not in record and UNFINISHED not in record
    assert "outbox_owner" not in record and "outbox_until" not in record
    assert OverlapLocks(clients, settings).holder("hello") is None
    # Redelivered final events: none for the consumer that settled the run; one refused
    # write each for another (the record it returns shows the lock released and the outbox
    # empty), no lock release, no read.
    assert handle([stopped, stopped]) == {}
    assert handle([stopped, stopped], by=other) == {"dynamodb.UpdateItem": 2}
    assert store.get(run.execution_id).status == "SUCCESS"


def test_the_emulators_transactions_write_all_or_nothing(aws, settings):
    """``cheap_transactions`` (tests, embedded mode, benchmarks): every condition checked
    before anything is written; a refused transaction writes nothing and answers one reason
    per item, with the item as it is for ``ALL_OLD``."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")
    for table in ("tx-a", "tx-b"):
        ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    ddb.put_item(TableName="tx-b", Item={"k": {"S": "held"}, "by": {"S": "someone"}})

    def put(table, key, condition="attribute_not_exists(k)"):
        return {"Put": {"TableName": table, "Item": {"k": {"S": key}},
                        "ConditionExpression": condition,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}

    try:
        ddb.transact_write_items(TransactItems=[put("tx-a", "new"), put("tx-b", "held")])
        raise AssertionError("the transaction was not refused")
    except ddb.exceptions.TransactionCanceledException as exc:
        reasons = exc.response["CancellationReasons"]
    assert reasons == [{"Code": "None"},
                       {"Code": "ConditionalCheckFailed",
                        "Message": "The conditional request failed",
                        "Item": {"k": {"S": "held"}, "by": {"S": "someone"}}}]
    assert "Item" not in ddb.get_item(TableName="tx-a", Key={"k": {"S": "new"}})
    ddb.transact_write_items(TransactItems=[put("tx-a", "new"), put("tx-b", "free")])
    assert ddb.get_item(TableName="tx-a", Key={"k": {"S": "new"}})["Item"]
    assert ddb.get_item(TableName="tx-b", Key={"k": {"S": "free"}})["Item"]


def test_every_answer_to_the_record_write_lost_the_attempt_still_knows_its_write(
        plane, settings, monkeypatch):
    """The record (and lock) stored by the first try, and every try's answer lost: one read
    finds the record with this attempt's id, and the attempt goes on (it does not leave a
    claimed record for a redelivery or the watchdog to wait for)."""
    from botocore.exceptions import ConnectionClosedError

    import reconciler.adapters.aws as aws_adapter

    monkeypatch.setattr(aws_adapter, "retrying",
                        lambda attempts=5, max_wait=8.0: aws_adapter.retry(
                            retry=aws_adapter.retry_if_exception_type(
                                aws_adapter.TransientError),
                            stop=aws_adapter.stop_after_attempt(attempts), reraise=True))
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    dispatcher = _warm(clients, settings)

    def lose(**_kwargs):
        raise ConnectionClosedError(endpoint_url=settings.endpoint_url)

    ddb = clients.client("dynamodb")
    ddb.meta.events.register("after-call.dynamodb.TransactWriteItems", lose)
    try:
        outcome = dispatcher.dispatch("hello", AT)
    finally:
        ddb.meta.events.unregister("after-call.dynamodb.TransactWriteItems", lose)
    assert outcome.status == "started", outcome
    assert len(tasks_started_by(clients, settings, outcome.execution_id)) == 1
    assert OverlapLocks(clients, settings).holder("hello") == outcome.execution_id


def test_runtask_is_paced_and_a_start_past_its_wait_is_a_transient_refusal(plane, settings,
                                                                           monkeypatch):
    """RunTask draws from the process's bucket of the namespace's RunTask rate: with a burst
    of 2 and no time to wait, the third start is not made (no task) and answers 503 in the
    dispatcher's terms (transient), so SNS delivers it again; its record stays resumable."""
    from reconciler.adapters import ecs_tasks
    from reconciler.core.quotas import configured

    clients, td = plane
    settings = settings.with_(api_rates=("ecs.RunTask=0.001/2",))
    monkeypatch.setattr(ecs_tasks, "RUN_TASK_WAIT_S", 0.0)
    monkeypatch.setattr(ecs_tasks, "_RUN_BUCKETS", {})
    assert configured(settings.api_rates)["ecs.RunTask"].burst == 2
    for name in ("one", "two", "three"):
        put_cron(clients, settings, name, td)
    dispatcher = _warm(clients, settings)
    assert [dispatcher.dispatch(name, AT).status for name in ("one", "two")] == \
        ["started", "started"]
    status, body = dispatcher.handle_sns_message({"Message": json.dumps(
        {"cron": "three", "scheduled_at": AT})})
    assert status == 503 and "RunTask paced" in body
    third = ex.execution_id("three", AT)
    assert tasks_started_by(clients, settings, third) == []
    assert ExecutionStore(clients, settings).get(third).status == "PENDING"


def test_a_retried_runtask_takes_a_token_per_attempt(plane, settings, monkeypatch):
    """AWS counts every RunTask request against its bucket, a retry too: a start whose first
    attempt was throttled (AWS's exact answer, injected) takes a second token for its retry,
    so with a burst of 2 the next start finds none and is refused (503), not sent."""
    from reconciler.adapters import ecs_tasks

    clients, td = plane
    settings = settings.with_(api_rates=("ecs.RunTask=0.001/2",))
    monkeypatch.setattr(ecs_tasks, "RUN_TASK_WAIT_S", 0.0)
    monkeypatch.setattr(ecs_tasks, "_RUN_BUCKETS", {})
    for name in ("one", "two"):
        put_cron(clients, settings, name, td)
    dispatcher = _warm(clients, settings)
    throttled = [json.dumps({"__type": "ThrottlingException",
                             "message": "Rate exceeded"}).encode()]

    def answer(request, **_kwargs):
        if not throttled:
            return None
        return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"},
                           _Body(throttled.pop(0)))

    ecs = clients.client("ecs")
    ecs.meta.events.register("before-send.ecs.RunTask", answer)
    try:
        with clients.counter.scope() as calls:
            assert dispatcher.dispatch("one", AT).status == "started"
        assert calls["ecs.RunTask"] == 2 and not throttled     # throttled once, then started
    finally:
        ecs.meta.events.unregister("before-send.ecs.RunTask", answer)
    status, body = dispatcher.handle_sns_message({"Message": json.dumps(
        {"cron": "two", "scheduled_at": AT})})
    assert status == 503 and "RunTask paced" in body, body
    assert tasks_started_by(clients, settings, ex.execution_id("two", AT)) == []
