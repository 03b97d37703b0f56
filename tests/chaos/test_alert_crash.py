"""A `cronctl serve` killed (SIGKILL) right after a failed run's final state is stored — with
its outbox — and a new daemon taking over: the PagerDuty alert still arrives, exactly once.

Steps: the final write stored with its answer lost (the killed daemon never learns it
stored it); the claim of the outbox, not yet seen by DynamoDB. Either way, the run's
STOPPED event comes back (visibility timeout 2 s) to the new daemon's consumer, or — when the
message is gone too — the new daemon's watchdog finds the run in the index of open runs.
"""

from __future__ import annotations

import pytest

from tests.chaos.invariants import assert_runs
from tests.chaos.namespace import QUIET_SCHEDULE
from tests.chaos.tools import (
    add_crons,
    event_apply,
    final,
    queue_depth,
    redeliver,
    set_visibility_timeout,
)
from tests.support.ecs_events import lifecycle, send_event
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.support.faultproxy import Request
from tests.support.waiting import wait_for

KEY = "0123456789abcdef0123456789ABCDEF"
AT = "2026-11-27T10:05:00Z"
PAGED = (f'schedule: "{QUIET_SCHEDULE}"\n'
         "container:\n  image: busybox\n  arguments: [\"sh\", \"-c\", \"exit 2\"]\n"
         f"timeout: 10m\nnotifications:\n  pagerduty: \"{KEY}\"\n")


def outbox_claim(table: str):
    def match(request: Request) -> bool:
        body = request.json()
        return body.get("TableName") == table and \
            body.get("UpdateExpression", "").startswith("SET outbox_owner")
    return match


STEPS = {
    "final-write-stored": ("dynamodb.UpdateItem", True, event_apply),
    "outbox-claim-lost": ("dynamodb.UpdateItem", False, outbox_claim),
}


@pytest.fixture
def pagerduty():
    with PagerDutyFake() as fake:
        yield fake


@pytest.mark.parametrize("purge", [False, True], ids=["redelivered", "watchdog"])
@pytest.mark.parametrize("step", list(STEPS))
def test_a_crash_after_the_final_state_still_alerts_once(step, purge, daemon_factory,
                                                         chaos_ns, proxy, pagerduty):
    ns = chaos_ns
    add_crons(ns, {"paged": PAGED})
    set_visibility_timeout(ns, 2)
    env = {"CRONCTL_PAGERDUTY_EVENTS_URL": pagerduty.events_url,
           "CRONCTL_NOTIFY_TIMEOUT_S": "2", "CRONCTL_WATCHDOG_INTERVAL_S": "1"}
    first = daemon_factory("first", env=env)
    sns = ns.sns()
    run = final(redeliver(sns, first.sns_url, sns.notification("paged", AT)))
    eid = ns.execution_id(AT, "paged")
    assert run["status"] == "started"

    op, forward_first, when = STEPS[step]
    stall = proxy.stall(op, forward_first=forward_first, when=when(ns.settings.executions_table))
    send_event(ns.clients.client("sqs"), ns.settings,
               lifecycle(run["task_arn"], eid, main_exit=2)[-1])
    stall.wait_entered(timeout=20)
    first.kill9()
    stall.abort()
    record = ns.execution(eid)
    assert record["status"] == "FAILED" and set(record["outbox"]) >= {"alert"}
    assert pagerduty.received == []
    if purge:   # the event is gone for good: only the watchdog can finish the run
        sqs = ns.clients.client("sqs")
        sqs.purge_queue(QueueUrl=sqs.get_queue_url(QueueName=ns.settings.queue_name)["QueueUrl"])

    second = daemon_factory("second", env=env)

    def settled():
        current = ns.execution(eid)
        return ("outbox" not in current and "unfinished" not in current
                and current.get("lock_released") is True and queue_depth(ns) == 0) and current

    wait_for(settled, timeout=30, interval=0.2, message="the run to settle with its alert")
    second.wait_event("watchdog.started", timeout=5)
    [trigger] = pagerduty.events()
    assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", "chaos/paged/failed")
    assert_runs(ns, [eid], daemons=[first, second])
    assert len(pagerduty.events()) == 1
