"""Storms at the AWS boundary and at the SNS endpoint, against one real `cronctl serve`:
throttling and 5xx while 20 crons are due at once, DynamoDB unavailable for longer than the
leader lease (the issue's 30 s against the default 30 s lease, scaled down), and the same
delivery ten times at once. Each ends with the property (``tests/chaos/invariants.py``).

The claim on a PENDING record is 10 s here: longer than any one dispatch attempt takes under
these faults, so a sweep of the watchdog never resumes a run that an attempt is still starting
(on AWS the RunTask ``clientToken`` makes even that harmless; the emulator ignores the token).
"""

from __future__ import annotations

import threading

from tests.chaos.invariants import assert_runs
from tests.chaos.tools import (
    Background,
    add_crons,
    cron_yaml,
    final,
    in_parallel,
    redeliver,
)
from tests.support.ecs_events import lifecycle, send_event
from tests.support.faultproxy import INJECTED
from tests.support.waiting import wait_for

SCHEDULED_AT = "2026-11-27T10:05:00Z"


def record_write(table: str, cron: str | None = None):
    """Dispatch's transaction that writes a run's record (of ``cron``) with its lock."""
    def match(request) -> bool:
        put = ((request.json().get("TransactItems") or [{}])[0].get("Put") or {})
        return put.get("TableName") == table and (
            cron is None or put.get("Item", {}).get("cron", {}).get("S") == cron)
    return match


STORM_ENV = {"CRONCTL_CLAIM_S": "10", "CRONCTL_WATCHDOG_INTERVAL_S": "1"}


def test_throttling_and_5xx_storms_while_20_crons_are_due_at_once(daemon_factory, chaos_ns,
                                                                   proxy):
    ns = chaos_ns
    add_crons(ns, {f"storm-{i:02d}": cron_yaml() for i in range(1, 20)})
    crons = sorted(ns.crons)
    assert len(crons) == 20
    daemon = daemon_factory(env=STORM_ENV)

    throttles = proxy.fail("ecs.RunTask", code="ThrottlingException", times=12)
    # One cron's first delivery certainly fails (every retry of the write of its record and
    # lock does, in the outage or after it), so it is certainly redelivered.
    unlucky = proxy.fail("dynamodb.TransactWriteItems", status=500, times=5,
                         when=record_write(ns.settings.executions_table, "storm-01"))
    outage = proxy.fail("dynamodb.*", status=500, for_s=2.5)
    # Records stored whose answers are lost: the retry must know its own write.
    lost_answers = proxy.drop_response("dynamodb.TransactWriteItems", times=3,
                                       when=record_write(ns.settings.executions_table))
    sns = ns.sns()
    bodies = {cron: sns.notification(cron, SCHEDULED_AT) for cron in crons}
    answers = dict(zip(crons, in_parallel(
        [(redeliver, (sns, daemon.sns_url, bodies[cron])) for cron in crons]), strict=True))

    outcomes = {cron: final(a)["status"] for cron, a in answers.items()}
    assert set(outcomes.values()) == {"started"}, outcomes
    assert throttles.hits == 12 and outage.hits > 0 and unlucky.hits == 5
    assert answers["storm-01"][0][0] == 503, answers["storm-01"]
    eids = [ns.execution_id(SCHEDULED_AT, cron) for cron in crons]
    assert_runs(ns, eids, timeout=30, daemons=[daemon])
    # Each run's RunTask reached ECS once: what was retried is what ECS refused.
    assert len(proxy.reached_server("ecs.RunTask")) == 20
    assert lost_answers.hits == 3


# The outage is 30 s, as long as the default leader lease (CRONCTL_LEASE_S, 30 s):
# every renewal in it fails and the lease runs out before DynamoDB is back. The daemon's time
# constants that an outage's length plays against are the lease (renewed every third of it)
# and the claim on a PENDING record (10 s here, and no record is written during the outage);
# so the same scenario, scaled: a 5 s lease and an outage a second longer than it.
OUTAGE_LEASE_S = 5
OUTAGE_S = OUTAGE_LEASE_S + 1


