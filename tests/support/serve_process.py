"""`cronctl serve` as a real process, for tests that kill it: started as an operator starts it,
watched through its log lines, killed with SIGKILL or stopped with SIGTERM.

    daemon = ServeProcess(endpoint_url=proxy.url, namespace="chaos", repo=repo_dir,
                          sns_certs=certs_dir).start()      # returns once it listens
    daemon.url, daemon.sns_url, daemon.port, daemon.pid
    daemon.wait_event("dispatch.started", lambda e: e["cron"] == "hello", timeout=10)
    daemon.events("http_request")                          # the JSON log records so far
    daemon.kill9()        # SIGKILL to its process group, reaped; returns the exit status
    daemon.terminate()    # SIGTERM, waits (SIGKILL and fails if it does not end in time)
    daemon.close()        # (also the context manager's exit) kill if running, join the reader

The process runs ``python -m reconciler serve --listen 127.0.0.1:0`` in a session of its own
with ``AWS_ENDPOINT_URL`` set to ``endpoint_url`` (inherited ``CRONCTL_*`` and
``AWS_ENDPOINT_URL*`` variables are removed first), ``CRONCTL_SQS_WAIT_S`` (short polls, so
SIGTERM ends it quickly), ``CRONCTL_SNS_CERTS`` and ``--interval`` (one reconcile pass at start
by default). Its port comes from the ``http_listening`` log record (JSON lines on stderr, since
stderr is not a terminal). stdout and stderr are read on one thread that ends at end of file or
on ``close()``.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.support.waiting import wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


class ServeProcess:
    """One ``cronctl serve`` process; see the module docstring."""

    def __init__(self, *, endpoint_url: str, namespace: str, repo: str | Path,
                 cluster: str | None = None, sns_certs: str | Path | None = None,
                 interval_s: float = 3600, sqs_wait_s: int = 1,
                 env: dict[str, str] | None = None, args: Sequence[str] = (),
                 name: str = "serve") -> None:
        self.endpoint_url = endpoint_url
        self.namespace = namespace
        self.repo = str(repo)
        self.cluster = cluster
        self.sns_certs = None if sns_certs is None else str(sns_certs)
        self.interval_s = interval_s
        self.sqs_wait_s = sqs_wait_s
        self.extra_env = dict(env or {})
        self.extra_args = list(args)
        self.name = name
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.host: str | None = None
        self.lines: list[str] = []          # stderr lines
        self.stdout_lines: list[str] = []
        self.records: list[dict] = []       # stderr lines that are JSON objects
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    # -- start ---------------------------------------------------------------------------

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "reconciler", "serve", "--repo", self.repo,
                   "--namespace", self.namespace, "--listen", "127.0.0.1:0",
                   "--interval", str(self.interval_s)]
        if self.cluster:
            command += ["--cluster", self.cluster]
        return command + self.extra_args

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CRONCTL_", "AWS_ENDPOINT_URL"))}
        env.update({"AWS_ENDPOINT_URL": self.endpoint_url,
                    "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "testing"),
                    "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "testing"),
                    "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                    "CRONCTL_SQS_WAIT_S": str(self.sqs_wait_s), "PYTHONUNBUFFERED": "1"})
        if self.sns_certs:
            env["CRONCTL_SNS_CERTS"] = self.sns_certs
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30.0) -> ServeProcess:
        """Start the process and wait until it listens; fails (and kills it) otherwise."""
        if self.process is not None:
            raise RuntimeError("already started")
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, name=f"serve-output-{self.name}",
                                        daemon=True)
        self._reader.start()
        try:
            listening = self.wait_event("http_listening", timeout=timeout)
        except BaseException:
            self.close()
            raise
        self.host, self.port = listening["host"], int(listening["port"])
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("not listening")
        return f"http://127.0.0.1:{self.port}"

    @property
    def sns_url(self) -> str:
        return f"{self.url}/sns"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    # -- output --------------------------------------------------------------------------

    def _read(self) -> None:
        process = self.process
        selector = selectors.DefaultSelector()
        pending = {}
        for stream, sink in ((process.stdout, self.stdout_lines), (process.stderr, self.lines)):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream.fileno(), selectors.EVENT_READ, sink)
            pending[stream.fileno()] = b""
        try:
            while selector.get_map() and not self._stop.is_set():
                for key, _ in selector.select(timeout=0.1):
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(key.fd)
                        if pending[key.fd]:
                            self._add(key.data, pending[key.fd])
                        continue
                    *complete, pending[key.fd] = (pending[key.fd] + chunk).split(b"\n")
                    for line in complete:
                        self._add(key.data, line)
        finally:
            selector.close()

    def _add(self, sink: list[str], raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        record = None
        if sink is self.lines:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
        with self._lock:
            sink.append(line)
            if isinstance(record, dict):
                self.records.append(record)

    @property
    def output_ended(self) -> bool:
        """True once both pipes reached end of file (the process and its children ended)."""
        return self._reader is not None and not self._reader.is_alive()

    def events(self, name: str | None = None,
               predicate: Callable[[dict], bool] | None = None) -> list[dict]:
        """The JSON log records so far whose ``event`` is ``name`` (any if None)."""
        with self._lock:
            records = list(self.records)
        return [r for r in records if (name is None or r.get("event") == name)
                and (predicate is None or predicate(r))]

    def wait_event(self, name: str, predicate: Callable[[dict], bool] | None = None,
                   timeout: float = 10.0, count: int = 1) -> dict:
        """Wait for the ``count``-th record ``name`` matching ``predicate``; fails at once if
        the process ended without logging it."""
        def found():
            matching = self.events(name, predicate)
            if len(matching) >= count:
                return matching
            if not self.running and self.output_ended:
                raise AssertionError(f"{self.name} ended (status {self.returncode}) without "
                                     f"logging {name!r}:\n{self.describe()}")
            return None
        try:
            return wait_for(found, timeout=timeout, message=f"{self.name}: event {name!r}")[
                count - 1]
        except AssertionError as exc:
            if "without logging" in str(exc):
                raise
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def describe(self, last: int = 40) -> str:
        """The last lines of output, for failure messages."""
        with self._lock:
            lines = self.stdout_lines[-5:] + self.lines[-last:]
        return "\n".join(lines)

    # -- ending --------------------------------------------------------------------------

    def signal(self, sig: int) -> None:
        if self.running:
            self.process.send_signal(sig)

    def kill9(self, timeout: float = 10.0) -> int:
        """SIGKILL the process (and anything in its process group); reaped on return."""
        if self.process is None:
            raise RuntimeError("not started")
        group = self.process.pid               # its own session: group id = its pid
        if self.process.poll() is None:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.process.wait(timeout=timeout)
        wait_for(lambda: not _group_alive(group), timeout=timeout,
                 message=f"process group {group} to be gone")
        return code

    def terminate(self, timeout: float = 35.0) -> int:
        """SIGTERM and wait for the exit status; SIGKILL and fail if it takes longer."""
        if self.process is None:
            raise RuntimeError("not started")
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM:\n"
                                 f"{self.describe()}") from None

    def close(self, timeout: float = 10.0) -> None:
        """Kill the process if it still runs, end the reader thread, close the pipes."""
        if self.process is None:
            return
        if self.process.poll() is None or _group_alive(self.process.pid):
            self.kill9(timeout)
        if self._reader is not None:
            deadline = time.monotonic() + timeout
            self._reader.join(max(0.0, deadline - time.monotonic()))
            if self._reader.is_alive():        # a pipe still open elsewhere: stop reading
                self._stop.set()
                self._reader.join(max(0.5, deadline - time.monotonic()))
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServeProcess:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_exists(pid: int) -> bool:
    """True while a process ``pid`` exists (a zombie counts) on this machine."""
    return Path(f"/proc/{pid}").exists()
