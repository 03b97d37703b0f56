"""Runs whose final event never comes: the watchdog of a real `cronctl serve` settles them from
what ECS says, and frees their cron. Crons with a 3 s timeout, a grace period of 0.5 s and a
sweep every 0.5 s, so a run is overdue 3.5 s after it started.

- a task that stopped (StopTask: the emulator jumps it to STOPPED) with no event: its final
  state is read from DescribeTasks, the lock is released, the next run starts;
- a task ECS no longer knows (AWS forgets stopped tasks after about an hour; here the emulator's
  state is edited): the run ends LOST with the reason, the lock is released, the next run starts.
And the daemon killed (SIGKILL) while its watchdog settles such a run - at the release of the
lock, or at the write of the final state - and a new daemon's watchdog finishing the job.
Then the property (``tests/chaos/invariants.py``).
"""

from __future__ import annotations

import pytest

from tests.chaos.invariants import assert_runs, task_arns
from tests.chaos.tools import (
    add_crons,
    cron_yaml,
    event_apply,
    final,
    forget_task,
    lock_holder,
    on_table,
    redeliver,
    stop_task,
)
from tests.support.waiting import wait_for

FIRST, NEXT = "2026-11-27T10:05:00Z", "2026-11-27T10:10:00Z"
WATCHDOG_ENV = {"CRONCTL_GRACE_S": "0.5", "CRONCTL_WATCHDOG_INTERVAL_S": "0.5"}


def test_the_watchdog_settles_runs_whose_stopped_event_never_came(daemon_factory, chaos_ns,
                                                                  proxy):
    ns = chaos_ns
    add_crons(ns, {"stopped": cron_yaml(timeout="3s"), "forgotten": cron_yaml(timeout="3s")})
    daemon = daemon_factory(env=WATCHDOG_ENV)
    sns = ns.sns()
    runs = {cron: final(redeliver(sns, daemon.sns_url, sns.notification(cron, FIRST)))
            for cron in ("stopped", "forgotten")}
    assert {run["status"] for run in runs.values()} == {"started"}
    stop_task(ns, runs["stopped"]["task_arn"])
    forget_task(ns, runs["forgotten"]["task_arn"])

    finished = {}
    for cron in ("stopped", "forgotten"):
        eid = runs[cron]["execution_id"]
        finished[cron] = daemon.wait_event(
            "execution.finished", lambda e, eid=eid: e["execution_id"] == eid, timeout=20)
        assert finished[cron]["source"] == "watchdog"
        assert lock_holder(ns, cron) is None

    stopped = ns.execution(runs["stopped"]["execution_id"])
    # The emulator's stopped task reports the main container's exit code 0.
    assert (stopped["status"], stopped["task_arn"]) == ("SUCCESS", runs["stopped"]["task_arn"])
    assert task_arns(ns, stopped["execution_id"]) == [runs["stopped"]["task_arn"]]
    forgotten = ns.execution(runs["forgotten"]["execution_id"])
    assert forgotten["status"] == "LOST" and "ECS no longer knows" in forgotten["reason"]
    assert task_arns(ns, forgotten["execution_id"]) == []

    following = {cron: final(redeliver(sns, daemon.sns_url, sns.notification(cron, NEXT)))
                 for cron in ("stopped", "forgotten")}
    assert {run["status"] for run in following.values()} == {"started"}, following
    assert_runs(ns, [r["execution_id"] for r in [*runs.values(), *following.values()]],
                daemons=[daemon])


SETTLE_STEPS = {
    "lock-release-lost": ("dynamodb.DeleteItem",
                          lambda ns: on_table(ns.settings.leases_table, lease_id="lock#brief")),
    "final-write-lost": ("dynamodb.UpdateItem",
                         lambda ns: event_apply(ns.settings.executions_table)),
}


@pytest.mark.parametrize("step", sorted(SETTLE_STEPS))
def test_a_crash_while_the_watchdog_settles_a_run(step, daemon_factory, chaos_ns, proxy):
    ns = chaos_ns
    add_crons(ns, {"brief": cron_yaml(timeout="3s")})
    first = daemon_factory("first", env=WATCHDOG_ENV)
    sns = ns.sns()
    run = final(redeliver(sns, first.sns_url, sns.notification("brief", FIRST)))
    op, when = SETTLE_STEPS[step]
    stall = proxy.stall(op, when=when(ns))
    stop_task(ns, run["task_arn"])
    held = stall.wait_entered(timeout=20)
    assert not held.reached_server
    first.kill9()
    stall.abort()

    second = daemon_factory("second", env=WATCHDOG_ENV)
    eid = run["execution_id"]
    # Nothing is delivered and no event comes: the new daemon's watchdog alone repairs.
    wait_for(lambda: ns.execution(eid)["status"] == "SUCCESS", timeout=20,
             message="the new daemon's watchdog to settle the run")
    assert_runs(ns, [eid], timeout=10, daemons=[first, second])
    assert lock_holder(ns, "brief") is None
    following = final(redeliver(sns, second.sns_url, sns.notification("brief", NEXT)))
    assert following["status"] == "started"
    assert_runs(ns, [eid, following["execution_id"]], daemons=[first, second])
