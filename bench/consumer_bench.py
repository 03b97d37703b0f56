"""``consume``: ECS task state changes through the namespace's SQS queue into execution records.

``executions`` crons are reconciled and each dispatched once (real RunTask on moto). Each
execution's RUNNING and STOPPED events (AWS's envelope shape, ``tests/support/ecs_events.py``)
are delivered ``COPIES`` times, in a shuffled order (a standard queue's order is not
guaranteed; the copies are redeliveries). The harness keeps the queue shallow: it sends one
batch of 10 (SendMessageBatch, not timed) and lets one ``EventConsumer`` (own clients, so its
calls are counted alone) ``process_batch``, never more than ``MAX_DEPTH`` messages queued, so
that moto's receive, whose cost grows with the queue's length, is not what is measured. The
row's wall time is the time inside ``process_batch``. Afterwards every execution must be
SUCCESS, its overlap lock released and the queue empty.

Floor, measured on the same server with raw boto3, the same messages fed the same way from a
queue of its own, a batch of the consumer's and one of the floor's in turn (so that both see
the same load): per batch 1 ReceiveMessage + 1 DeleteMessageBatch; per event 1 conditional UpdateItem
(the event stored if it is newer than what is stored; a redelivery's condition fails, still
one call); per execution 1 DeleteItem (the overlap lock released once, at its first STOPPED).
"""

from __future__ import annotations

import json
import random
import time

from bench.env import bench_settings, raw_client, reset, row
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import STARTED, Dispatcher
from tests.support.ecs_events import lifecycle
from tests.support.reconcile_env import cron_yaml

SCHEDULED_AT = "2026-11-27T10:00:00Z"
DEADLINE_S = 600.0
SEED = 7
COPIES = 5
BATCH = 10
MAX_DEPTH = 3 * BATCH


def _names(count: int) -> list[str]:
    return [f"job-{i:05d}" for i in range(count)]


def run(url: str, events: int) -> list:
    """The ``consume`` row for about ``events`` events (2 x ``COPIES`` per execution)."""
    executions = max(1, events // (2 * COPIES))
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
    bodies = []
    for name in _names(executions):
        outcome = dispatcher.dispatch(name, SCHEDULED_AT)
        if outcome.status != STARTED:
            raise RuntimeError(f"dispatch of {name}: {outcome}")
        _pending, running, _deprovisioning, stopped = lifecycle(
            outcome.task_arn, outcome.execution_id, main_exit=0)
        bodies += [json.dumps(running), json.dumps(stopped)] * COPIES
    random.Random(SEED).shuffle(bodies)

    sqs = raw_client(url, "sqs")
    queue_url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    floor_queue = sqs.create_queue(QueueName=settings.queue_name + "-floor",
                                   Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    consumer_clients = AwsClients(settings)
    consumer = EventConsumer(consumer_clients, settings, wait_time_s=0)
    consumer.process_batch()  # connections opened, nothing queued yet
    consumer_clients.counter.reset()
    floor = _Floor(url, settings, floor_queue)
    floor.process_batch()
    real, floor_lane = _Lane(queue_url, consumer.process_batch), _Lane(floor_queue,
                                                                        floor.process_batch)
    _feed(sqs, bodies, [real, floor_lane])  # a batch each in turn: the same load for both
    calls = consumer_clients.counter.snapshot()
    _check(admin, settings, executions)
    wall, batches, depth = real.inside, real.batches, real.depth
    floor_wall, floor_batches = floor_lane.inside, floor_lane.batches
    floor_calls = len(bodies) + 2 * floor_batches + executions
    return [row("consume", len(bodies), wall, calls, floor_calls, floor_wall,
                "per batch ReceiveMessage + DeleteMessageBatch; per event 1 conditional "
                "UpdateItem; per execution 1 DeleteItem (lock released once)",
                executions=executions, copies=COPIES, batches=batches, max_queue_depth=depth,
                events_per_s=round(len(bodies) / wall, 1),
                floor_events_per_s=round(len(bodies) / floor_wall, 1),
                throughput_over_floor=round(floor_wall / wall, 2),
                calls_per_event=round(sum(calls.values()) / len(bodies), 2),
                target_throughput_over_floor=0.9)]


class _Lane:
    """One consumer fed from its own queue: messages sent, received, batches, seconds inside
    ``process``."""

    def __init__(self, queue_url: str, process) -> None:
        self.queue_url, self.process = queue_url, process
        self.sent = self.received = self.batches = self.depth = 0
        self.inside = 0.0


def _feed(sqs, bodies: list[str], lanes: list[_Lane]) -> None:
    """Feed every lane ``bodies`` a batch at a time, taking turns (so that all lanes see the
    same load), keeping at most ``MAX_DEPTH`` queued per lane, and call its ``process()``
    (returns messages received) until it received them all."""
    deadline = time.monotonic() + DEADLINE_S
    while any(lane.received < len(bodies) for lane in lanes):
        if time.monotonic() > deadline:
            raise RuntimeError(f"events not all received before the deadline: "
                               f"{[lane.received for lane in lanes]} of {len(bodies)}")
        for lane in lanes:
            if lane.received >= len(bodies):
                continue
            if lane.sent < len(bodies) and lane.sent - lane.received + BATCH <= MAX_DEPTH:
                chunk = bodies[lane.sent:lane.sent + BATCH]
                answer = sqs.send_message_batch(QueueUrl=lane.queue_url, Entries=[
                    {"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)])
                if answer.get("Failed"):
                    raise RuntimeError(f"SendMessageBatch failed: {answer['Failed']}")
                lane.sent += len(chunk)
                lane.depth = max(lane.depth, lane.sent - lane.received)
            started = time.monotonic()
            lane.received += lane.process()
            lane.inside += time.monotonic() - started
            lane.batches += 1


class _Floor:
    """The consumer's floor with raw boto3: its ``process_batch`` makes exactly the floor's
    calls for the messages it receives."""

    def __init__(self, url: str, settings, queue_url: str) -> None:
        self.sqs, self.ddb = raw_client(url, "sqs"), raw_client(url, "dynamodb")
        self.queue_url = queue_url
        self.table = settings.executions_table
        self.released: set[str] = set()

    def process_batch(self) -> int:
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=BATCH,
                                            WaitTimeSeconds=0).get("Messages", [])
        for message in messages:
            detail = json.loads(message["Body"])["detail"]
            eid, status = f"floor-{detail['startedBy']}", detail["lastStatus"]
            try:
                self.ddb.update_item(
                    TableName=self.table, Key={"execution_id": {"S": eid}},
                    UpdateExpression="SET #s = :s, event_version = :v",
                    ConditionExpression="attribute_not_exists(event_version) OR "
                                        "event_version < :v",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": status},
                                               ":v": {"N": str(detail["version"])}})
                stored = True
            except self.ddb.exceptions.ConditionalCheckFailedException:
                stored = False
            if stored and status == "STOPPED" and eid not in self.released:
                self.released.add(eid)
                self.ddb.delete_item(TableName=self.table,
                                     Key={"execution_id": {"S": f"lock-{eid}"}})
        if messages:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])
        return len(messages)


def _check(admin: AwsClients, settings, executions: int) -> None:
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
