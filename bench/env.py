"""The benchmark environment: a moto server in its own process on a free loopback port, fake
credentials, state reset between benchmarks, client-side call counting and timing (botocore
hooks), raw boto3 clients for the floors, result rows, machine facts and Markdown tables.

Everything is bounded: the server's start is waited for with a deadline, it is stopped (then
killed) at the end, and nothing but loopback is contacted.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version

import boto3
import botocore.config

from reconciler.core.quotas import NAMES as API_RATE_NAMES
from reconciler.settings import Settings

REGION = "us-east-1"
NAMESPACE = "bench"
CREDENTIAL = "bench"
READ_PREFIXES = ("List", "Get", "Describe", "Scan", "Query", "BatchGet", "Receive")
SERVER_START_S = 60.0   # deadline for the moto process to answer
SERVER_STOP_S = 10.0    # SIGTERM, then SIGKILL after this
_ENV_KEYS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_DEFAULT_REGION", "AWS_REGION")


# -- the moto server, in its own process -----------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_command(port: int) -> list[str]:
    """moto's server with the emulator adjustments the tests and the embedded mode use
    (``bench/moto_server.py``: DynamoDB requests atomic, transactions costing what their
    items cost), run by this interpreter."""
    return [sys.executable, "-m", "bench.moto_server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class MotoProcess:
    url: str
    pid: int
    command: list[str]


@contextmanager
def moto_server() -> Iterator[MotoProcess]:
    """A moto server in a subprocess on a free loopback port, for the duration.

    boto3 in this process (and in children started with ``os.environ``) is pointed at it, and
    only at it, with fake credentials; the environment is restored afterwards."""
    log = tempfile.NamedTemporaryFile(prefix="bench-moto-", suffix=".log", delete=False)
    proc, url, command = None, "", []
    try:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            port = _free_port()
            command = moto_command(port)
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + SERVER_START_S
            while time.monotonic() < deadline and proc.poll() is None and not _answers(url):
                time.sleep(0.1)
            if proc.poll() is None and _answers(url):
                break
            _stop(proc)
            proc = None
        if proc is None:
            raise RuntimeError(f"moto server did not start within {SERVER_START_S:.0f} s "
                               f"({' '.join(command)}; log: {log.name})")
        saved = {k: os.environ.get(k) for k in _ENV_KEYS}
        os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": CREDENTIAL,
                           "AWS_SECRET_ACCESS_KEY": CREDENTIAL, "AWS_DEFAULT_REGION": REGION,
                           "AWS_REGION": REGION})
        try:
            yield MotoProcess(url, proc.pid, command)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    finally:
        if proc is not None:
            _stop(proc)
        log.close()
        os.unlink(log.name)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(SERVER_STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(SERVER_STOP_S)


def reset(url: str) -> None:
    """Forget every resource the moto server holds."""
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            raise RuntimeError(f"moto reset answered {response.status}")


def bench_settings(url: str, **changes) -> Settings:
    """Settings of the benchmark namespace against the moto server at ``url``."""
    namespace = changes.pop("namespace", NAMESPACE)
    changes.setdefault("execution_role_arn",
                       f"arn:aws:iam::123456789012:role/{namespace}-task-execution")
    # The largest rules fleets measured are past EventBridge's default quota of 300 rules, as
    # after a quota increase: the plan would otherwise refuse the new rules.
    changes.setdefault("rules_quota", 100_000)
    # moto never throttles: its passes are not paced (raised rates), so the rows measure
    # cronctl's own work against floors replayed without pacing; the apply under AWS's
    # quotas is the SIMULATED ``apply.simulated_quota`` row (bench/quota_sim.py).
    changes.setdefault("api_rates", tuple(f"{name}=100000/100000" for name in API_RATE_NAMES))
    return Settings(endpoint_url=url, region=REGION, namespace=namespace, cluster=namespace,
                    **changes)


# -- raw boto3 for the floors, and call recording ------------------------------------------

_RAW_CONFIG = botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                     connect_timeout=5, read_timeout=60,
                                     max_pool_connections=64)


def raw_client(url: str, service: str):
    """A plain boto3 client on the moto server: what the floors are measured with."""
    return boto3.session.Session(region_name=REGION).client(
        service, endpoint_url=url, config=_RAW_CONFIG, aws_access_key_id=CREDENTIAL,
        aws_secret_access_key=CREDENTIAL)


def _key(event_name: str) -> str:
    parts = event_name.split(".")
    return ".".join(parts[1:3]) if len(parts) >= 3 else event_name


class CallLog:
    """Every call made on the given clients, in order: (``service.Operation``, params, seconds
    inside the call), through botocore's ``before-parameter-build``/``before-call``/
    ``after-call`` hooks. ``keep_params`` keeps a deep copy of each call's parameters (the
    floors replay them). Thread-safe enough for the benchmarks: list appends are atomic."""

    def __init__(self, clients, services: tuple[str, ...], keep_params: bool = False) -> None:
        self.keep_params = keep_params
        self.calls: list[tuple[str, dict | None, float]] = []
        self.starts: list[tuple[str, float]] = []  # (operation, monotonic start) per call
        self.recording = True
        for service in services:
            events = clients.client(service).meta.events
            events.register("before-parameter-build.*.*", self._params)
            events.register("before-call.*.*", self._before)
            events.register("after-call.*.*", self._after)

    def _params(self, params: dict, context: dict | None = None, **_kwargs) -> None:
        if self.keep_params and context is not None:
            context["bench_params"] = copy.deepcopy(params)

    def _before(self, event_name: str, context: dict, **_kwargs) -> None:
        context["bench_started"] = now = time.monotonic()
        if self.recording:
            self.starts.append((_key(event_name), now))

    def _after(self, event_name: str, context: dict, **_kwargs) -> None:
        started = context.pop("bench_started", None)
        if started is not None and self.recording:
            self.calls.append((_key(event_name), context.pop("bench_params", None),
                               time.monotonic() - started))

    def take(self) -> list[tuple[str, dict | None, float]]:
        calls, self.calls, self.starts = self.calls, [], []
        return calls


def counts(calls) -> dict[str, int]:
    return dict(sorted(Counter(op for op, *_ in calls).items()))


def timed_calls(calls: list, run) -> float:
    """Wall seconds of ``run(op, params)`` over ``calls`` (floor replays)."""
    started = time.monotonic()
    for op, params, *_ in calls:
        run(op, params)
    return time.monotonic() - started


# -- rows ------------------------------------------------------------------------------------

@dataclass
class Row:
    """One result row of ``bench/results.json``."""

    name: str
    n: int
    wall_s: float
    aws_calls: int
    calls_by_operation: dict[str, int]
    floor_calls: int
    floor_wall_s: float
    floor_definition: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"name": self.name, "n": self.n, "wall_s": round(self.wall_s, 4),
               "aws_calls": self.aws_calls, "calls_by_operation": self.calls_by_operation,
               "floor_calls": self.floor_calls, "floor_wall_s": round(self.floor_wall_s, 4),
               "floor_definition": self.floor_definition}
        out.update(self.extra)
        return out


def row(name: str, n: int, wall_s: float, calls: dict[str, int], floor_calls: int,
        floor_wall_s: float, floor_definition: str, **extra) -> Row:
    return Row(name, n, wall_s, sum(calls.values()), dict(sorted(calls.items())), floor_calls,
               floor_wall_s, floor_definition, extra)


# -- formatting and facts -------------------------------------------------------------------

def is_write(operation: str) -> bool:
    """True for an API call that changes state (``service.Operation``)."""
    return not operation.split(".")[-1].startswith(READ_PREFIXES)


def writes(calls: dict[str, int]) -> int:
    return sum(n for op, n in calls.items() if is_write(op))


def format_counts(calls: dict[str, int], per: float = 1.0) -> str:
    """``Operation×n`` sorted by count (descending), e.g. ``ListTargetsByRule×100``."""
    if not calls:
        return "—"
    items = sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{op.split('.')[-1]}×{_number(n / per)}" for op, n in items)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (inclusive method); values must be non-empty."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def pages(items: int, per_page: int) -> int:
    return max(1, math.ceil(items / per_page))


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def machine_facts() -> dict[str, str]:
    """Facts about the machine and library versions."""
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True, timeout=5,
                               check=False).stdout.strip()
    except OSError:
        cores = str(os.cpu_count())
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"nproc": cores, "loadavg": load_average(), "machine": f"{platform.machine()}, {platform.system()} "
            f"{platform.release()}", "memory": mem, "python": platform.python_version(),
            "moto": version("moto"), "boto3": version("boto3"),
            "botocore": version("botocore")}


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine while measuring)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def scratch_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
