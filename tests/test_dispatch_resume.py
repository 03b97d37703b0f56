"""Resumable dispatch: the execution record is the intent, and a delivery (or the watchdog)
that finds it PENDING with no task and no live claim resumes it, without ever starting a
second task. Crashes are reproduced here by leaving the state a crashed attempt leaves
behind; tests/chaos kills real processes."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ConnectionClosedError

from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.core.executions import records as ex
from reconciler.service.execution.dispatch import Dispatcher, RetryLater
from tests.support.ecs_events import put_cron, tasks_started_by

AT = "2018-02-26T13:50:00Z"


def crashed_record(settings, cron: str = "hello", at: str = AT, *, claim_left_s: float = -1.0,
                   deadline_in_s: float = 300.0) -> ex.Execution:
    """What a dispatch that crashed after writing its record leaves: PENDING, no task."""
    now = datetime.now(UTC)
    attempt = str(uuid.uuid4())
    return ex.Execution(
        execution_id=ex.execution_id(cron, at), cron=cron, scheduled_at=ex.format_time(
            ex.parse_time(at)), created_at=ex.format_time(now), attempt_id=attempt,
        claimed_by=attempt, claim_until=time.time() + claim_left_s,
        start_deadline=ex.format_time(now + timedelta(seconds=deadline_in_s)))


def test_a_record_left_by_a_crash_before_runtask_is_resumed_by_the_next_delivery(plane,
                                                                                 settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store = ExecutionStore(clients, settings)
    assert store.create(crashed_record(settings))
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert (outcome.status, outcome.resumed) == ("started", True)
    [task] = tasks_started_by(clients, settings, outcome.execution_id)
    record = store.get(outcome.execution_id)
    assert (record.status, record.task_arn, record.claim_until) == ("PENDING", task["taskArn"],
                                                                    None)
    assert OverlapLocks(clients, settings).holder("hello") == outcome.execution_id
    # SNS delivers once more: nothing new.
    assert Dispatcher(clients, settings).dispatch("hello", AT).status == "duplicate"
    assert len(tasks_started_by(clients, settings, outcome.execution_id)) == 1


def test_a_task_started_before_the_crash_is_found_not_started_again(plane, settings):
    """The crash came after RunTask reached ECS and before the ARN was recorded."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    record = crashed_record(settings)
    ExecutionStore(clients, settings).create(record)
    dispatcher = Dispatcher(clients, settings)
    first = dispatcher.tasks.run_task(task_definition=td, overrides={},
                                      token=record.execution_id, tags={},
                                      network=dispatcher.network())
    outcome = dispatcher.dispatch("hello", AT)
    assert (outcome.status, outcome.task_arn) == ("started", first.task_arn)
    assert len(tasks_started_by(clients, settings, record.execution_id)) == 1
    assert ExecutionStore(clients, settings).get(record.execution_id).task_arn == first.task_arn


def test_a_live_claim_of_another_attempt_answers_retry_later_and_starts_nothing(plane,
                                                                               settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    ExecutionStore(clients, settings).create(crashed_record(settings, claim_left_s=30))
    dispatcher = Dispatcher(clients, settings)
    with pytest.raises(RetryLater):
        dispatcher.dispatch("hello", AT)
    status, _ = dispatcher.handle_sns_message(
        {"Message": json.dumps({"cron": "hello", "scheduled_at": AT})})
    assert status == 503
    assert tasks_started_by(clients, settings, ex.execution_id("hello", AT)) == []


def test_a_resumed_run_past_its_start_deadline_fails_to_start_and_frees_the_lock(plane,
                                                                                settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    record = crashed_record(settings, deadline_in_s=-1)
    ExecutionStore(clients, settings).create(record)
    locks = OverlapLocks(clients, settings)
    assert locks.try_acquire("hello", record.execution_id)[0]
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert outcome.status == "failed_to_start" and "start deadline" in outcome.reason
    stored = ExecutionStore(clients, settings).get(record.execution_id)
    assert (stored.status, stored.reason) == ("FAILED_TO_START", outcome.reason)
    assert locks.holder("hello") is None
    assert tasks_started_by(clients, settings, record.execution_id) == []


def test_a_lost_answer_to_the_conditional_create_is_not_taken_for_a_duplicate(plane,
                                                                              settings):
    """The first write of the record (with the lock, one transaction) is stored but its
    answer is lost; the retry finds the record (and the lock held by it: the retry's lock
    condition holds). The attempt id in it is ours, so the run starts (before, it was a
    "duplicate" and was lost)."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    ddb = clients.client("dynamodb")
    lost, tables = [], []
    op = "TransactWriteItems"

    def note_table(params, **_kwargs):
        tables.append(params["TransactItems"][0]["Put"]["TableName"])

    def lose_first_answer(**_kwargs):
        if tables[-1] == settings.executions_table and not lost:
            lost.append(True)     # stored in DynamoDB, but the answer never arrives
            raise ConnectionClosedError(endpoint_url=settings.endpoint_url)

    ddb.meta.events.register(f"before-parameter-build.dynamodb.{op}", note_table)
    ddb.meta.events.register(f"after-call.dynamodb.{op}", lose_first_answer)
    try:
        outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    finally:
        ddb.meta.events.unregister(f"after-call.dynamodb.{op}", lose_first_answer)
        ddb.meta.events.unregister(f"before-parameter-build.dynamodb.{op}", note_table)
    assert lost == [True]
    assert outcome.status == "started"
    assert len(tasks_started_by(clients, settings, outcome.execution_id)) == 1


def test_an_expired_lock_is_taken_over_even_when_its_holder_looks_alive(plane, settings):
    """No watchdog ran: the holder is RUNNING forever in the record (its events were lost),
    but its lock expired (timeout plus grace), so the next run starts."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store, locks = ExecutionStore(clients, settings), OverlapLocks(clients, settings)
    stuck = crashed_record(settings, at="2018-02-26T13:40:00Z")
    store.create(ex.Execution(**{**stuck.__dict__, "status": "RUNNING",
                                 "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/test/x"}))
    assert locks.try_acquire("hello", stuck.execution_id, hold_s=0.001)[0]
    outcome = Dispatcher(clients, settings).dispatch("hello", AT)
    assert outcome.status == "started"
    assert locks.holder("hello") == outcome.execution_id


def test_replace_ends_a_holder_that_has_not_started_so_it_never_starts(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="replace")
    store, locks = ExecutionStore(clients, settings), OverlapLocks(clients, settings)
    older = crashed_record(settings, at="2018-02-26T13:40:00Z")
    store.create(older)
    assert locks.try_acquire("hello", older.execution_id)[0]
    newer = Dispatcher(clients, settings).dispatch("hello", AT)
    assert newer.status == "started"
    ended = store.get(older.execution_id)
    assert ended.status == "FAILED_TO_START" and newer.execution_id in ended.reason
    # A late redelivery of the older run finds it finished: it never starts.
    again = Dispatcher(clients, settings).dispatch("hello", "2018-02-26T13:40:00Z")
    assert again.status == "duplicate"
    assert tasks_started_by(clients, settings, older.execution_id) == []
