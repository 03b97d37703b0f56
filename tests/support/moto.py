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
    fast_dispatch()  # moto's per-request lookups computed once (what they find is the same)
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


def fast_dispatch() -> None:
    """Two lookups moto's server repeats on every request, computed once per process: the
    list of its service packages (read from its install directory with ``listdir`` and a
    ``stat`` per entry) and the action methods of a response class (``inspect.getmembers``).
    Neither changes while a process runs (moto's install is fixed; the emulator patches
    replace methods, never add actions), so every request is answered exactly as before;
    this is a third of the server's time per request. Idempotent."""
    import inspect

    from moto import backends
    from moto.core import responses, utils

    if getattr(backends.list_of_moto_modules, "_cronctl_cached", False):
        return
    if not (callable(getattr(backends, "list_of_moto_modules", None))
            and callable(getattr(utils, "method_names_from_class", None))):
        return  # another moto: left as it is (slower, never wrong)
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules():
        return modules

    list_of_moto_modules._cronctl_cached = True
    backends.list_of_moto_modules = list_of_moto_modules

    names: dict[type, tuple[str, ...]] = {}

    def method_names_from_class(clazz) -> list[str]:
        if clazz not in names:
            names[clazz] = tuple(x[0] for x in inspect.getmembers(clazz, inspect.isfunction))
        return list(names[clazz])

    utils.method_names_from_class = method_names_from_class
    responses.method_names_from_class = method_names_from_class


def shared_botocore_models() -> None:
    """Every botocore ``Loader`` of this process with the same search paths and extras shares
    one cache of what it loaded (service models, endpoint rules, the list of services).

    Each ``AwsClients`` opens its own boto3 session, and each session its own loader, which
    reads and decodes the same JSON files again: about half the cost of creating a client,
    which tests (and every CLI command they run in process) do again and again. botocore already shares these results between every client of one
    session (``instance_cache``) and treats them as read-only; here every session sees them
    as if it were the same long-lived session. Nothing a client sends or parses changes.
    Idempotent."""
    from botocore import loaders

    if getattr(loaders.Loader.__init__, "_cronctl_shared", False):
        return
    shared: dict[tuple, dict] = {}
    original = loaders.Loader.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if isinstance(getattr(self, "_cache", None), dict):   # else another botocore: as is
            key = (tuple(getattr(self, "_search_paths", ())),
                   tuple(getattr(self, "_extras_types", ())),
                   type(getattr(self, "file_loader", None)))
            self._cache = shared.setdefault(key, {})

    __init__._cronctl_shared = True
    loaders.Loader.__init__ = __init__


def reset_moto(url: str) -> None:
    """Forget every resource the moto server holds."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"moto reset answered {response.status}")
