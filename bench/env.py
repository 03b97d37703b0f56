"""The benchmark environment: an in-process moto server on loopback, fake credentials, state
reset between runs, machine facts, and Markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from importlib.metadata import version

from reconciler.settings import Settings
from tests.support.moto import moto_server as running_moto_server
from tests.support.moto import reset_moto as reset  # noqa: F401 - the benchmarks' reset

REGION = "us-east-1"
NAMESPACE = "bench"
READ_PREFIXES = ("List", "Get", "Describe", "Scan", "Query", "BatchGet", "Receive")


def moto_server():
    """The shared loopback moto server (``tests/support/moto.py``) with benchmark credentials."""
    return running_moto_server(credential="bench")


def bench_settings(url: str, **changes) -> Settings:
    """Settings of the benchmark namespace against the moto server at ``url``."""
    changes.setdefault("execution_role_arn",
                       f"arn:aws:iam::123456789012:role/{NAMESPACE}-task-execution")
    # The largest rules fleet measured (1000) is past EventBridge's default quota of 300
    # rules, as after a quota increase: the plan would otherwise refuse the new rules.
    changes.setdefault("rules_quota", 100_000)
    return Settings(endpoint_url=url, region=REGION, namespace=NAMESPACE, cluster=NAMESPACE,
                    **changes)


def is_write(operation: str) -> bool:
    """True for an API call that changes state (``service.Operation``)."""
    return not operation.split(".")[-1].startswith(READ_PREFIXES)


def writes(counts: dict[str, int]) -> int:
    return sum(n for op, n in counts.items() if is_write(op))


def format_counts(counts: dict[str, int], per: float = 1.0) -> str:
    """``Operation×n`` sorted by count (descending), e.g. ``ListTargetsByRule×100``."""
    if not counts:
        return "—"
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{op.split('.')[-1]}×{_number(n / per)}" for op, n in items)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (inclusive method); values must be non-empty."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_facts() -> list[str]:
    """Facts about the machine and library versions, one Markdown list line each."""
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True, timeout=5,
                               check=False).stdout.strip()
    except OSError:
        cores = str(os.cpu_count())
    return [f"- nproc: {cores}; {platform.machine()}, {platform.system()} {platform.release()}",
            f"- Python {platform.python_version()}; moto {version('moto')}; "
            f"boto3 {version('boto3')}; botocore {version('botocore')}"]


class CallTimer:
    """Wall time spent inside AWS calls, by ``service.Operation``, through botocore's
    ``before-call``/``after-call`` hooks on the given clients (the request's own context
    carries the start time, so concurrent calls do not mix)."""

    def __init__(self, clients, services: tuple[str, ...]) -> None:
        self.seconds: dict[str, float] = {}
        for service in services:
            events = clients.client(service).meta.events
            events.register("before-call.*.*", self._before)
            events.register("after-call.*.*", self._after)

    @staticmethod
    def _before(context: dict, **_kwargs) -> None:
        context["bench_started"] = time.monotonic()

    def _after(self, event_name: str, context: dict, **_kwargs) -> None:
        started = context.pop("bench_started", None)
        if started is not None:
            key = ".".join(event_name.split(".")[1:3])
            self.seconds[key] = self.seconds.get(key, 0.0) + time.monotonic() - started
