"""A `cronctl serve` killed (SIGKILL) at each step of a dispatch, with that step's AWS call in
flight, and a new daemon taking over: through SNS's redelivery of the same message, or, when SNS
never delivers again, through the new daemon's watchdog. Each ends with the property
(``tests/chaos/invariants.py``): the run started exactly once and its record names the task;
or, resumed past its start deadline without a task, it ended FAILED_TO_START with the reason.

Each step's call is held in the fault proxy - before it reaches the emulator (the request is
then lost with the process: aborted) or after (the effect is stored, the answer is lost) - and
the daemon is killed while it waits. The claim on a PENDING record is 2 s here
(``CRONCTL_CLAIM_S``), so a redelivery resumes the run 2 s after the dead attempt took it.

The run's record and its overlap lock are one transaction (``record-write-lost``: lost before
the emulator saw it; ``record-put-stored``: stored, its answer lost).

A RunTask request lost *before* the emulator saw it is aborted, not released late: AWS would
deduplicate a late copy by its ``clientToken``, the emulator ignores the token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from reconciler.core.executions.records import parse_time
from tests.chaos.invariants import assert_runs
from tests.chaos.namespace import ChaosNamespace
from tests.chaos.tools import Background, final, redeliver, task_arn_write
from tests.support.faultproxy import Request
from tests.support.waiting import wait_for

SCHEDULED_AT = "2026-11-27T10:05:00Z"
CLAIM = {"CRONCTL_CLAIM_S": "2"}


@dataclass(frozen=True)
class Step:
    name: str
    op: str
    forward_first: bool            # True: the effect is stored, only the answer is lost
    when: Callable[[ChaosNamespace], Callable[[Request], bool]]
    outcome: str                   # the redelivery's answer
    resumed: bool                  # ...continues the dead attempt's record


def record_and_lock(ns):
    """The transaction that writes the run's record and its overlap lock (with the check of
    the cached registry item)."""
    def match(request: Request) -> bool:
        items = request.json().get("TransactItems") or [{}]
        return (items[0].get("Put") or {}).get("TableName") == ns.settings.executions_table
    return match


def any_request(_ns):
    return None


def arn_write(ns):
    return task_arn_write(ns.settings.executions_table)


STEPS = [
    Step("record-write-lost", "dynamodb.TransactWriteItems", False, record_and_lock,
         "started", False),
    Step("record-put-stored", "dynamodb.TransactWriteItems", True, record_and_lock,
         "started", True),
    Step("run-task-lost", "ecs.RunTask", False, any_request, "started", True),
    Step("run-task-started", "ecs.RunTask", True, any_request, "started", True),
    Step("task-arn-write-lost", "dynamodb.UpdateItem", False, arn_write, "started", True),
    Step("task-arn-write-stored", "dynamodb.UpdateItem", True, arn_write, "duplicate", False),
]
BY_NAME = {step.name: step for step in STEPS}


def crash_at(step: Step, daemon_factory, ns: ChaosNamespace, proxy, env=CLAIM):
    """Deliver the run to a first daemon, hold ``step``'s call, SIGKILL the daemon while it
    waits, and lose the held call with it. Returns (the killed daemon, the message body)."""
    first = daemon_factory("first", env=env)
    sns = ns.sns()
    body = sns.notification(ns.cron, SCHEDULED_AT)
    stall = proxy.stall(step.op, forward_first=step.forward_first, when=step.when(ns))
    delivery = Background(sns.post, first.sns_url, body, name="chaos-first-delivery")
    try:
        held = stall.wait_entered(timeout=20)
    finally:
        first.kill9()
        stall.abort()
        status, _ = delivery.join()
    assert held.reached_server is step.forward_first
    assert status == 0, "SNS got an answer from a daemon that was killed before answering"
    return first, body


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_a_crash_at_each_step_is_resumed_by_sns_redelivery(step, daemon_factory, chaos_ns,
                                                           proxy):
    first, body = crash_at(step, daemon_factory, chaos_ns, proxy)
    second = daemon_factory("second", env=CLAIM)     # watchdog at its default 15 s: idle here
    answer = final(redeliver(chaos_ns.sns(), second.sns_url, body))
    eid = chaos_ns.execution_id(SCHEDULED_AT)
    assert (answer["status"], answer.get("resumed", False)) == (step.outcome, step.resumed), \
        answer
    assert answer["execution_id"] == eid
    assert_runs(chaos_ns, [eid], daemons=[first, second])
    # Later deliveries of the same scheduled time change nothing.
    again = final(redeliver(chaos_ns.sns(), second.sns_url,
                            chaos_ns.sns().notification(chaos_ns.cron, SCHEDULED_AT)))
    assert (again["status"], again["task_arn"]) == ("duplicate", chaos_ns.execution(eid)[
        "task_arn"])
    assert_runs(chaos_ns, [eid], daemons=[first, second])


@pytest.mark.parametrize("name", ["record-put-stored", "run-task-started"])
def test_without_redelivery_the_new_daemons_watchdog_resumes_it(name, daemon_factory,
                                                                chaos_ns, proxy):
    first, _ = crash_at(BY_NAME[name], daemon_factory, chaos_ns, proxy)
    second = daemon_factory("second", env={**CLAIM, "CRONCTL_WATCHDOG_INTERVAL_S": "0.5"})
    eid = chaos_ns.execution_id(SCHEDULED_AT)
    resumed = second.wait_event("watchdog.resumed", lambda e: e["execution_id"] == eid,
                                timeout=20)
    assert resumed["outcome"] == "started"
    assert_runs(chaos_ns, [eid], daemons=[first, second])
    assert not second.events("http_request")          # nobody delivered anything to it


@pytest.mark.parametrize(("name", "outcome"), [("run-task-lost", "failed_to_start"),
                                               ("run-task-started", "started")])
def test_a_run_resumed_after_its_start_deadline(name, outcome, daemon_factory, chaos_ns,
                                                proxy):
    """Past the start deadline (1 s here) a run that never started ends FAILED_TO_START, with
    the reason; one whose task did start before the crash is recorded as started."""
    env = {**CLAIM, "CRONCTL_START_DEADLINE_S": "1"}
    first, body = crash_at(BY_NAME[name], daemon_factory, chaos_ns, proxy, env=env)
    second = daemon_factory("second", env=env)
    eid = chaos_ns.execution_id(SCHEDULED_AT)
    deadline = parse_time(chaos_ns.execution(eid)["start_deadline"])
    wait_for(lambda: datetime.now(UTC) > deadline, timeout=10, message="the start deadline")
    answer = final(redeliver(chaos_ns.sns(), second.sns_url, body))
    assert answer["status"] == outcome, answer
    assert_runs(chaos_ns, [eid], daemons=[first, second])
