"""The daemon's HTTP endpoint alone, for the webhook tests: servers on free ports with stand-in
callbacks, stopped (and checked stopped) afterwards, and a stand-in for the reconcile trigger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from reconciler.service.http.server import DaemonHttpServer
from reconciler.service.http.sns_verify import CertificateStore, SnsVerifier
from tests.support.sns import CountingFetch

TOPIC = "arn:aws:sns:us-east-1:123456789012:test-dispatch"


class Trigger:
    """Stands for ``ReconcileLoop.trigger``: counts calls, or fails when told to."""

    def __init__(self, error: Exception | None = None) -> None:
        self.calls = 0
        self.error = error

    def __call__(self) -> None:
        if self.error is not None:
            raise self.error
        self.calls += 1


@contextmanager
def endpoint_servers() -> Iterator:
    """``start(**kwargs)`` starts a server on a free port; all are stopped on exit."""
    started: list[DaemonHttpServer] = []

    def start(**kwargs) -> DaemonHttpServer:
        verifier = SnsVerifier(TOPIC, CertificateStore(None, fetch=CountingFetch()))
        server = DaemonHttpServer("127.0.0.1:0", verifier, lambda m: (200, "started"),
                                  lambda topic, token: None, lambda: (True, "ready"), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        assert server.stop(timeout=10)
