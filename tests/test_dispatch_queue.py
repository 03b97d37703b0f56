"""``concurrency: queue`` on the moto server: a run due while the last one runs waits for it
(at most one waits; later ones are SKIPPED naming it), starts when it ends through the
resumable path (its own execution id, exactly once), and a crash anywhere leaves the watchdog
to start it: a lock handed to it whose start was lost, or a holder whose lock expired."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from reconciler.adapters.executions import ExecutionStore, OverlapLocks, lock_id
from reconciler.core.executions import records as ex
from reconciler.core.executions import repairs
from reconciler.core.status.render import cron_status, execution_json
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.watchdog import Watchdog
from tests.support.ecs_events import lifecycle, put_cron, send_events, tasks_started_by

AT = "2018-02-26T13:50:00Z"
NEXT = "2018-02-26T13:55:00Z"
THIRD = "2018-02-26T14:00:00Z"


def drain(consumer: EventConsumer) -> None:
    for _ in range(50):
        if consumer.process_batch() == 0:
            return
    raise AssertionError("queue did not drain")


def queued_behind_first(plane, settings, dispatcher: Dispatcher):
    clients, td = plane
    put_cron(clients, settings, "q", td, concurrency="queue")
    first = dispatcher.dispatch("q", AT)
    second = dispatcher.dispatch("q", NEXT)
    assert (first.status, second.status) == ("started", "queued")
    assert first.execution_id in second.reason
    return first, second


def finish(clients, settings, consumer: EventConsumer, run, exit_code: int = 0) -> None:
    store = ExecutionStore(clients, settings)
    record = store.get(run.execution_id)
    send_events(clients.client("sqs"), settings,
                lifecycle(record.task_arn, run.execution_id, main_exit=exit_code))
    drain(consumer)


def test_a_run_due_while_the_last_runs_waits_and_starts_when_it_ends(plane, settings):
    clients, _ = plane
    dispatcher = Dispatcher(clients, settings)
    first, second = queued_behind_first(plane, settings, dispatcher)
    store, locks = ExecutionStore(clients, settings), OverlapLocks(clients, settings)
    waiting = store.get(second.execution_id)
    assert (waiting.status, waiting.queued_behind, waiting.task_arn) == \
        ("PENDING", first.execution_id, None)
    assert waiting.shown_status == "QUEUED" and waiting.claimed_by is None
    assert execution_json(waiting)["status"] == "QUEUED"
    assert cron_status(False, [waiting]) == "QUEUED"
    assert tasks_started_by(clients, settings, second.execution_id) == []
    assert locks.get("q").waiting == second.execution_id
    # A third run due meanwhile is skipped, naming the one already waiting.
    third = dispatcher.dispatch("q", THIRD)
    assert third.status == "skipped"
    assert third.reason == (f"execution {second.execution_id} is already waiting for "
                            f"{first.execution_id}")
    assert store.get(third.execution_id).status == "SKIPPED"
    # A duplicate delivery of the queued run starts nothing.
    assert dispatcher.dispatch("q", NEXT).status == "queued"
    assert tasks_started_by(clients, settings, second.execution_id) == []
    # The first run ends: the consumer (sharing the dispatcher's outbox) starts the queued one.
    consumer = EventConsumer(clients, settings, wait_time_s=0, outbox=dispatcher.outbox)
    finish(clients, settings, consumer, first)
    [task] = tasks_started_by(clients, settings, second.execution_id)
    assert task["startedBy"] == second.execution_id
    assert store.get(second.execution_id).task_arn == task["taskArn"]
    assert store.get(first.execution_id).status == "SUCCESS"
    lock = locks.get("q")
    assert (lock.holder, lock.waiting) == (second.execution_id, None)
    assert lock.expires_at > time.time() + 3000      # renewed for the run's own timeout
    # The watchdog has nothing to add; the queued run was started once.
    Watchdog(clients, settings, dispatcher).sweep()
    assert len(tasks_started_by(clients, settings, second.execution_id)) == 1
    assert tasks_started_by(clients, settings, third.execution_id) == []


def test_a_lost_start_of_the_queued_run_is_made_by_the_watchdog(plane, settings):
    clients, _ = plane
    dispatcher = Dispatcher(clients, settings)
    first, second = queued_behind_first(plane, settings, dispatcher)
    # A consumer without a dispatcher (as if the process died after releasing the lock):
    # the lock is handed to the queued run, nobody starts it.
    finish(clients, settings, EventConsumer(clients, settings, wait_time_s=0), first)
    locks, store = OverlapLocks(clients, settings), ExecutionStore(clients, settings)
    assert locks.get("q").holder == second.execution_id
    assert tasks_started_by(clients, settings, second.execution_id) == []
    watchdog = Watchdog(clients, settings, Dispatcher(clients, settings))
    assert watchdog.sweep()["resumed"] == 1
    [task] = tasks_started_by(clients, settings, second.execution_id)
    assert store.get(second.execution_id).task_arn == task["taskArn"]
    watchdog.sweep()
    assert len(tasks_started_by(clients, settings, second.execution_id)) == 1


def test_the_watchdog_leaves_a_queued_run_waiting_while_its_holder_runs(plane, settings):
    clients, _ = plane
    dispatcher = Dispatcher(clients, settings)
    _, second = queued_behind_first(plane, settings, dispatcher)
    assert Watchdog(clients, settings, dispatcher).sweep() == {}
    assert ExecutionStore(clients, settings).get(second.execution_id).queued


def test_a_queued_run_whose_holder_lock_expired_is_started_by_the_watchdog(plane, settings):
    clients, _ = plane
    dispatcher = Dispatcher(clients, settings)
    first, second = queued_behind_first(plane, settings, dispatcher)
    # The holder's task was lost without a word: its lock expires.
    clients.client("dynamodb").update_item(
        TableName=settings.leases_table, Key={"lease_id": {"S": lock_id("q")}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    Watchdog(clients, settings, dispatcher).sweep()
    [task] = tasks_started_by(clients, settings, second.execution_id)
    assert ExecutionStore(clients, settings).get(second.execution_id).task_arn == \
        task["taskArn"]
    assert OverlapLocks(clients, settings).holder("q") == second.execution_id
    assert len(tasks_started_by(clients, settings, first.execution_id)) == 1


def test_a_crash_between_marking_the_lock_and_the_record_is_resumed_into_the_queue(
        plane, settings):
    clients, td = plane
    dispatcher = Dispatcher(clients, settings)
    put_cron(clients, settings, "q", td, concurrency="queue")
    first = dispatcher.dispatch("q", AT)
    # The second dispatch died after marking the lock, before noting it on its record.
    eid = ex.execution_id("q", NEXT)
    now = datetime.now(UTC)
    store = ExecutionStore(clients, settings)
    assert store.create(ex.Execution(
        execution_id=eid, cron="q", scheduled_at=ex.format_time(ex.parse_time(NEXT)),
        created_at=ex.format_time(now), attempt_id="dead", claimed_by="dead",
        claim_until=time.time() - 1,
        start_deadline=ex.format_time(now + timedelta(minutes=5))))
    assert OverlapLocks(clients, settings).wait("q", first.execution_id, eid)[0]
    assert Watchdog(clients, settings, dispatcher).sweep() == {"queued": 1}
    assert store.get(eid).queued_behind == first.execution_id
    assert dispatcher.dispatch("q", THIRD).status == "skipped"
    assert tasks_started_by(clients, settings, eid) == []


def test_queued_runs_in_the_watchdog_decision_table():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    queued = ex.Execution(execution_id="b", cron="q", scheduled_at="x", queued_behind="a",
                          start_deadline="2026-01-01T01:00:00.000Z")
    live = now.timestamp() + 60
    cases = [
        (repairs.LockState("a", live, "b"), repairs.Repair.NONE),       # still waiting
        (repairs.LockState("a", now.timestamp() - 1, "b"), repairs.Repair.RESUME),  # expired
        (repairs.LockState("b", live), repairs.Repair.RESUME),          # handed to it
        (repairs.LockState("c", live), repairs.Repair.RESUME),          # re-queues behind c
        (None, repairs.Repair.RESUME),                                  # released, not handed
    ]
    for lock, expected in cases:
        assert repairs.decide(queued, now, 60, 60, lock) is expected, lock
    late = datetime(2026, 1, 1, 2, tzinfo=UTC)
    assert repairs.decide(queued, late, 60, 60, cases[0][0]) is repairs.Repair.GIVE_UP
