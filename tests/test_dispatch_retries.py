"""``retries`` on the moto server: a failed attempt is started again, after its backoff, as
attempt 2, 3, ... of the same execution, each its own task (``startedBy`` = the attempt's
token), exactly once per attempt; the final status is the last attempt's, and alerts follow
the final attempt only. Between attempts the run is only a record (the watchdog starts it when
due), so a process killed in between loses nothing and starts nothing twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from boto3.dynamodb.types import TypeSerializer

from reconciler.adapters.ecs_tasks import EcsTasks
from reconciler.adapters.executions import ExecutionStore, OverlapLocks
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.executions import records as ex
from reconciler.core.executions import retries
from reconciler.core.spec import Notifications, RetryPolicy
from reconciler.core.status.render import execution_json
from reconciler.service.execution.consumer import EventConsumer
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.execution.watchdog import Watchdog
from tests.chaos.tools import in_parallel
from tests.support.ecs_events import lifecycle, put_cron, send_events, tasks_started_by
from tests.support.fakes.pagerduty import PagerDutyFake
from tests.test_dispatch_queue import drain

# A recent fire (retries never reach the next one, an hour later: rate(1 hour)).
AT = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:00Z")
KEY = "0123456789abcdef0123456789ABCDEF"


def put_retrying(clients, settings, name: str, td: str, policy: RetryPolicy, **fields) -> None:
    """A registry item whose spec has ``retries`` (and ``fields``), as reconcile writes it."""
    put_cron(clients, settings, name, td, schedule="rate(1 hour)", **fields)
    item = RegistryReader(clients, settings).get(name)
    spec = replace(item.spec, retries=policy)
    item = replace(item, spec=spec, spec_hash=spec.spec_hash())
    serializer = TypeSerializer()
    clients.client("dynamodb").put_item(TableName=settings.registry_table, Item={
        k: serializer.serialize(v) for k, v in item.to_item().items()})


def later(seconds: float):
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


def end_attempt(clients, settings, consumer: EventConsumer, eid: str, exit_code: int) -> None:
    """ECS's events of the run's current attempt's task, ending with ``exit_code``."""
    record = ExecutionStore(clients, settings).get(eid)
    send_events(clients.client("sqs"), settings,
                lifecycle(record.task_arn, record.token, main_exit=exit_code))
    drain(consumer)


def test_a_failed_run_is_retried_after_its_backoff_with_its_own_task(plane, settings):
    clients, td = plane
    put_retrying(clients, settings, "r", td, RetryPolicy(attempts=2, backoff_s=30))
    store = ExecutionStore(clients, settings)
    first = Dispatcher(clients, settings).dispatch("r", AT)
    eid = first.execution_id
    consumer = EventConsumer(clients, settings, wait_time_s=0)
    end_attempt(clients, settings, consumer, eid, 1)
    waiting = store.get(eid)
    assert (waiting.status, waiting.attempt, waiting.task_arn, waiting.version) == \
        ("PENDING", 2, None, None)
    assert waiting.shown_status == "RETRY_WAIT" and waiting.outbox is None
    assert [(t.attempt, t.status, t.exit_code, t.task_arn) for t in waiting.tries] == \
        [(1, "FAILED", 1, first.task_arn)]
    assert OverlapLocks(clients, settings).holder("r") == eid      # kept between attempts
    assert eid in {r.execution_id for r in store.unfinished()}
    # Not due yet: neither the watchdog nor a redelivery of the fire starts it.
    assert Watchdog(clients, settings, Dispatcher(clients, settings)).sweep() == {}
    assert Dispatcher(clients, settings).dispatch("r", AT).status == "duplicate"
    token = ex.attempt_token(eid, 2)
    assert len(token) <= 36 and ex.parse_token(token) == (eid, 2)
    assert tasks_started_by(clients, settings, token) == []
    # Due: the watchdog starts attempt 2 as its own task.
    due = later(31)
    Watchdog(clients, settings, Dispatcher(clients, settings, now=due), now=due).sweep()
    [task] = tasks_started_by(clients, settings, token)
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert (tags["cronctl:execution"], tags["cronctl:attempt"]) == (eid, "2")
    assert store.get(eid).task_arn == task["taskArn"]
    assert len(tasks_started_by(clients, settings, eid)) == 1        # attempt 1's only
    # A late event of attempt 1 changes nothing; attempt 2 succeeds: the run is done.
    send_events(clients.client("sqs"), settings,
                lifecycle(first.task_arn, eid, main_exit=1)[-1:])
    drain(consumer)
    end_attempt(clients, settings, consumer, eid, 0)
    done = store.get(eid)
    assert (done.status, done.exit_code, done.attempt, done.task_arn) == \
        ("SUCCESS", 0, 2, task["taskArn"])
    assert OverlapLocks(clients, settings).holder("r") is None
    shown = execution_json(done)
    assert (shown["status"], shown["attempt"], [t["status"] for t in shown["tries"]]) == \
        ("SUCCESS", 2, ["FAILED"])
    Watchdog(clients, settings, Dispatcher(clients, settings, now=later(3000)),
             now=later(3000)).sweep()
    assert len(tasks_started_by(clients, settings, token)) == 1


