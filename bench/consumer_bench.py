"""Benchmark 3: consumer throughput, ``process_batch`` loops over ECS task state changes.

``executions`` crons are reconciled and each is dispatched once (real RunTask on moto). Each
execution's RUNNING and STOPPED events (AWS's envelope shape, see tests/support/ecs_events.py)
are each delivered ``copies`` times, in a shuffled order (a standard queue's order is not
guaranteed), to the namespace's SQS queue. One ``EventConsumer`` (own clients, so its calls
are counted alone) loops ``process_batch`` until every message was received; afterwards every
execution must be SUCCESS, its overlap lock released and the queue empty.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bench.env import CallTimer, bench_settings, format_counts, reset, table
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import STARTED, Dispatcher
from tests.support.ecs_events import lifecycle, send_events
from tests.support.reconcile_env import cron_yaml

SCHEDULED_AT = "2026-11-27T10:00:00Z"
DEADLINE_S = 120.0
SEED = 7


@dataclass(frozen=True)
class ConsumerRun:
    executions: int
    events: int
    batches: int
    wall_s: float
    calls: dict[str, int]
    receive_s: float


def _names(count: int) -> list[str]:
    return [f"job-{i:04d}" for i in range(count)]


def run(url: str, executions: int, copies: int = 5) -> ConsumerRun:
    """``executions`` x (RUNNING, STOPPED) x ``copies`` events through one consumer."""
    reset(url)
    settings = bench_settings(url, sqs_wait_s=0)
    admin = AwsClients(settings)
    bootstrap(admin, settings)
    snapshot = Snapshot(commit="e" * 40, files={
        f"crons.d/{name}.yaml": cron_yaml("cron(0 5 * * ? *)", "busybox").encode()
        for name in _names(executions)})
    if not run_pass(admin, settings, dry_run=False, source=snapshot).ok:
        raise RuntimeError("reconcile failed")
    dispatcher = Dispatcher(admin, settings)
    envelopes = []
    for name in _names(executions):
        outcome = dispatcher.dispatch(name, SCHEDULED_AT)
        if outcome.status != STARTED:
            raise RuntimeError(f"dispatch of {name}: {outcome}")
        pending, running, deprovisioning, stopped = lifecycle(
            outcome.task_arn, outcome.execution_id, main_exit=0)
        envelopes += [running, stopped] * copies
    random.Random(SEED).shuffle(envelopes)
    send_events(admin.client("sqs"), settings, envelopes)

    consumer_clients = AwsClients(settings)
    consumer = EventConsumer(consumer_clients, settings, wait_time_s=0)
    timer = CallTimer(consumer_clients, ("sqs",))
    received, batches = 0, 0
    started = time.monotonic()
    while received < len(envelopes) and time.monotonic() - started < DEADLINE_S:
        received += consumer.process_batch()
        batches += 1
    wall = time.monotonic() - started
    calls = consumer_clients.counter.snapshot()
    _check(admin, settings, executions, received, len(envelopes))
    return ConsumerRun(executions, received, batches, wall, calls,
                       timer.seconds.get("sqs.ReceiveMessage", 0.0))


def _check(admin: AwsClients, settings, executions: int, received: int, sent: int) -> None:
    if received != sent:
        raise RuntimeError(f"received {received} of {sent} events before the deadline")
    store, locks = ExecutionStore(admin, settings), OverlapLocks(admin, settings)
    for name in _names(executions):
        record = store.get(execution_id(name, SCHEDULED_AT))
        if record is None or record.status != "SUCCESS":
            raise RuntimeError(f"{name}: execution not SUCCESS: {record}")
        if locks.holder(name) is not None:
            raise RuntimeError(f"{name}: overlap lock still held")
    sqs = admin.client("sqs")
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    if any(int(v) for v in attrs.values()):
        raise RuntimeError(f"queue not empty after the run: {attrs}")


def render(run_: ConsumerRun) -> str:
    total = sum(run_.calls.values())
    handling_s = run_.wall_s - run_.receive_s
    rows = [[run_.executions, run_.events, run_.batches, f"{run_.wall_s:.2f}",
             f"{run_.events / run_.wall_s:.0f}", f"{run_.receive_s:.2f}",
             f"{run_.events / handling_s:.0f}", total, f"{total / run_.events:.2f}",
             format_counts(run_.calls)]]
    head = ["executions", "events", "process_batch calls", "wall s", "events/s",
            "s inside ReceiveMessage", "events/s outside ReceiveMessage",
            "AWS calls", "calls per event", "calls by operation (whole run)"]
    return table(head, rows)
