"""A `cronctl serve` killed (SIGKILL) at each step of handling a run's STOPPED event, with that
step's AWS call in flight, and a new daemon taking over. The message comes back after its
visibility timeout (2 s here), the new daemon's consumer handles it again, and then: the final
state is right, the overlap lock is released, the queue is empty, and the cron's next scheduled
run starts (nothing is left blocking it). Then the property (``tests/chaos/invariants.py``).

Steps: the conditional write of the final state (there is no read before it), lost before
DynamoDB saw it or stored with its answer lost (the outbox then claimed for a few seconds by the
dead consumer: the redelivered event waits for that claim to expire, then drains it); the release of the
lock; the write that empties the outbox and notes the lock released; the deletion of the
message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.chaos.invariants import assert_runs
from tests.chaos.namespace import ChaosNamespace
from tests.chaos.tools import (
    event_apply,
    final,
    lock_holder,
    on_table,
    queue_depth,
    redeliver,
    set_visibility_timeout,
)
from tests.support.ecs_events import lifecycle, send_event
from tests.support.faultproxy import Request
from tests.support.waiting import wait_for

FIRST, NEXT = "2026-11-27T10:05:00Z", "2026-11-27T10:10:00Z"


@dataclass(frozen=True)
class Step:
    name: str
    op: str
    forward_first: bool
    when: Callable[[ChaosNamespace, str], Callable[[Request], bool] | None]


def outbox_finish(table: str) -> Callable[[Request], bool]:
    """The write that empties a drained outbox and notes the lock released."""
    def match(request: Request) -> bool:
        body = request.json()
        return body.get("TableName") == table and \
            body.get("UpdateExpression", "").startswith("SET lock_released = :yes REMOVE outbox")
    return match


STEPS = [
    Step("final-write-lost", "dynamodb.UpdateItem", False,
         lambda ns, eid: event_apply(ns.settings.executions_table)),
    Step("final-write-stored", "dynamodb.UpdateItem", True,
         lambda ns, eid: event_apply(ns.settings.executions_table)),
    Step("lock-release-lost", "dynamodb.DeleteItem", False,
         lambda ns, eid: on_table(ns.settings.leases_table, lease_id=f"lock#{ns.cron}")),
    Step("outbox-finish-lost", "dynamodb.UpdateItem", False,
         lambda ns, eid: outbox_finish(ns.settings.executions_table)),
    Step("message-delete-lost", "sqs.DeleteMessageBatch", False, lambda ns, eid: None),
]


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_a_crash_at_each_step_of_the_consumer(step, daemon_factory, chaos_ns, proxy):
    ns = chaos_ns
    # Before any receive: a long poll under way keeps the timeout it started with.
    set_visibility_timeout(ns, 2)
    first = daemon_factory("first")
    sns = ns.sns()
    run = final(redeliver(sns, first.sns_url, sns.notification(ns.cron, FIRST)))
    eid = ns.execution_id(FIRST)
    assert run["status"] == "started" and lock_holder(ns, ns.cron) == eid

    stall = proxy.stall(step.op, forward_first=step.forward_first, when=step.when(ns, eid))
    send_event(ns.clients.client("sqs"), ns.settings,
               lifecycle(run["task_arn"], eid, main_exit=0)[-1])
    held = stall.wait_entered(timeout=20)
    assert held.reached_server is step.forward_first
    first.kill9()
    stall.abort()

    second = daemon_factory("second")

    def settled():
        # the run leaves the index of open runs last: once its lock is released and what
        # follows its final state (the outbox) is done, which may be just after the message
        # is deleted
        record = ns.execution(eid)
        return (record["status"] == "SUCCESS" and record.get("lock_released") is True
                and "unfinished" not in record and "outbox" not in record
                and lock_holder(ns, ns.cron) is None and queue_depth(ns) == 0) and record

    record = wait_for(settled, timeout=20, interval=0.1,
                      message="the redelivered event to settle the run")
    assert (int(record["exit_code"]), record["task_arn"]) == (0, run["task_arn"])

    following = final(redeliver(sns, second.sns_url, sns.notification(ns.cron, NEXT)))
    assert following["status"] == "started", following
    assert lock_holder(ns, ns.cron) == ns.execution_id(NEXT)
    assert_runs(ns, [eid, ns.execution_id(NEXT)], daemons=[first, second])
