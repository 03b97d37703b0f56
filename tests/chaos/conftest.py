"""Fixtures of the chaos suite: a fault-injecting proxy in front of the session's moto server,
a prepared namespace, and ``cronctl serve`` processes that talk to AWS through the proxy."""

from __future__ import annotations

import pytest

from tests.chaos.emulator import atomic_dynamodb
from tests.chaos.namespace import ChaosNamespace, prepare_namespace
from tests.support.faultproxy import FaultProxy
from tests.support.serve_process import ServeProcess


@pytest.fixture(autouse=True, scope="session")
def _atomic_dynamodb():
    """Conditional writes atomic in the emulator, as on AWS (see tests/chaos/emulator.py)."""
    atomic_dynamodb()


@pytest.fixture
def proxy(aws):
    """A fault proxy in front of the (reset) moto server, with no rules; stopped after."""
    fault_proxy = FaultProxy(aws).start()
    try:
        yield fault_proxy
    finally:
        assert fault_proxy.stop(), "the fault proxy did not stop in time"


@pytest.fixture
def chaos_ns(aws, tmp_path) -> ChaosNamespace:
    """Namespace ``chaos`` bootstrapped and reconciled with one cron, ``hello``."""
    return prepare_namespace(aws, tmp_path)


@pytest.fixture
def daemon_factory(proxy, chaos_ns):
    """``start(name=None, *, namespace=None, env=None, args=(), interval_s=3600,
    sqs_wait_s=1, timeout=30)``: a ``cronctl serve`` process of the namespace (default
    ``chaos_ns``) whose AWS endpoint is the proxy, started and listening. Every process
    started is killed at teardown."""
    started: list[ServeProcess] = []

    def start(name: str | None = None, *, namespace: ChaosNamespace | None = None,
              env: dict[str, str] | None = None, args=(), interval_s: float = 3600,
              sqs_wait_s: int = 1, timeout: float = 30.0) -> ServeProcess:
        ns = namespace or chaos_ns
        process = ServeProcess(endpoint_url=proxy.url, namespace=ns.name, repo=ns.repo,
                               cluster=ns.settings.cluster_name, sns_certs=ns.certs,
                               interval_s=interval_s, sqs_wait_s=sqs_wait_s, env=env,
                               args=args, name=name or f"serve-{len(started) + 1}")
        started.append(process)
        return process.start(timeout)

    yield start
    for process in started:
        process.close()
