"""The watchdog against the moto server: interrupted dispatches resumed or given up, overdue
runs settled from ECS's own answer, lost tasks, several replicas, and its thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from botocore.awsrequest import AWSResponse

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.core.executions import records as ex
from reconciler.core.executions import repairs
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.watchdog import Watchdog
from tests.support.ecs_events import lifecycle, put_cron, tasks_started_by
from tests.support.waiting import wait_for

AT = "2018-02-26T13:50:00Z"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data


def interrupted(store: ExecutionStore, cron: str = "hello", at: str = AT,
                deadline_in_s: float = 300.0) -> ex.Execution:
    """The record a dispatch leaves when it dies after writing it: PENDING, no task, and a
    claim that has expired."""
    now = datetime.now(UTC)
    attempt = str(uuid.uuid4())
    record = ex.Execution(
        execution_id=ex.execution_id(cron, at), cron=cron,
        scheduled_at=ex.format_time(ex.parse_time(at)), created_at=ex.format_time(now),
        attempt_id=attempt, claimed_by=attempt, claim_until=time.time() - 1,
        start_deadline=ex.format_time(now + timedelta(seconds=deadline_in_s)))
    assert store.create(record)
    return record


def later(hours: float):
    return lambda: datetime.now(UTC) + timedelta(hours=hours)


def test_an_interrupted_dispatch_is_resumed_once(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store = ExecutionStore(clients, settings)
    record = interrupted(store)
    watchdog = Watchdog(clients, settings, Dispatcher(clients, settings))
    assert watchdog.sweep() == {"resumed": 1}
    [task] = tasks_started_by(clients, settings, record.execution_id)
    assert store.get(record.execution_id).task_arn == task["taskArn"]
    assert OverlapLocks(clients, settings).holder("hello") == record.execution_id
    assert watchdog.sweep() == {}          # started: nothing more to do until it is overdue
    assert len(tasks_started_by(clients, settings, record.execution_id)) == 1


def test_an_interrupted_dispatch_past_its_start_deadline_fails_to_start(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store = ExecutionStore(clients, settings)
    record = interrupted(store, deadline_in_s=-1)
    locks = OverlapLocks(clients, settings)
    assert locks.try_acquire("hello", record.execution_id)[0]
    done = []
    Watchdog(clients, settings, Dispatcher(clients, settings), on_terminal=done.append).sweep()
    stored = store.get(record.execution_id)
    assert stored.status == "FAILED_TO_START" and "start deadline" in stored.reason
    assert locks.holder("hello") is None
    assert tasks_started_by(clients, settings, record.execution_id) == []
    assert store.unfinished() == []


def test_a_task_ecs_no_longer_knows_is_lost_and_its_lock_released(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store, locks = ExecutionStore(clients, settings), OverlapLocks(clients, settings)
    run = Dispatcher(clients, settings).dispatch("hello", AT)
    gone = "arn:aws:ecs:us-east-1:123456789012:task/test/00000000000000000000000000000000"
    clients.client("dynamodb").update_item(
        TableName=settings.executions_table, Key={"execution_id": {"S": run.execution_id}},
        UpdateExpression="SET task_arn = :gone", ExpressionAttributeValues={":gone": {"S": gone}})
    finished = []
    watchdog = Watchdog(clients, settings, Dispatcher(clients, settings),
                        on_terminal=finished.append, now=later(1))
    assert watchdog.sweep() == {}          # within timeout plus grace: nothing to ask yet
    watchdog = Watchdog(clients, settings, Dispatcher(clients, settings),
                        on_terminal=finished.append, now=later(25))
    assert watchdog.sweep() == {"lost": 1}
    record = store.get(run.execution_id)
    assert record.status == "LOST" and "ECS no longer knows" in record.reason
    assert locks.holder("hello") is None
    assert [e.execution_id for e in finished] == [run.execution_id]


def test_an_overdue_run_whose_stopped_event_was_lost_gets_its_true_final_state(plane, settings):
    """DescribeTasks answers in AWS's shape (epoch timestamps, containers with exit codes,
    stopCode); the emulator's tasks carry none of that, so the answer is injected at the
    client's HTTP layer."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    run = Dispatcher(clients, settings).dispatch("hello", AT)
    stopped = lifecycle(run.task_arn, run.execution_id, main_exit=2)[3]["detail"]
    task = {**stopped, "containers": stopped["containers"]}
    for key in ("createdAt", "startedAt", "stoppedAt", "updatedAt"):
        task[key] = ex.parse_time(task[key]).timestamp()
    body = json.dumps({"tasks": [task], "failures": []}).encode()

    def answer(request, **_kwargs):
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"},
                           _Body(body))

    watchdog_clients = AwsClients(settings)
    watchdog_clients.client("ecs").meta.events.register("before-send.ecs.DescribeTasks", answer)
    assert Watchdog(watchdog_clients, settings, Dispatcher(watchdog_clients, settings),
                    now=later(25)).sweep() == {"recorded_from_ecs": 1}
    record = ExecutionStore(clients, settings).get(run.execution_id)
    assert (record.status, record.exit_code, record.duration_s()) == ("FAILED", 2, 4.0)
    assert OverlapLocks(clients, settings).holder("hello") is None


