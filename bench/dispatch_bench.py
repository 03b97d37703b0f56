"""Benchmark 2: dispatch latency through the real HTTP endpoint.

The namespace is bootstrapped and ``crons`` crons are reconciled (concurrency ``forbid``, the
default). The daemon's HTTP endpoint and dispatcher (as ``build_daemon`` wires them, with the
in-process moto's SNS certificates) listen on loopback and are subscribed to the topic. Each
measured dispatch is one SNS ``Publish`` of a distinct cron and scheduled time; moto POSTs it to
the endpoint before ``Publish`` returns. Latency: from the publish call to the execution
record holding a task ARN. The dispatcher's own AWS calls are counted on its own clients.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.env import bench_settings, format_counts, percentile, reset, table
from reconciler.adapters import sns
from reconciler.adapters.aws import AwsClients
from reconciler.adapters.executions import ExecutionStore
from reconciler.adapters.moto_sns_certs import moto_cert_fetcher
from reconciler.core.cronfile.snapshot import Snapshot
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.daemon import readiness_check
from reconciler.service.execution.dispatch import Dispatcher
from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier
from tests.support.reconcile_env import cron_yaml
from tests.support.waiting import wait_for

BASE_TIME = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WARM_UP = "warm-up"
RECORD_TIMEOUT_S = 10.0
HTTP_STOP_S = 10.0


@dataclass(frozen=True)
class DispatchRun:
    dispatches: int
    latencies_s: tuple[float, ...]
    calls: dict[str, int]
    warm_up_calls: dict[str, int]
    wall_s: float


def _crons(count: int) -> Snapshot:
    names = [WARM_UP, *(f"tick-{i:04d}" for i in range(count))]
    return Snapshot(commit="d" * 40, files={
        f"crons.d/{name}.yaml": cron_yaml("cron(0 5 * * ? *)", "busybox").encode()
        for name in names})


def _names(count: int) -> list[str]:
    return [f"tick-{i:04d}" for i in range(count)]


def run(url: str, dispatches: int) -> DispatchRun:
    """``dispatches`` publishes, one per cron, after one unmeasured warm-up dispatch."""
    reset(url)
    settings = bench_settings(url, listen="127.0.0.1:0")
    admin = AwsClients(settings)
    infra = bootstrap(admin, settings)
    applied = run_pass(admin, settings, dry_run=False, source=_crons(dispatches))
    if not applied.ok:
        raise RuntimeError(f"reconcile failed: {applied.errors} {applied.apply_errors}")
    daemon_clients = AwsClients(settings)
    dispatcher = Dispatcher(daemon_clients, settings)
    verifier = SnsVerifier(infra.topic_arn, CertificateStore(None, fetch=moto_cert_fetcher))
    http = DaemonHttpServer(
        settings.listen, verifier, on_notification=dispatcher.handle_sns_message,
        on_subscription_confirmation=lambda topic, token: sns.confirm_subscription(
            daemon_clients, topic, token),
        readiness=readiness_check(daemon_clients, settings.registry_table))
    http.start()
    try:
        sns.subscribe_endpoint(admin, infra.topic_arn, f"{http.url}/sns")
        store = ExecutionStore(admin, settings)
        _publish_and_wait(admin, infra.topic_arn, store, WARM_UP, BASE_TIME)
        warm_up_calls = daemon_clients.counter.reset()
        started = time.monotonic()
        latencies = [_publish_and_wait(admin, infra.topic_arn, store, name,
                                       BASE_TIME + timedelta(minutes=i))
                     for i, name in enumerate(_names(dispatches))]
        wall = time.monotonic() - started
        calls = daemon_clients.counter.reset()
    finally:
        if not http.stop(HTTP_STOP_S):
            raise RuntimeError("the HTTP endpoint did not stop in time")
    return DispatchRun(dispatches, tuple(latencies), calls, warm_up_calls, wall)


def _publish_and_wait(clients: AwsClients, topic_arn: str, store: ExecutionStore, cron: str,
                      at: datetime) -> float:
    scheduled_at = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    eid = execution_id(cron, scheduled_at)
    started = time.monotonic()
    sns.publish(clients, topic_arn, json.dumps({"cron": cron, "scheduled_at": scheduled_at}))
    wait_for(lambda: (r := store.get(eid)) is not None and r.task_arn, timeout=RECORD_TIMEOUT_S,
             interval=0.002, message=f"execution {eid} to have a task ARN")
    return time.monotonic() - started


def render(run_: DispatchRun) -> str:
    ms = sorted(x * 1000 for x in run_.latencies_s)
    total = sum(run_.calls.values())
    rows = [[run_.dispatches, f"{percentile(ms, 0.50):.1f}", f"{percentile(ms, 0.95):.1f}",
             f"{ms[-1]:.1f}", f"{run_.dispatches / run_.wall_s:.1f}",
             f"{total / run_.dispatches:.2f}",
             format_counts(run_.calls, per=run_.dispatches)]]
    head = ["dispatches", "p50 ms", "p95 ms", "max ms", "dispatches/s (sequential)",
            "AWS calls per dispatch", "per dispatch by operation"]
    return table(head, rows) + "\n\nOne-time calls of the first (warm-up) dispatch: " \
        + format_counts(run_.warm_up_calls)
