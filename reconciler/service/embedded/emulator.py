"""The in-process AWS emulator (moto in server mode) for ``cronctl serve --embedded``."""

from __future__ import annotations

import logging
import os
import threading

from reconciler.logs import get_logger

log = get_logger("cronctl.embedded")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "embedded",
    "AWS_SECRET_ACCESS_KEY": "embedded",
    "AWS_SESSION_TOKEN": "embedded",
}


_atomic_lock = threading.RLock()
_atomic_patched = False


def atomic_dynamodb() -> None:
    """Make the in-process emulator handle one DynamoDB request at a time (idempotent).

    moto checks a write's condition and then writes with nothing holding other requests off in
    between, so two concurrent conditional writes can both succeed; on AWS a conditional write
    is atomic, and every claim, overlap lock and compare-and-swap of cronctl relies on that."""
    global _atomic_patched
    with _atomic_lock:
        if _atomic_patched:
            return
        from moto.dynamodb.responses import DynamoHandler

        handle = DynamoHandler.call_action

        def call_action(self):
            with _atomic_lock:
                return handle(self)

        DynamoHandler.call_action = call_action
        _atomic_patched = True


class EmbeddedAws:
    """A moto server on a loopback port. Its URL becomes ``Settings.endpoint_url``.

    Credentials are fake and set only in this process, so nothing can reach real AWS.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server = None
        self.url: str | None = None

    def start(self) -> str:
        """Start once (later calls return the running emulator's URL)."""
        if self.url:
            return self.url
        try:
            from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "embedded mode needs moto[server]: pip install 'cronctl[embedded]'") from exc
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per emulator call
        atomic_dynamodb()
        for key, value in FAKE_CREDENTIALS.items():
            os.environ[key] = value
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        log.info("embedded AWS emulator started", url=self.url)
        return self.url

    def stop(self, timeout: float = 5.0) -> bool:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.url = None
        return True
