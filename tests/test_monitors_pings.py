"""Pings of a run's monitor: the start ping from dispatch, the finish ping of a terminal run,
each with the execution id as the run id, sent in the background so that a down or slow
monitoring service neither slows nor fails a dispatch."""

from __future__ import annotations

import time

import pytest

from reconciler.core.executions import records as ex
from reconciler.core.registry_model import RegistryItem
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.metrics import Metrics
from reconciler.service.monitoring.pings import Pinger
from tests.support.ecs_events import put_cron
from tests.support.fakes.cronitor import FakeCronitor
from tests.support.fakes.healthchecks import FakeHealthchecks
from tests.support.specs import make_spec
from tests.support.waiting import wait_for

AT = "2018-02-26T13:50:00Z"
KEYS = {"cronitor": "cronitor-key", "healthchecks": "hc-key"}


@pytest.fixture(params=["cronitor", "healthchecks"])
def fake(request):
    service = FakeCronitor() if request.param == "cronitor" else FakeHealthchecks()
    service.provider = request.param
    yield service
    service.stop()


def monitor_of(fake) -> tuple[str, str | None]:
    """A monitor of cron ``hello`` at the fake: (id, ping URL)."""
    if fake.provider == "cronitor":
        return fake.add_monitor(key="test-hello", tags=["cronctl", "cronctl-ns:test"]), None
    uid = fake.add_check(slug="test-hello", tags="cronctl cronctl-ns-test")
    return uid, f"{fake.url}/{uid}"


def monitor_settings(settings, fake, timeout_s: float = 3.0):
    return settings.with_(monitor=fake.provider, monitor_ping_url=fake.url,
                          monitor_url=fake.url, monitor_api_key=KEYS[fake.provider],
                          notify_timeout_s=timeout_s)


def give_monitor(clients, settings, name: str, provider: str, monitor_id: str,
                 ping_url: str | None) -> None:
    values = {":p": {"S": provider}, ":i": {"S": monitor_id}}
    expression = "SET monitor_provider = :p, monitor_id = :i"
    if ping_url:
        values[":u"] = {"S": ping_url}
        expression += ", monitor_ping_url = :u"
    clients.client("dynamodb").update_item(
        TableName=settings.registry_table, Key={"name": {"S": name}},
        UpdateExpression=expression, ExpressionAttributeValues=values)


@pytest.fixture
def pinger_of():
    made = []

    def make(settings, **kwargs):
        metrics = Metrics(process=False)
        pinger = Pinger(settings, metrics, **kwargs)
        pinger.sender.start()
        made.append(pinger)
        return pinger, metrics

    yield make
    for pinger in made:
        assert pinger.sender.stop(5)


def pings(fake) -> list:
    return fake.telemetry() if fake.provider == "cronitor" else fake.pings()


def count(metrics: Metrics, kind: str, result: str) -> float:
    return metrics.registry.get_sample_value("cronctl_monitor_pings_total",
                                             {"kind": kind, "result": result})


def test_a_dispatch_sends_a_start_ping_with_the_execution_id_as_run_id(plane, settings, fake,
                                                                      pinger_of):
    clients, td = plane
    settings = monitor_settings(settings, fake)
    monitor_id, ping_url = monitor_of(fake)
    put_cron(clients, settings, "hello", td)
    give_monitor(clients, settings, "hello", fake.provider, monitor_id, ping_url)
    pinger, metrics = pinger_of(settings)
    outcome = Dispatcher(clients, settings, pinger=pinger).dispatch("hello", AT)
    eid = ex.execution_id("hello", AT)
    assert (outcome.status, outcome.execution_id) == ("started", eid)
    [ping] = wait_for(lambda: pings(fake), message="the start ping")
    assert ping.method == "GET"
    if fake.provider == "cronitor":
        assert ping.path == f"/p/cronitor-key/{monitor_id}"
        assert (ping.one("state"), ping.one("series")) == ("run", eid)
    else:
        assert ping.path == f"/{monitor_id}/start" and ping.one("rid") == eid
    wait_for(lambda: count(metrics, "start", "ok") == 1, message="the ping counted")


