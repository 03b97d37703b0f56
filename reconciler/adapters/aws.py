"""boto3 plumbing shared by the per-service adapters.

- ``AwsClients`` makes one client per service, lazily, from the settings.
- ``CallCounter`` counts API calls per ``service.Operation`` through botocore's event hooks,
  and tells listeners (the daemon's metrics) of each call and each throttled answer.
- Every client's ``before-call`` first waits for the call's token when the caller paces its
  calls (``reconciler.adapters.pacing``: the apply does).
- ``translate`` turns a ``ClientError`` into our transient / permanent errors: throttling,
  HTTP 429 and 5xx are transient; a reached service quota is ``QuotaExceeded`` (permanent),
  with a message naming the quota and the way out; ``retrying`` is the one place where
  transient errors are retried (tenacity), and botocore makes a single attempt per call
  (``total_max_attempts=1``) so attempts don't multiply.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
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

from reconciler.adapters import pacing
from reconciler.errors import Conflict, NotFound, PermanentError, QuotaExceeded, TransientError
from reconciler.settings import Settings

T = TypeVar("T")

# Throttling: the caller's request rate. ``RequestLimitExceeded`` is EC2's and DynamoDB's
# throttling (a request rate), not a quota on resources.
THROTTLING_CODES = {
    "Throttling", "ThrottlingException", "ThrottledException", "Throttled",
    "TooManyRequestsException", "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "RequestThrottled", "RequestThrottledException", "KMSThrottling", "KMSThrottlingException",
    "KmsThrottled", "SlowDown", "ClientException.Throttling",
}
# Throttling and server-side trouble.
TRANSIENT_CODES = THROTTLING_CODES | {
    "ServiceUnavailable", "ServiceUnavailableException",
    "InternalError", "InternalFailure", "InternalServerError", "InternalServerException",
    "ServerException", "TransactionInProgressException", "ConcurrentModificationException",
}
# A service quota is reached: retrying will not help. EventBridge, ECS, DynamoDB and CloudWatch
# Logs say ``LimitExceededException``, EventBridge Scheduler ``ServiceQuotaExceededException``,
# SNS ``TopicLimitExceeded`` / ``SubscriptionLimitExceeded`` / ``TagLimitExceeded``..., SQS
# ``OverLimit``, IAM ``LimitExceeded``, SageMaker ``ResourceLimitExceeded``; any other
# ``...LimitExceeded[Exception]`` / ``...QuotaExceeded[Exception]`` code is read the same way.
QUOTA_CODES = {
    "LimitExceededException", "LimitExceeded", "ResourceLimitExceeded",
    "ResourceLimitExceededException", "ServiceQuotaExceededException", "ServiceQuotaExceeded",
    "QuotaExceededException", "SubscriptionLimitExceeded", "TopicLimitExceeded",
    "FilterPolicyLimitExceeded", "TagLimitExceeded", "OverLimit",
    "AttributeLimitExceededException", "ItemCollectionSizeLimitExceededException",
}
_QUOTA_CODE = re.compile(r"[A-Za-z.]*(Limit|Quota)Exceeded(Exception)?")
# Quota-looking answers that are about a rate or concurrent operations, which pass: DynamoDB's
# "Only 10 tables can be created, updated, or deleted simultaneously" (LimitExceededException),
# ECS's "Too many concurrent attempts to create a new revision" (ClientException).
_RATE_HINTS = ("rate exceeded", "request rate", "throttl", "too many requests",
               "simultaneously", "too many concurrent")
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
        text = err.get("Message", "") or ""
        message = f"{exc.operation_name}: {code}: {text}"
        if code in TRANSIENT_CODES or is_throttling(code, status, text):
            return TransientError(message)
        if is_quota_code(code) or _is_ecs_quota(exc.operation_name, code, text):
            return quota_exceeded(exc.operation_name, code, text)
        if status >= 500:
            return TransientError(message)
        if code in NOT_FOUND_CODES:
            return NotFound(message, code)
        if code in CONFLICT_CODES:
            return Conflict(message, code)
        return PermanentError(message, code)
    return exc


def is_throttling(code: str, status: int, text: str) -> bool:
    """Whether an AWS error answer throttles the caller (a request rate; transient)."""
    return code in THROTTLING_CODES or status == 429 or _is_rate(code, text)


def is_quota_code(code: str) -> bool:
    """Whether an AWS error code says a service quota is reached (not a request rate)."""
    if code in TRANSIENT_CODES:
        return False
    return code in QUOTA_CODES or bool(_QUOTA_CODE.fullmatch(code))


# ECS answers a reached task definition quota with a ClientException (its message says so);
# its other ClientExceptions are invalid requests.
_ECS_QUOTA_HINTS = ("too many revisions", "revisions per", "quota", "limit exceeded",
                    "maximum number of")


def _is_ecs_quota(operation: str, code: str, text: str) -> bool:
    lowered = text.lower()
    return (code == "ClientException" and operation == "RegisterTaskDefinition"
            and any(hint in lowered for hint in _ECS_QUOTA_HINTS)
            and not any(hint in lowered for hint in _RATE_HINTS))


def _is_rate(code: str, text: str) -> bool:
    if not (is_quota_code(code) or code == "ClientException"):
        return False
    lowered = text.lower()
    return any(hint in lowered for hint in _RATE_HINTS)


_INCREASE = "request an increase in Service Quotas"
# The quota an error code names, whatever the operation.
_QUOTAS_BY_CODE: dict[str, tuple[str, str]] = {
    "TopicLimitExceeded": (
        "the account's Amazon SNS topics quota (100,000 standard topics per Region by default)",
        f"{_INCREASE}, or delete topics no longer used"),
    "SubscriptionLimitExceeded": (
        "the Amazon SNS subscriptions quota (12,500,000 per standard topic by default)",
        f"{_INCREASE}, or delete subscriptions no longer used"),
    "FilterPolicyLimitExceeded": (
        "the account's Amazon SNS filter policies quota",
        f"{_INCREASE}, or remove filter policies no longer used"),
    "TagLimitExceeded": (
        "the resource's tags quota (50 tags)",
        "remove tags that are not needed (this quota cannot be raised)"),
    "ItemCollectionSizeLimitExceededException": (
        "the DynamoDB item collection size quota (10 GB per partition key value with a local "
        "secondary index)", "remove items under that partition key (this quota cannot be "
        "raised)"),
    "AttributeLimitExceededException": (
        "the Amazon ECS custom attributes quota (10 per resource)",
        "remove attributes no longer used (this quota cannot be raised)"),
}
# The quota an operation's quota error names.
_SCHEDULES = ("the account's EventBridge Scheduler schedules quota (per Region)",
              f"{_INCREASE} (service EventBridge Scheduler, quota 'Number of schedules'), or "
              "delete schedules no longer used")
_QUOTAS_BY_OPERATION: dict[str, tuple[str, str]] = {
    "PutRule": ("the event bus's rules quota (300 by default, 100 in some Regions)",
                f"{_INCREASE} (service Amazon EventBridge, quota 'Number of rules'), or use "
                "the scheduler backend (--scheduler scheduler)"),
    "PutTargets": ("the rule's targets quota (5 targets per rule)",
                   "remove targets that cronctl did not add (this quota cannot be raised)"),
    "CreateSchedule": _SCHEDULES,
    "UpdateSchedule": _SCHEDULES,
    "CreateScheduleGroup": (
        "the account's EventBridge Scheduler schedule groups quota (500 per Region by default)",
        f"{_INCREASE}, or delete schedule groups no longer used"),
    "RegisterTaskDefinition": (
        "an Amazon ECS task definition quota (such as revisions per task definition family)",
        f"{_INCREASE} (service Amazon Elastic Container Service, quota 'Revisions per task "
        "definition family'), or deregister and delete task definition revisions no longer "
        "used"),
    "CreateCluster": ("the account's Amazon ECS clusters quota (per Region)",
                      f"{_INCREASE}, or delete clusters no longer used"),
    "CreateTable": ("the account's DynamoDB tables quota (2,500 per Region by default)",
                    f"{_INCREASE}, or delete tables no longer used"),
    "CreateTopic": _QUOTAS_BY_CODE["TopicLimitExceeded"],
    "Subscribe": _QUOTAS_BY_CODE["SubscriptionLimitExceeded"],
    "ReceiveMessage": (
        "the queue's in-flight messages quota (about 120,000 for a standard queue)",
        "let the messages received but not yet deleted be deleted or become visible again "
        "(this quota cannot be raised)"),
    "CreateLogGroup": ("the account's CloudWatch Logs log groups quota (per Region)",
                       f"{_INCREASE}, or delete log groups no longer used"),
    "TagResource": _QUOTAS_BY_CODE["TagLimitExceeded"],
}


def quota_exceeded(operation: str, code: str, text: str) -> QuotaExceeded:
    """The ``QuotaExceeded`` for an AWS quota error: which quota is reached (named as well as the
    operation, the code and AWS's message allow) and the way out."""
    quota, way_out = _QUOTAS_BY_CODE.get(code) or _QUOTAS_BY_OPERATION.get(operation) or (
        f"a service quota of {operation}",
        f"{_INCREASE} for the quota named in AWS's message, or free up what counts against "
        "it")
    if "tables per" in text.lower():  # DynamoDB: "There is a limit of 2500 tables per ..."
        quota, way_out = _QUOTAS_BY_OPERATION["CreateTable"]
    detail = f" ({code}: {text})" if text else f" ({code})"
    return QuotaExceeded(f"{operation}: {quota} is reached: {way_out}{detail}", code, quota,
                         operation)


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
    (a reconcile pass) uses ``scope()``: it counts only the calls made in the current context
    (botocore runs ``before-call`` hooks on the calling thread, in its context): on this
    thread, and on the threads that run work in a copy of it (``contextvars.copy_context``:
    the apply's workers); a thread started plainly starts with an empty context.

    ``on_call(key)`` is told of every call (attempt: botocore makes one per call, and each
    retry of ``retrying`` is a call of its own) and ``on_throttle(key)`` of every answer that
    throttles (``is_throttling``), from botocore's ``after-call`` hook, which sees each
    attempt's answer once, however the caller handles the error. A failing listener never
    fails the AWS call."""

    def __init__(self, on_call: Callable[[str], None] | None = None,
                 on_throttle: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._scopes: ContextVar[tuple[Counter[str], ...]] = ContextVar(
            f"cronctl_call_scopes_{id(self)}", default=())
        self._on_call = on_call
        self._on_throttle = on_throttle

    def hook(self, event_name: str, **_kwargs) -> None:
        # event_name: "before-call.<service>.<Operation>"
        key = _operation_key(event_name)
        with self._lock:
            self._counts[key] += 1
            for scoped in self._scopes.get():
                scoped[key] += 1
        if self._on_call is not None:
            with suppress(Exception):
                self._on_call(key)

    def after_call(self, event_name: str, http_response=None, parsed=None, **_kwargs) -> None:
        # event_name: "after-call.<service>.<Operation>"; ``parsed`` holds AWS's error answer.
        status = getattr(http_response, "status_code", 0) or 0
        if self._on_throttle is None or status < 300 or not isinstance(parsed, dict):
            return
        error = parsed.get("Error") or {}
        if is_throttling(str(error.get("Code") or ""), status, str(error.get("Message") or "")):
            with suppress(Exception):
                self._on_throttle(_operation_key(event_name))

    @contextmanager
    def scope(self) -> Iterator[Counter[str]]:
        """Count, in the yielded Counter, the calls made inside the block: on this thread and
        in the contexts copied from it meanwhile."""
        counts: Counter[str] = Counter()
        token = self._scopes.set((*self._scopes.get(), counts))
        try:
            yield counts
        finally:
            self._scopes.reset(token)

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


def _operation_key(event_name: str) -> str:
    """``service.Operation`` of a botocore event name ``<event>.<service>.<Operation>``."""
    parts = event_name.split(".")
    return ".".join(parts[1:3]) if len(parts) >= 3 else event_name


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
            # One attempt per call: ``max_attempts`` would count retries (1 = two attempts);
            # ``total_max_attempts`` counts attempts. Retries are tenacity's alone (``retrying``).
            retries={"total_max_attempts": 1, "mode": "standard"},
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
                # first: a paced call waits for its token before it is counted and timed
                client.meta.events.register("before-call.*.*", pacing.before_call)
                client.meta.events.register("before-call.*.*", self.counter.hook)
                client.meta.events.register("after-call.*.*", self.counter.after_call)
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