def test_dynamodb_unavailable_for_longer_than_the_leader_lease(daemon_factory, chaos_ns,
                                                               proxy):
    """The issue's scenario (DynamoDB unavailable for 30 s, the default lease) with the lease
    and the outage scaled down together (the longest scenario of the suite)."""
    ns = chaos_ns
    add_crons(ns, {"second": cron_yaml(), "third": cron_yaml()})
    daemon = daemon_factory(env={**STORM_ENV, "CRONCTL_LEASE_S": str(OUTAGE_LEASE_S)})
    outage = proxy.fail("dynamodb.*", status=503, for_s=OUTAGE_S)
    sns = ns.sns()
    seen: dict[str, list[tuple[int, bool]]] = {cron: [] for cron in ns.crons}

    def deliver(cron: str):
        def on_answer(_attempt: int, status: int, _body: str) -> None:
            seen[cron].append((status, outage.active))
        return sns.deliver(daemon.sns_url, sns.notification(cron, SCHEDULED_AT),
                           attempts=1000, within_s=75, backoff_s=0.2, max_backoff_s=1,
                           on_answer=on_answer)

    answers = in_parallel([(deliver, (cron,)) for cron in ns.crons], timeout=90)
    for cron, statuses in seen.items():
        during = [status for status, active in statuses if active]
        assert during and set(during) == {503}, (cron, statuses)
    assert {final(a)["status"] for a in answers} == {"started"}
    assert not outage.active
    eids = [ns.execution_id(SCHEDULED_AT, cron) for cron in ns.crons]
    assert_runs(ns, eids, timeout=20, daemons=[daemon])

    # The other threads came through too: the consumer settles a run, and frees its cron.
    eid = ns.execution_id(SCHEDULED_AT)
    task_arn = ns.execution(eid)["task_arn"]
    send_event(ns.clients.client("sqs"), ns.settings, lifecycle(task_arn, eid, main_exit=3)[-1])
    wait_for(lambda: ns.execution(eid)["status"] == "FAILED", timeout=15,
             message="the consumer to record the final state after the outage")
    later = final(redeliver(sns, daemon.sns_url, sns.notification(ns.cron,
                                                                  "2026-11-27T10:10:00Z")))
    assert later["status"] == "started"
    assert_runs(ns, [*eids, later["execution_id"]], daemons=[daemon])
    assert daemon.running


def test_the_same_delivery_ten_times_at_once_and_again_later_starts_one_task(
        daemon_factory, chaos_ns, proxy):
    ns = chaos_ns
    daemon = daemon_factory(env=STORM_ENV)
    sns = ns.sns()
    body = sns.notification(ns.cron, SCHEDULED_AT)
    gate = threading.Barrier(10, timeout=30)

    def storm() -> list[tuple[int, str]]:
        gate.wait()
        return redeliver(sns, daemon.sns_url, body, within_s=40)

    first = [final(a) for a in in_parallel([(storm, ())] * 10)]
    statuses = sorted(a["status"] for a in first)
    assert statuses == ["duplicate"] * 9 + ["started"], statuses
    eid = ns.execution_id(SCHEDULED_AT)
    assert {a["execution_id"] for a in first} == {eid}
    assert_runs(ns, [eid], daemons=[daemon])

    # Again later: the same message (SNS redelivering) and a new copy of it.
    again = [Background(redeliver, sns, daemon.sns_url, b)
             for b in [body] * 5 + [sns.notification(ns.cron, SCHEDULED_AT)] * 5]
    later = [final(call.join()) for call in again]
    assert {a["status"] for a in later} == {"duplicate"}
    assert {a["task_arn"] for a in first + later if a.get("task_arn")} == {
        ns.execution(eid)["task_arn"]}
    assert len(proxy.reached_server("ecs.RunTask")) == 1
    assert not proxy.requests(outcome=INJECTED)
    assert_runs(ns, [eid], daemons=[daemon])