def test_all_attempts_failing_alert_once_on_the_last(plane, settings):
    clients, td = plane
    with PagerDutyFake() as pagerduty:
        alerting = settings.with_(pagerduty_events_url=pagerduty.events_url,
                                  notify_timeout_s=2)
        put_retrying(clients, alerting, "r", td, RetryPolicy(attempts=2, backoff_s=10),
                     notifications=Notifications(pagerduty=KEY))
        store = ExecutionStore(clients, alerting)
        eid = Dispatcher(clients, alerting).dispatch("r", AT).execution_id
        consumer = EventConsumer(clients, alerting, wait_time_s=0)
        for attempt, wait_s in ((1, 11), (2, 31)):
            end_attempt(clients, alerting, consumer, eid, 3)
            assert store.get(eid).attempt == attempt + 1
            assert pagerduty.events() == []          # not the final attempt: no alert
            due = later(wait_s)
            Watchdog(clients, alerting, Dispatcher(clients, alerting, now=due),
                     now=due).sweep()
            assert len(tasks_started_by(clients, alerting,
                                        ex.attempt_token(eid, attempt + 1))) == 1
        end_attempt(clients, alerting, consumer, eid, 3)
        final = store.get(eid)
        assert (final.status, final.exit_code, final.attempt) == ("FAILED", 3, 3)
        assert [t.status for t in final.tries] == ["FAILED", "FAILED"]
        [page] = pagerduty.events()
        assert page["event_action"] == "trigger"


def test_a_process_killed_between_attempts_the_retry_happens_exactly_once(plane, settings):
    """Between attempts the run is only its record: a new process's watchdogs (three
    replicas at once) start attempt 2 once; an attempt whose RunTask was made by a process
    that died before recording it is found by its token, not started again."""
    clients, td = plane
    put_retrying(clients, settings, "r", td, RetryPolicy(attempts=3, backoff_s=10))
    eid = Dispatcher(clients, settings).dispatch("r", AT).execution_id
    end_attempt(clients, settings, EventConsumer(clients, settings, wait_time_s=0), eid, 1)
    due = later(11)
    replicas = [Watchdog(clients, settings, Dispatcher(clients, settings, now=due), now=due)
                for _ in range(3)]
    in_parallel([(w.sweep, ()) for w in replicas])
    assert len(tasks_started_by(clients, settings, ex.attempt_token(eid, 2))) == 1
    # Attempt 2 fails; a process starts attempt 3's task and dies before recording it.
    end_attempt(clients, settings, EventConsumer(clients, settings, wait_time_s=0), eid, 1)
    record = ExecutionStore(clients, settings).get(eid)
    item = RegistryReader(clients, settings).get("r")
    arn = EcsTasks(clients, settings).run_task(
        task_definition=item.task_definition_arn, overrides=item.overrides,
        token=record.token, tags={},
        network=Dispatcher(clients, settings).network()).task_arn
    due = later(25)
    Watchdog(clients, settings, Dispatcher(clients, settings, now=due), now=due).sweep()
    assert ExecutionStore(clients, settings).get(eid).task_arn == arn
    assert len(tasks_started_by(clients, settings, ex.attempt_token(eid, 3))) == 1


def test_run_task_refused_for_good_is_retried(plane, settings):
    clients, _ = plane
    put_retrying(clients, settings, "r", None, RetryPolicy(attempts=1, backoff_s=10))
    outcome = Dispatcher(clients, settings).dispatch("r", AT)
    assert outcome.status == "retry_wait"
    record = ExecutionStore(clients, settings).get(outcome.execution_id)
    assert (record.status, record.attempt, record.tries[0].status) == \
        ("PENDING", 2, "FAILED_TO_START")
    due = later(11)
    Watchdog(clients, settings, Dispatcher(clients, settings, now=due), now=due).sweep()
    final = ExecutionStore(clients, settings).get(outcome.execution_id)
    assert (final.status, final.attempt) == ("FAILED_TO_START", 2)


# -- the decision, as a table ---------------------------------------------------------------
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TERMS = ex.RetryTerms(retries=3, backoff_s=60, until="2026-01-01T13:00:00.000Z")


def ended(status: str, attempt: int | None = None, terms=TERMS) -> ex.Execution:
    return ex.Execution(execution_id="6f1c2a4e-9b3d-5e7f-8a1b-2c3d4e5f6a7b", cron="r",
                        scheduled_at="2026-01-01T12:00:00.000Z", status=status,
                        attempt=attempt, retry=terms, task_arn="arn:task", version=4,
                        exit_code=1)


@pytest.mark.parametrize(("record", "retry_in_s"), [
    (ended("FAILED"), 60),                                  # attempt 2 after the backoff
    (ended("FAILED", 2), 120),                              # doubling
    (ended("FAILED", 3), 240),
    (ended("FAILED", 4), None),                             # 3 retries made: final
    (ended("FAILED_TO_START"), 60),
    (ended("TIMEOUT"), None),                               # on: [failure]
    (ended("TIMEOUT", terms=replace(TERMS, on_timeout=True)), 60),
    (ended("SUCCESS"), None),
    (ended("LOST"), None),
    (ended("FAILED", 3, replace(TERMS, until="2026-01-01T12:04:00.000Z")), None),  # next run
    (ended("FAILED", 3, replace(TERMS, until=None)), 240),  # concurrency: allow
    (ended("FAILED", 3, replace(TERMS, backoff_s=1800, until=None)), 3600),  # capped
    (ended("FAILED", terms=None), None),                    # no retries
])
def test_after_attempt(record, retry_in_s):
    waiting = retries.after_attempt(record, NOW, 300)
    if retry_in_s is None:
        assert waiting is None
        return
    assert waiting.retry_at == ex.format_time(NOW + timedelta(seconds=retry_in_s))
    assert (waiting.status, waiting.attempt, waiting.task_arn, waiting.version) == \
        ("PENDING", record.attempt_number + 1, None, None)
    assert waiting.tries[-1] == ex.Try(attempt=record.attempt_number, status=record.status,
                                       task_arn="arn:task", exit_code=1)
    assert waiting.start_deadline == ex.format_time(
        NOW + timedelta(seconds=retry_in_s + 300))
