"""boto3 plumbing shared by the per-service adapters.

- ``AwsClients`` makes one client per service, lazily, from the settings.
- ``CallCounter`` counts API calls per ``service.Operation`` through botocore's event hooks.
- ``translate`` turns a ``ClientError`` into our transient / permanent errors;
  ``retrying`` is the one place where transient errors are retried (tenacity), and
  botocore's own retries are set to a single attempt so attempts don't multiply.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import boto3
import botocore.config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from tenacity import (
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from reconciler.errors import Conflict, NotFound, PermanentError, TransientError
from reconciler.settings import Settings

T = TypeVar("T")

TRANSIENT_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "RequestThrottled",
    "RequestThrottledException", "SlowDown", "ServiceUnavailable", "ServiceUnavailableException",
    "InternalError", "InternalFailure", "InternalServerError", "InternalServerException",
    "ServerException", "LimitExceededException", "TransactionInProgressException",
    "ConcurrentModificationException", "ClientException.Throttling",
}
NOT_FOUND_CODES = {
    "ResourceNotFoundException", "NotFoundException", "NotFound", "NoSuchEntity",
    "ClusterNotFoundException", "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
}
CONFLICT_CODES = {
    "ConditionalCheckFailedException", "ConflictException", "ResourceAlreadyExistsException",
    "TransactionCanceledException", "ResourceInUseException",
}

NETWORK_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                  ConnectionClosedError)


CONFIGURATION_ERRORS = (NoCredentialsError, PartialCredentialsError, NoRegionError)


def translate(exc: Exception) -> Exception:
    """Map a botocore exception to TransientError / NotFound / Conflict / PermanentError."""
    if isinstance(exc, CONFIGURATION_ERRORS):
        return PermanentError(f"AWS is not configured: {exc} (set credentials and a region "
                              "the usual boto3 way, e.g. AWS_PROFILE or AWS_ACCESS_KEY_ID, "
                              "and AWS_REGION)", "Configuration")
    if isinstance(exc, NETWORK_ERRORS):
        return TransientError(str(exc))
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = f"{exc.operation_name}: {code}: {err.get('Message', '')}"
        if code in TRANSIENT_CODES or status >= 500 or status == 429:
            return TransientError(message)
        if code in NOT_FOUND_CODES:
            return NotFound(message, code)
        if code in CONFLICT_CODES:
            return Conflict(message, code)
        return PermanentError(message, code)
    return exc


def call(fn: Callable[..., T], *args, **kwargs) -> T:
    """Call a boto3 operation, translating its errors (no retry here)."""
    try:
        return fn(*args, **kwargs)
    except (ClientError, *NETWORK_ERRORS, *CONFIGURATION_ERRORS) as exc:
        raise translate(exc) from exc


def retrying(attempts: int = 5, max_wait: float = 8.0):
    """Decorator: retry ``TransientError`` with jittered exponential backoff."""
    return retry(
        retry=retry_if_exception_type(TransientError),
        wait=wait_random_exponential(multiplier=0.2, max=max_wait),
        stop=stop_after_attempt(attempts),
        reraise=True,
    )


def call_retrying(fn: Callable[..., T], *args, **kwargs) -> T:
    """``call`` with transient errors retried; the common case for adapters."""
    return retrying()(call)(fn, *args, **kwargs)


class CallCounter:
    """Counts AWS API calls by ``service.Operation``; thread-safe; resettable per unit of work.

    Clients are shared by the daemon's threads, so a unit of work that wants its own count
    (a reconcile pass) uses ``scope()``: it counts only the calls made on the current thread
    (botocore runs ``before-call`` hooks on the calling thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._local = threading.local()

    def hook(self, event_name: str, **_kwargs) -> None:
        # event_name: "before-call.<service>.<Operation>"
        parts = event_name.split(".")
        key = ".".join(parts[1:3]) if len(parts) >= 3 else event_name
        with self._lock:
            self._counts[key] += 1
        for scoped in getattr(self._local, "scopes", ()):
            scoped[key] += 1

    @contextmanager
    def scope(self) -> Iterator[Counter[str]]:
        """Count, in the yielded Counter, the calls this thread makes inside the block."""
        scopes = self._local.__dict__.setdefault("scopes", [])
        counts: Counter[str] = Counter()
        scopes.append(counts)
        try:
            yield counts
        finally:
            scopes.remove(counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> dict[str, int]:
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts


class AwsClients:
    """One lazily created boto3 client per service, all counted by ``counter``."""

    def __init__(self, settings: Settings, counter: CallCounter | None = None) -> None:
        self.settings = settings
        self.counter = counter or CallCounter()
        self._session = boto3.session.Session(region_name=settings.region)
        self._clients: dict[str, object] = {}
        self._identity: tuple[str, str] | None = None
        self._lock = threading.Lock()
        self._config = botocore.config.Config(
            retries={"max_attempts": 1, "mode": "standard"},  # tenacity retries, not botocore
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
        )

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                kwargs = {"config": self._config}
                if self.settings.endpoint_url:
                    kwargs["endpoint_url"] = self.settings.endpoint_url
                client = self._session.client(service, **kwargs)
                client.meta.events.register("before-call.*.*", self.counter.hook)
                self._clients[service] = client
            return self._clients[service]

    def identity(self) -> tuple[str, str]:
        """``(partition, account)`` of the caller, asked once per ``AwsClients``
        (credentials don't change account)."""
        with self._lock:
            cached = self._identity
        if cached is None:
            answer = call_retrying(self.client("sts").get_caller_identity)
            cached = (answer["Arn"].split(":")[1], answer["Account"])
            with self._lock:
                self._identity = cached
        return cached

    def account_id(self) -> str:
        return self.identity()[1]
