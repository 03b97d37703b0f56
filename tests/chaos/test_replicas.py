"""Two `cronctl serve` replicas of one namespace behind the same fault proxy (each signs with
its own access key, so the proxy can tell their requests apart).

- Dispatching and consuming at once: deliveries split between the replicas and duplicated
  across them, RunTask throttled now and then, every run's events sent twice in random order
  and consumed by whichever replica receives them; then the crons' next runs. The property
  (``tests/chaos/invariants.py``) holds.
- A stalled leader: the leader's pass is held at a control-plane write (the answer of its
  PutRule, or its registry transaction before DynamoDB sees it) and everything else it sends
  is held too, so its lease runs out; the other replica takes the lease over and applies newer
  cron files; then the stalled one is let go. It writes nothing more: the rules and the registry
  are the new leader's, and they agree with the files.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass

import pytest

from tests.chaos.invariants import assert_control_plane, assert_runs
from tests.chaos.namespace import QUIET_SCHEDULE
from tests.chaos.tools import (
    add_crons,
    cron_yaml,
    final,
    from_replica,
    in_parallel,
    lock_holder,
    queue_depth,
    redeliver,
    replica_env,
)
from tests.support.ecs_events import lifecycle, send_events
from tests.support.reconcile_env import live_state
from tests.support.waiting import wait_for

FIRST, NEXT = "2026-11-27T10:05:00Z", "2026-11-27T10:10:00Z"
KEYS = ("AKIDREPLICAONE", "AKIDREPLICATWO")
# Claims longer than any dispatch attempt here: see tests/chaos/test_storms.py.
REPLICA_ENV = {"CRONCTL_CLAIM_S": "10", "CRONCTL_WATCHDOG_INTERVAL_S": "1"}


def start_replicas(daemon_factory, env: dict[str, str] | None = None):
    return in_parallel([(lambda name, key: daemon_factory(
        name, env=replica_env(key, **REPLICA_ENV, **(env or {}))), (f"replica-{i + 1}", key))
        for i, key in enumerate(KEYS)])


def test_two_replicas_dispatching_and_consuming_at_once(daemon_factory, chaos_ns, proxy):
    ns = chaos_ns
    add_crons(ns, {f"pair-{i}": cron_yaml() for i in range(1, 6)})
    crons = sorted(ns.crons)
    one, two = start_replicas(daemon_factory)
    proxy.fail("ecs.RunTask", code="ThrottlingException", times=3)
    sns = ns.sns()

    def deliveries(scheduled_at: str, split: bool) -> dict[str, list[dict]]:
        """Each cron's message to one replica (alternately), or to both at once, twice."""
        calls, owners = [], []
        for index, cron in enumerate(crons):
            body = sns.notification(cron, scheduled_at)
            targets = [(one, two)[index % 2]] if split and index % 3 else [one, two, one, two]
            for daemon in targets:
                calls.append((redeliver, (sns, daemon.sns_url, body)))
                owners.append(cron)
        by_cron: dict[str, list[dict]] = {cron: [] for cron in crons}
        for cron, answers in zip(owners, in_parallel(calls), strict=True):
            by_cron[cron].append(final(answers))
        return by_cron

    first = deliveries(FIRST, split=True)
    for cron, answers in first.items():
        assert sorted(a["status"] for a in answers).count("started") == 1, (cron, answers)
    eids = [ns.execution_id(FIRST, cron) for cron in crons]
    assert_runs(ns, eids, daemons=[one, two])
    # Both replicas answered deliveries.
    assert one.events("dispatch.started") and two.events("dispatch.started")

    events = []
    for eid in eids:
        task_arn = ns.execution(eid)["task_arn"]
        events += lifecycle(task_arn, eid, main_exit=0) * 2     # every event twice
    random.Random(7).shuffle(events)
    send_events(ns.clients.client("sqs"), ns.settings, events)
    wait_for(lambda: all(ns.execution(eid)["status"] == "SUCCESS" for eid in eids)
             and queue_depth(ns) == 0, timeout=30, interval=0.2,
             message="both consumers to settle every run")
    assert all(lock_holder(ns, cron) is None for cron in crons)
    finished = one.events("execution.finished") + two.events("execution.finished")
    assert sorted(e["execution_id"] for e in finished) == sorted(eids)  # each ended once

    second = deliveries(NEXT, split=False)
    for cron, answers in second.items():
        assert sorted(a["status"] for a in answers) == ["duplicate"] * 3 + ["started"], \
            (cron, answers)
    assert_runs(ns, eids + [ns.execution_id(NEXT, cron) for cron in crons],
                daemons=[one, two])