def test_three_replicas_repair_each_run_once(plane, settings):
    clients, td = plane
    store = ExecutionStore(clients, settings)
    records = []
    for n in range(6):
        put_cron(clients, settings, f"c{n}", td)
        records.append(interrupted(store, cron=f"c{n}"))
    finished, errors = [], []
    watchdogs = [Watchdog(AwsClients(settings), settings, Dispatcher(AwsClients(settings),
                                                                     settings),
                          on_terminal=finished.append) for _ in range(3)]
    gate = threading.Barrier(3, timeout=30)

    def sweep(watchdog):
        try:
            gate.wait()
            watchdog.sweep()
        except Exception as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(w,), name=f"cronctl-test-wd-{n}")
               for n, w in enumerate(watchdogs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    for record in records:
        assert len(tasks_started_by(clients, settings, record.execution_id)) == 1
    assert sum(w.repairs["resumed"] for w in watchdogs) == 6


def test_the_watchdog_thread_sweeps_on_its_interval_and_stops(plane, settings):
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    record = interrupted(ExecutionStore(clients, settings))
    watchdog = Watchdog(clients, settings.with_(watchdog_interval_s=0.05),
                        Dispatcher(clients, settings))
    watchdog.start()
    try:
        wait_for(lambda: tasks_started_by(clients, settings, record.execution_id), timeout=10,
                 message="the watchdog to resume the run")
    finally:
        assert watchdog.stop(5)


def test_decide_table():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    base = ex.Execution(execution_id="e", cron="c", scheduled_at="2026-01-01T11:59:00.000Z",
                        created_at="2026-01-01T11:59:00.000Z",
                        start_deadline="2026-01-01T12:04:00.000Z")
    live_claim = now.timestamp() + 10
    cases = [
        (base, repairs.Repair.RESUME),
        (ex.Execution(**{**base.__dict__, "claim_until": live_claim, "claimed_by": "a"}),
         repairs.Repair.NONE),
        (ex.Execution(**{**base.__dict__, "start_deadline": "2026-01-01T11:59:30.000Z"}),
         repairs.Repair.GIVE_UP),
        (ex.Execution(**{**base.__dict__, "task_arn": "t"}), repairs.Repair.NONE),
        (ex.Execution(**{**base.__dict__, "task_arn": "t", "status": "RUNNING",
                         "started_at": "2026-01-01T11:58:30.000Z"}), repairs.Repair.NONE),
        (ex.Execution(**{**base.__dict__, "task_arn": "t", "status": "RUNNING",
                         "started_at": "2026-01-01T11:57:59.000Z"}), repairs.Repair.CHECK_TASK),
        (ex.Execution(**{**base.__dict__, "status": "SUCCESS", "lock_released": True}),
         repairs.Repair.CLOSE),
        (ex.Execution(**{**base.__dict__, "status": "SUCCESS", "lock_released": True,
                         "outbox": frozenset({"alert"})}), repairs.Repair.NONE),
        (ex.Execution(**{**base.__dict__, "status": "SUCCESS"}), repairs.Repair.RELEASE_LOCK),
    ]
    for record, expected in cases:
        # timeout 1 s + grace 120 s: a run started at 11:57:59 is overdue at 12:00:00
        got = repairs.decide(record, now, timeout_s=1, grace_s=120)
        assert got is expected, (record, got)


def test_a_crash_between_a_final_state_and_its_lock_release_is_repaired_by_the_sweep(plane,
                                                                                   settings):
    """The consumer (or dispatch, or the watchdog) stored the final state and died before
    releasing the lock: the run is still in the index of open runs, and the sweep frees it."""
    clients, td = plane
    put_cron(clients, settings, "hello", td)
    store, locks = ExecutionStore(clients, settings), OverlapLocks(clients, settings)
    run = Dispatcher(clients, settings).dispatch("hello", AT)
    record = store.get(run.execution_id)
    done = ex.Execution(**{**record.__dict__, "status": "SUCCESS", "exit_code": 0,
                           "version": 4})
    assert store.apply(done, record.version)          # ... and here the process was killed
    assert locks.holder("hello") == run.execution_id
    assert [e.execution_id for e in store.unfinished()] == [run.execution_id]
    assert Watchdog(clients, settings, Dispatcher(clients, settings)).sweep() == {
        "lock_released": 1}
    assert locks.holder("hello") is None
    assert store.unfinished() == []
    assert store.get(run.execution_id).lock_released is True
