"""The event consumer against the moto server's SQS and DynamoDB, with injected ECS events."""

from __future__ import annotations

import json
import random
from datetime import timedelta

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from tests.support.ecs_events import (
    BASE_TIME,
    ensure_queue,
    lifecycle,
    put_cron,
    send_event,
    send_events,
    task_event,
)
from tests.support.waiting import wait_for

AT = "2018-02-26T13:50:00Z"





def queue_counts(clients, settings) -> tuple[int, int]:
    sqs = clients.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]))


def drain(consumer: EventConsumer, limit: int = 500) -> None:
    for _ in range(limit):
        if consumer.process_batch() == 0:
            return
    raise AssertionError("queue did not drain")


def started(clients, settings, cron: str, at: str = AT):
    outcome = Dispatcher(clients, settings).dispatch(cron, at)
    assert outcome.status == "started"
    return outcome


def test_running_then_stopped_events_finish_the_execution_and_release_the_lock(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    finished = []
    consumer = EventConsumer(clients, settings, on_terminal=finished.append, wait_time_s=0)
    events = lifecycle(run.task_arn, run.execution_id, main_exit=0, run_seconds=4)
    send_event(clients.client("sqs"), settings, events[1])
    drain(consumer)
    store = ExecutionStore(clients, settings)
    assert store.get(run.execution_id).status == "RUNNING"
    for event in (events[3], events[3], events[2], events[0]):   # duplicate, then stale
        send_event(clients.client("sqs"), settings, event)
    drain(consumer)
    record = store.get(run.execution_id)
    assert (record.status, record.exit_code, record.duration_s(), record.version) == \
        ("SUCCESS", 0, 4.0, 4)
    assert [e.execution_id for e in finished] == [run.execution_id]
    assert OverlapLocks(clients, settings).holder("hello") is None
    assert queue_counts(clients, settings) == (0, 0)


def test_a_thousand_shuffled_duplicated_events_settle_every_execution(plane, settings):
    """100 executions, 9 real-shaped events each (PROVISIONING v1 ... STOPPED v9), 100 of them
    sent twice, all shuffled: every execution ends in its true state, every lock is free."""
    clients, td = plane
    expected, events = {}, []
    dispatcher = Dispatcher(clients, settings)
    for n in range(100):
        cron = f"job-{n:03d}"
        put_cron(clients, settings, cron, td)
        run = dispatcher.dispatch(cron, AT)
        assert run.status == "started"
        kind = ("success", "failed", "timeout")[n % 3]
        main_exit = {"success": 0, "failed": n % 7 + 1, "timeout": 137}[kind]
        timeout_exit = 124 if kind == "timeout" else 0
        expected[run.execution_id] = ({"success": "SUCCESS", "failed": "FAILED",
                                       "timeout": "TIMEOUT"}[kind], main_exit)
        events += full_lifecycle(run.task_arn, run.execution_id, main_exit, timeout_exit)
    rng = random.Random(20180226)
    events += rng.sample(events, 100)
    rng.shuffle(events)
    assert len(events) == 1000
    terminal = []
    consumer = EventConsumer(clients, settings, on_terminal=terminal.append, wait_time_s=0)
    # Sent in waves of 100 (the order stays the global shuffle): the emulator's
    # ReceiveMessage slows down with queue depth, real SQS does not.
    for start in range(0, len(events), 100):
        send_events(clients.client("sqs"), settings, events[start:start + 100])
        drain(consumer)
    store = ExecutionStore(clients, settings)
    for eid, (status, code) in expected.items():
        record = store.get(eid)
        assert (record.status, record.exit_code, record.version) == (status, code, 9), eid
        assert record.duration_s() == 30.0
    assert sorted(e.execution_id for e in terminal) == sorted(expected)
    leases = clients.client("dynamodb").scan(TableName=settings.leases_table)["Items"]
    assert leases == []
    assert queue_counts(clients, settings) == (0, 0)


def full_lifecycle(task_arn: str, eid: str, main_exit: int, timeout_exit: int) -> list[dict]:
    started_at = BASE_TIME + timedelta(seconds=10)
    stopped_at = started_at + timedelta(seconds=30)
    common = {"task_arn": task_arn, "started_by": eid}
    down = {"desired_status": "STOPPED", "main_exit": main_exit, "timeout_exit": timeout_exit,
            "started_at": started_at, "stopped_at": stopped_at,
            "stop_code": "EssentialContainerExited",
            "stopped_reason": "Essential container in task exited"}
    return [
        task_event(last_status="PROVISIONING", version=1, **common),
        task_event(last_status="PENDING", version=2, **common),
        task_event(last_status="ACTIVATING", version=3, **common),
        task_event(last_status="RUNNING", version=4, started_at=started_at, **common),
        task_event(last_status="RUNNING", version=5, main_status="STOPPED",
                   timeout_status="RUNNING", **{**down, "timeout_exit": None}, **common),
        task_event(last_status="DEACTIVATING", version=6, **down, **common),
        task_event(last_status="STOPPING", version=7, **down, **common),
        task_event(last_status="DEPROVISIONING", version=8, **down, **common),
        task_event(last_status="STOPPED", version=9, **down, **common),
    ]


def test_stopped_before_running_gives_the_final_state(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    events = lifecycle(run.task_arn, run.execution_id, main_exit=3)
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    send_event(clients.client("sqs"), settings, events[3])
    drain(consumer)
    send_event(clients.client("sqs"), settings, events[1])
    drain(consumer)
    record = ExecutionStore(clients, settings).get(run.execution_id)
    assert (record.status, record.exit_code, record.version) == ("FAILED", 3, 4)


def test_malformed_messages_are_kept_for_the_dead_letter_queue(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    sqs = clients.client("sqs")
    broken = lifecycle(run.task_arn, run.execution_id)[3]
    del broken["detail"]["version"]
    send_event(sqs, settings, "this is not JSON")
    send_event(sqs, settings, broken)
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    assert consumer.process_batch() == 2
    assert queue_counts(clients, settings) == (0, 2)     # received, not deleted
    assert ExecutionStore(clients, settings).get(run.execution_id).status == "PENDING"


def test_malformed_message_reaches_the_dead_letter_queue_through_redrive(plane, settings):
    clients, _ = plane
    sqs = clients.client("sqs")
    dlq = sqs.create_queue(QueueName=settings.dlq_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": "0",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})
    send_event(sqs, settings, "{broken")
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    wait_for(lambda: consumer.process_batch() == 0 and
             sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
                 "ApproximateNumberOfMessages"] == "1", timeout=10, message="message in DLQ")
    [moved] = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert moved["Body"] == "{broken"


def test_events_of_foreign_tasks_and_other_types_are_deleted_and_change_nothing(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    sqs = clients.client("sqs")
    service_task = lifecycle(run.task_arn.replace("/test/", "/test/ff"), "ecs-svc/9223370556150183303")
    unknown = lifecycle(run.task_arn, "5b0c7b2e-0000-4000-8000-000000000000")
    no_started_by = lifecycle(run.task_arn, run.execution_id)[3]
    del no_started_by["detail"]["startedBy"]
    other = {"version": "0", "id": "ddca6449-b258-46c0-8653-e0e3a6d0468b",
             "detail-type": "ECS Service Action", "source": "aws.ecs", "detail": {}}
    for event in (service_task[3], unknown[3], no_started_by, other):
        send_event(sqs, settings, event)
    before = ExecutionStore(clients, settings).get(run.execution_id)
    drain(EventConsumer(clients, settings, wait_time_s=0))
    assert queue_counts(clients, settings) == (0, 0)
    assert ExecutionStore(clients, settings).get(run.execution_id) == before
    assert OverlapLocks(clients, settings).holder("hello") == run.execution_id


def test_a_replayed_terminal_event_releases_a_lock_left_behind(plane, settings):
    """If the process died after storing the final state but before releasing the lock, the
    redelivered event (same version: no state change) still frees the lock."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    store = ExecutionStore(clients, settings)
    from reconciler.core.executions.records import apply_event, parse_task_event
    stopped = lifecycle(run.task_arn, run.execution_id)[3]
    before = store.get(run.execution_id)
    assert store.apply(apply_event(before, parse_task_event(stopped)), before.version)
    assert OverlapLocks(clients, settings).holder("hello") == run.execution_id
    send_event(clients.client("sqs"), settings, stopped)
    drain(EventConsumer(clients, settings, wait_time_s=0))
    assert OverlapLocks(clients, settings).holder("hello") is None


def test_consumer_thread_processes_events_and_stops_cleanly(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    consumer = EventConsumer(clients, settings, wait_time_s=1)
    consumer.start()
    try:
        send_events(clients.client("sqs"), settings,
                    lifecycle(run.task_arn, run.execution_id, main_exit=0, timeout_exit=124))
        store = ExecutionStore(clients, settings)
        record = wait_for(lambda: (r := store.get(run.execution_id)).terminal and r,
                          timeout=15, message="execution to finish")
        assert record.status == "TIMEOUT"
    finally:
        assert consumer.stop(timeout=10)


def test_replaced_run_ends_failed_with_the_reason_and_keeps_the_new_runs_lock(plane, settings):
    """After ``replace``, ECS reports the old task stopped by StopTask (stopCode UserInitiated,
    stoppedReason = the reason we passed); the emulator sends nothing, so that event is injected."""
    clients, td = plane
    put_cron(clients, settings, "hello", td, concurrency="replace")
    dispatcher = Dispatcher(clients, settings)
    old = dispatcher.dispatch("hello", AT)
    new = dispatcher.dispatch("hello", "2018-02-26T13:55:00Z")
    assert new.status == "started"
    started_at = BASE_TIME + timedelta(seconds=3)
    common = {"task_arn": old.task_arn, "started_by": old.execution_id}
    send_events(clients.client("sqs"), settings, [
        task_event(last_status="RUNNING", version=2, started_at=started_at, **common),
        task_event(last_status="STOPPED", version=5, desired_status="STOPPED", main_exit=137,
                   timeout_exit=137, stop_code="UserInitiated",
                   stopped_reason=f"replaced by {new.execution_id}", started_at=started_at,
                   stopped_at=started_at + timedelta(seconds=290), **common),
    ])
    drain(EventConsumer(clients, settings, wait_time_s=0))
    record = ExecutionStore(clients, settings).get(old.execution_id)
    assert (record.status, record.exit_code, record.reason) == \
        ("FAILED", 137, f"replaced by {new.execution_id}")
    assert OverlapLocks(clients, settings).holder("hello") == new.execution_id


def test_a_message_whose_effect_cannot_be_stored_is_not_deleted(aws, settings):
    clients = AwsClients(settings)      # the queue exists, the executions table does not
    ensure_queue(clients.client("sqs"), settings)
    send_event(clients.client("sqs"), settings,
               lifecycle("arn:aws:ecs:us-east-1:123456789012:task/test/abc",
                         "41f5f95a-d283-5cf8-9e49-4d6a0645ccd1")[3])
    assert EventConsumer(clients, settings, wait_time_s=0).process_batch() == 1
    assert queue_counts(clients, settings) == (0, 1)


def test_a_failing_on_terminal_hook_does_not_block_the_queue(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")

    def broken_notifier(_execution):
        raise RuntimeError("notifier down")

    send_event(clients.client("sqs"), settings, lifecycle(run.task_arn, run.execution_id)[3])
    drain(EventConsumer(clients, settings, on_terminal=broken_notifier, wait_time_s=0))
    assert ExecutionStore(clients, settings).get(run.execution_id).status == "SUCCESS"
    assert OverlapLocks(clients, settings).holder("hello") is None
    assert queue_counts(clients, settings) == (0, 0)


def test_two_replicas_consuming_one_queue_settle_every_execution_once(plane, settings):
    clients, td = plane
    runs = []
    dispatcher = Dispatcher(clients, settings)
    for n in range(20):
        put_cron(clients, settings, f"job-{n:02d}", td)
        runs.append(dispatcher.dispatch(f"job-{n:02d}", AT))
    events = [e for r in runs for e in lifecycle(r.task_arn, r.execution_id, main_exit=0)]
    events += events[::3]
    random.Random(7).shuffle(events)
    finished = []
    replicas = [EventConsumer(AwsClients(settings), settings, on_terminal=finished.append,
                              wait_time_s=1) for _ in range(2)]
    for replica in replicas:
        replica.start()
    try:
        send_events(clients.client("sqs"), settings, events)
        store = ExecutionStore(clients, settings)
        wait_for(lambda: all(store.get(r.execution_id).status == "SUCCESS" for r in runs),
                 timeout=30, message="every execution to succeed")
        wait_for(lambda: queue_counts(clients, settings) == (0, 0), timeout=10,
                 message="queue to drain")
    finally:
        assert all(replica.stop(timeout=10) for replica in replicas)
    assert sorted(e.execution_id for e in finished) == sorted(r.execution_id for r in runs)
    assert clients.client("dynamodb").scan(TableName=settings.leases_table)["Items"] == []


def test_a_poison_message_does_not_take_the_valid_events_of_its_batch_with_it(plane, settings):
    """A 100,000-deep JSON array among nine valid STOPPED events: the nine are stored and
    deleted; the poison alone stays for the dead-letter queue."""
    clients, td = plane
    runs = []
    for n in range(9):
        put_cron(clients, settings, f"c{n}", td)
        runs.append(started(clients, settings, f"c{n}"))
    sqs = clients.client("sqs")
    send_event(sqs, settings, "[" * 100_000 + "]" * 100_000)
    send_events(sqs, settings, [lifecycle(r.task_arn, r.execution_id, main_exit=0)[3]
                                for r in runs])
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    received = 0
    for _ in range(20):
        received += consumer.process_batch()
        if received >= 10:
            break
    store = ExecutionStore(clients, settings)
    assert [store.get(r.execution_id).status for r in runs] == ["SUCCESS"] * 9
    assert all(OverlapLocks(clients, settings).holder(f"c{n}") is None for n in range(9))
    assert queue_counts(clients, settings) == (0, 1)   # only the poison, received, kept


def test_a_redelivered_final_event_does_not_release_a_released_lock_again(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = started(clients, settings, "hello")
    stopped = lifecycle(run.task_arn, run.execution_id, main_exit=0)[3]
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    send_event(clients.client("sqs"), settings, stopped)
    with clients.counter.scope() as first:
        drain(consumer)
    assert first["dynamodb.DeleteItem"] == 1          # the lock, released once
    assert ExecutionStore(clients, settings).get(run.execution_id).lock_released is True
    # The next run holds the lock now; five redeliveries of the old final event.
    nxt = started(clients, settings, "hello", "2018-02-26T13:55:00Z")
    with clients.counter.scope() as calls:
        send_events(clients.client("sqs"), settings, [stopped] * 5)
        drain(consumer)
    assert calls["dynamodb.DeleteItem"] == 0
    assert OverlapLocks(clients, settings).holder("hello") == nxt.execution_id
    # The finished run left the watchdog's index of open runs; the next one is in it.
    open_ids = [e.execution_id for e in ExecutionStore(clients, settings).unfinished()]
    assert open_ids == [nxt.execution_id]