# -- a stalled leader ---------------------------------------------------------------------

@dataclass(frozen=True)
class HeldWrite:
    name: str
    op: str
    forward_first: bool


HELD_WRITES = [HeldWrite("rule-write-answer-held", "events.PutRule", True),
               HeldWrite("registry-write-held", "dynamodb.TransactWriteItems", False)]
CONTROL_PLANE_WRITES = ("events.Put*", "events.Delete*", "events.Remove*", "events.Tag*",
                        "events.Untag*", "scheduler.Create*", "scheduler.Update*",
                        "scheduler.Delete*", "scheduler.Tag*", "ecs.RegisterTaskDefinition",
                        "ecs.DeregisterTaskDefinition", "ecs.DeleteTaskDefinitions",
                        "ecs.TagResource", "dynamodb.TransactWriteItems")


def schedule_yaml(schedule: str) -> str:
    return cron_yaml().replace(QUIET_SCHEDULE, schedule)


@pytest.mark.parametrize("held", HELD_WRITES, ids=[h.name for h in HELD_WRITES])
def test_a_stalled_leader_writes_nothing_once_another_replica_took_over(held, daemon_factory,
                                                                        chaos_ns, proxy):
    ns = chaos_ns
    crons_dir = ns.repo / "crons.d"
    lease = {"CRONCTL_LEASE_S": "2"}
    (crons_dir / "hello.yaml").write_text(schedule_yaml("cron(*/7 * * * ? *)"))
    is_leader = from_replica(KEYS[0])
    write = proxy.stall(held.op, forward_first=held.forward_first, when=is_leader)
    leader = daemon_factory("leader", env=replica_env(KEYS[0], **lease))
    held_request = write.wait_entered(timeout=30)
    everything = proxy.stall("*", times=None, when=is_leader)   # heartbeat included

    # Newer files; the other replica takes the lease over once the leader's runs out.
    (crons_dir / "hello.yaml").write_text(schedule_yaml("cron(*/9 * * * ? *)"))
    (crons_dir / "late.yaml").write_text(schedule_yaml("rate(1 hour)"))
    follower = daemon_factory("follower", env=replica_env(KEYS[1], **lease))
    follower.wait_event("reconcile.lease_acquired", timeout=20)
    applied = follower.wait_event("reconcile.pass", lambda e: e["applied"] > 0, timeout=20)
    assert applied["errors"] == [], applied
    assert not leader.events("reconcile.pass")          # the leader is still held mid-pass
    after_takeover = live_state(ns.clients, ns.settings)

    held_at = held_request.started
    everything.release()
    write.release()
    lost = leader.wait_event("reconcile.lease_lost", timeout=20)
    leader.wait_event("reconcile.pass", timeout=10)
    assert leader.running and follower.running, lost

    state = live_state(ns.clients, ns.settings)
    assert state == after_takeover
    assert state["rules"]["chaos-hello"]["expression"] == "cron(*/9 * * * ? *)"
    assert sorted(state["registry"]) == ["hello", "late"]
    assert '"cron(*/9 * * * ? *)"' in state["registry"]["hello"]["spec"]
    stale = [f"{r.op} -> {r.upstream_status}" for r in proxy.requests()
             if is_leader(r) and r.started > held_at and r.reached_server
             and r.upstream_status == 200
             and any(fnmatch.fnmatchcase(r.op, p) for p in CONTROL_PLANE_WRITES)]
    assert stale == [], "the stalled leader wrote after it lost the lease"
    assert_control_plane(ns)