def test_the_finish_of_a_failed_run_sends_its_exit_code_duration_and_run_id(settings, fake,
                                                                            pinger_of):
    settings = monitor_settings(settings, fake)
    monitor_id, ping_url = monitor_of(fake)
    item = RegistryItem(name="hello", spec=make_spec("hello"), spec_hash="h",
                        file="crons.d/hello.yaml", schedule_backend="rules",
                        monitor_provider=fake.provider, monitor_id=monitor_id,
                        monitor_ping_url=ping_url)
    eid = ex.execution_id("hello", AT)
    run = ex.Execution(execution_id=eid, cron="hello", scheduled_at=AT, status="FAILED",
                       exit_code=2, started_at="2018-02-26T13:50:05.000Z",
                       stopped_at="2018-02-26T13:52:08.400Z")
    pinger, metrics = pinger_of(settings)
    pinger.finish(item, run)
    [ping] = wait_for(lambda: pings(fake), message="the finish ping")
    if fake.provider == "cronitor":
        assert ping.path == f"/p/cronitor-key/{monitor_id}"
        assert (ping.one("state"), ping.one("status_code"), ping.one("series"),
                ping.one("metric")) == ("fail", "2", eid, "duration:123.4")
        assert ping.one("message") == "duration=123.4s status=FAILED exit_code=2"
    else:
        assert (ping.method, ping.path, ping.one("rid")) == ("POST", f"/{monitor_id}/2", eid)
        assert ping.body == b"duration=123.4s status=FAILED exit_code=2"
    fake.clear()
    pinger.finish(item, ex.Execution(execution_id=eid, cron="hello", scheduled_at=AT,
                                     status="TIMEOUT", exit_code=None))
    pinger.finish(item, ex.Execution(execution_id=eid, cron="hello", scheduled_at=AT,
                                     status="SUCCESS", exit_code=0))
    pinger.finish(item, ex.Execution(execution_id=eid, cron="hello", scheduled_at=AT,
                                     status="LOST"))
    sent = wait_for(lambda: len(pings(fake)) == 3 and pings(fake), message="three pings")
    if fake.provider == "cronitor":
        assert [(p.one("state"), p.one("status_code")) for p in sent] == [
            ("fail", "124"), ("complete", "0"), ("fail", None)]
    else:
        assert [p.path for p in sent] == [f"/{monitor_id}/124", f"/{monitor_id}",
                                          f"/{monitor_id}/fail"]
    wait_for(lambda: count(metrics, "finish", "ok") == 4, message="four finish pings counted")


def test_skipped_runs_and_crons_without_monitor_ping_nothing(settings, fake, pinger_of):
    settings = monitor_settings(settings, fake)
    monitor_id, ping_url = monitor_of(fake)
    pinger, metrics = pinger_of(settings)
    spec = make_spec("hello")
    with_monitor = RegistryItem(name="hello", spec=spec, spec_hash="h", file="f",
                                schedule_backend="rules", monitor_provider=fake.provider,
                                monitor_id=monitor_id, monitor_ping_url=ping_url)
    without = RegistryItem(name="hello", spec=spec, spec_hash="h", file="f",
                           schedule_backend="rules")
    skipped = ex.Execution(execution_id="e", cron="hello", scheduled_at=AT, status="SKIPPED")
    done = ex.Execution(execution_id="e", cron="hello", scheduled_at=AT, status="SUCCESS")
    pinger.start(with_monitor, skipped)
    pinger.finish(with_monitor, skipped)
    pinger.start(without, done)
    pinger.finish(without, done)
    assert pinger.sender.pending() == 0
    assert pings(fake) == []
    assert count(metrics, "start", "ok") == count(metrics, "finish", "ok") == 0


@pytest.mark.parametrize("mode", ["down", "slow", "500"])
def test_a_failing_monitoring_service_neither_slows_nor_fails_a_dispatch(plane, settings, fake,
                                                                        pinger_of, mode):
    clients, td = plane
    settings = monitor_settings(settings, fake, timeout_s=4.0)
    monitor_id, ping_url = monitor_of(fake)
    put_cron(clients, settings, "hello", td)
    give_monitor(clients, settings, "hello", fake.provider, monitor_id, ping_url)
    fake.fail(mode, slow_s=30)
    pinger, metrics = pinger_of(settings)
    dispatcher = Dispatcher(clients, settings, pinger=pinger)
    started = time.monotonic()
    outcome = dispatcher.dispatch("hello", AT)
    elapsed = time.monotonic() - started
    assert outcome.status == "started" and outcome.task_arn
    assert elapsed < settings.notify_timeout_s  # a synchronous ping would take the timeout
    wait_for(lambda: count(metrics, "start", "failed") == 1, timeout=15,
             message="the failed ping counted")
    if fake.provider == "healthchecks" and mode == "500":
        assert len(fake.pings()) == 1  # one attempt, no retry storm


def test_a_full_queue_drops_and_counts(settings, fake):
    settings = monitor_settings(settings, fake)
    metrics = Metrics(process=False)
    pinger = Pinger(settings, metrics, capacity=1)  # its sender is not started
    monitor_id, ping_url = monitor_of(fake)
    item = RegistryItem(name="hello", spec=make_spec("hello"), spec_hash="h", file="f",
                        schedule_backend="rules", monitor_provider=fake.provider,
                        monitor_id=monitor_id, monitor_ping_url=ping_url)
    run = ex.Execution(execution_id="e", cron="hello", scheduled_at=AT)
    pinger.start(item, run)
    pinger.start(item, run)
    assert pinger.sender.pending() == 1
    assert count(metrics, "start", "dropped") == 1
