"""A `cronctl serve` killed (SIGKILL) between two attempts of a retried run (``retries``):
attempt 1 failed and its retry was stored; new daemons (two replicas) start attempt 2 once,
with its own task (``startedBy`` = the attempt's token), when its backoff has passed; it
succeeds and the run ends SUCCESS after two attempts. Then the property
(``tests/chaos/invariants.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

from reconciler.core.executions.records import attempt_token
from tests.chaos.invariants import assert_runs
from tests.chaos.namespace import prepare_namespace
from tests.chaos.tools import final, lock_holder, redeliver
from tests.support.ecs_events import lifecycle, send_events
from tests.support.waiting import wait_for

FLAKY = """\
schedule: "cron(0 12 * * ? *)"
container:
  image: busybox
  arguments: ["sh", "-c", "exit 1"]
timeout: 10m
retries: {attempts: 2, backoff: 10s}
"""
FAST = {"CRONCTL_WATCHDOG_INTERVAL_S": "0.5"}


def test_a_daemon_killed_between_attempts_the_retry_happens_exactly_once(
        aws, tmp_path, daemon_factory):
    ns = prepare_namespace(aws, tmp_path / "retry", namespace="retry", crons={"flaky": FLAKY})
    first = daemon_factory("first", namespace=ns, env=FAST)
    scheduled = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = final(redeliver(ns.sns(), first.sns_url, ns.sns().notification("flaky", scheduled)))
    eid = ns.execution_id(scheduled, "flaky")
    assert run["status"] == "started"
    send_events(ns.clients.client("sqs"), ns.settings,
                lifecycle(run["task_arn"], eid, main_exit=1))
    waiting = wait_for(lambda: (r := ns.execution(eid)) and r.get("attempt") == "2" and r,
                       timeout=20, interval=0.1, message="attempt 1's retry to be stored")
    assert waiting["status"] == "PENDING" and "task_arn" not in waiting
    first.kill9()                                  # between the attempts

    replicas = [daemon_factory(name, namespace=ns, env=FAST) for name in ("second", "third")]
    token = attempt_token(eid, 2)
    record = wait_for(lambda: (r := ns.execution(eid)) and r.get("task_arn") and r,
                      timeout=40, interval=0.2, message="attempt 2 to start")
    [task] = ns.tasks_started_by(token)
    assert record["task_arn"] == task["taskArn"]
    assert lock_holder(ns, "flaky") == eid
    send_events(ns.clients.client("sqs"), ns.settings,
                lifecycle(task["taskArn"], token, main_exit=0))
    done = wait_for(lambda: (r := ns.execution(eid)) and r["status"] == "SUCCESS" and r,
                    timeout=20, interval=0.1, message="attempt 2 to succeed")
    assert done["attempt"] == "2"
    assert len(ns.tasks_started_by(token)) == 1 and len(ns.tasks_started_by(eid)) == 1
    assert_runs(ns, [eid], daemons=[first, *replicas])
