"""Shared fixtures: one moto server (over HTTP) per test session, reset per test;
and a check that no test leaks a thread."""

from __future__ import annotations

import threading

import pytest

from reconciler.settings import Settings
from tests.support.moto import REGION, TEST_EXECUTION_ROLE, reset_moto, shared_botocore_models
from tests.support.moto import moto_server as running_moto_server
from tests.support.waiting import wait_for

# botocore's service models loaded once per process, not once per AwsClients (see there)
shared_botocore_models()

# fixtures shared by several test files
pytest_plugins = ["tests.support.counting"]


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on a free loopback port; its URL. boto3 is pointed at it by env."""
    with running_moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_server):
    """A moto server with no state left by earlier tests; yields its URL."""
    reset_moto(moto_server)
    return moto_server


@pytest.fixture
def settings(aws) -> Settings:
    """Settings for a test namespace against the moto server (with the execution role that
    bootstrap would record: Fargate needs one for awslogs)."""
    return Settings(endpoint_url=aws, region=REGION, namespace="test",
                    execution_role_arn=TEST_EXECUTION_ROLE)


def _ours(thread: threading.Thread) -> bool:
    # moto's server answers each connection on a short-lived handler thread; those are its own.
    return "process_request_thread" not in thread.name and thread.daemon is not None


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread of its own running after it ends."""
    before = set(threading.enumerate())
    yield

    def leaked():
        return [t for t in threading.enumerate() if t not in before and t.is_alive() and _ours(t)]

    try:
        wait_for(lambda: not leaked(), timeout=5.0, message="threads to stop")
    except AssertionError:
        names = ", ".join(t.name for t in leaked())
        pytest.fail(f"test leaked threads: {names}")


@pytest.fixture
def plane(settings):
    """The execution plane's tables, queue, cluster and a task definition; (clients, td ARN)."""
    from reconciler.adapters.aws import AwsClients
    from tests.support.ecs_events import prepare_execution_plane

    clients = AwsClients(settings)
    return clients, prepare_execution_plane(clients, settings)
