"""An in-process moto server on loopback, and resetting its state (tests and benchmarks)."""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from reconciler.service.embedded.emulator import atomic_dynamodb, cheap_transactions

REGION = "us-east-1"
# The execution role a test namespace is set up with (bootstrap records one; the plan refuses
# Fargate task definitions without one).
TEST_EXECUTION_ROLE = "arn:aws:iam::123456789012:role/test-task-execution"
_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_DEFAULT_REGION", "AWS_REGION")


@contextmanager
def moto_server(credential: str = "testing") -> Iterator[str]:
    """A moto server on a free loopback port for the duration; yields its URL.

    boto3 is pointed at it (and only at it) through the environment, with fake credentials;
    the previous environment is restored afterwards.
    """
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.ERROR)
    atomic_dynamodb()  # conditional writes atomic, as on AWS (see docs/aws-fidelity.md)
    cheap_transactions()  # a transaction's cost not the size of its tables, as on AWS
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": credential,
                       "AWS_SECRET_ACCESS_KEY": credential, "AWS_DEFAULT_REGION": REGION,
                       "AWS_REGION": REGION})
    try:
        yield url
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reset_moto(url: str) -> None:
    """Forget every resource the moto server holds."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"moto reset answered {response.status}")
