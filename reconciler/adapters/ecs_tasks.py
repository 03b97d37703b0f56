"""ECS tasks: RunTask, ListTasks, StopTask, DescribeTasks for the namespace's cluster.

RunTask is sent with ``clientToken`` (AWS makes the call idempotent per token for 24 hours)
and ``startedBy`` = the same token, so a task started for an execution can also be found with
``ListTasks(startedBy=…)`` (which covers the emulator, which ignores ``clientToken``). Its
``failures`` and refusals become a ``RunResult`` with a reason rather than an exception;
``RunResult.transient`` says whether trying again later may work: capacity (``RESOURCE:*``,
``AGENT``, Fargate's "capacity is unavailable") may, a refusal (``ATTRIBUTE``, a validation
error, access denied) will not. Throttling and 5xx that outlast the retries raise
``TransientError``.

RunTask is paced (``adapters/pacing.py``): every attempt of the process's starts (a retry too:
AWS counts each request) draws from one token bucket of
the namespace's RunTask rate (AWS's default on Fargate: a burst of 100, then 20 per second;
``--api-rate ecs.RunTask=…``; paced 2% under it, ``RUN_TASK_MARGIN``), so a burst of due crons
is spread at the quota's pace instead of being throttled; a start that would wait more than ``RUN_TASK_WAIT_S`` is not made and answers
a transient failure (dispatch: 503, SNS delivers again).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

from reconciler.adapters.aws import AwsClients, call, call_retrying, retrying
from reconciler.adapters.pacing import TokenBucket
from reconciler.core.quotas import Bucket, configured
from reconciler.errors import PermanentError
from reconciler.settings import NetworkSettings, Settings

TRANSIENT_FAILURE_PREFIXES = ("RESOURCE:", "AGENT")
TRANSIENT_FAILURE_WORDS = ("capacity is unavailable", "try again")
RUN_TASK_WAIT_S = 8.0  # the longest a start waits for its RunTask token (HTTP deadline: 10 s)

_RUN_BUCKETS: dict[Bucket, TokenBucket] = {}  # one per rate: shared by the process's starts
_RUN_BUCKETS_LOCK = threading.Lock()


# Starts are paced this much under the rate: they reach AWS with network jitter, and at exactly
# the quota's pace a start that arrives early after a late one finds no token (throttled).
RUN_TASK_MARGIN = 0.02


def run_task_bucket(bucket: Bucket) -> TokenBucket:
    """The process's bucket for ``bucket`` (the namespace's RunTask rate), paced
    ``RUN_TASK_MARGIN`` under its rate."""
    with _RUN_BUCKETS_LOCK:
        if bucket not in _RUN_BUCKETS:
            _RUN_BUCKETS[bucket] = TokenBucket(
                replace(bucket, per_s=bucket.per_s * (1 - RUN_TASK_MARGIN)))
        return _RUN_BUCKETS[bucket]


class _Paced(Exception):
    """A RunTask attempt not made: its token would come after the start's deadline."""


@dataclass(frozen=True)
class RunResult:
    """Exactly one of ``task_arn`` / ``failure`` is set; ``transient`` qualifies a failure."""

    task_arn: str | None = None
    failure: str | None = None
    transient: bool = False


def failures_transient(failures: list[dict]) -> bool:
    """True when every RunTask failure is one of capacity (worth trying again later)."""
    if not failures:
        return False
    for failure in failures:
        reason = str(failure.get("reason") or "")
        text = f"{reason} {failure.get('detail') or ''}".lower()
        if not (reason.startswith(TRANSIENT_FAILURE_PREFIXES)
                or any(word in text for word in TRANSIENT_FAILURE_WORDS)):
            return False
    return True


def describe_failures(failures: list[dict]) -> str:
    """``RESOURCE:MEMORY (arn...)``-style text of RunTask ``failures``."""
    parts = []
    for failure in failures:
        text = failure.get("reason") or "unknown failure"
        if failure.get("detail"):
            text += f": {failure['detail']}"
        if failure.get("arn"):
            text += f" ({failure['arn']})"
        parts.append(text)
    return "; ".join(parts) or "RunTask returned no task"


class EcsTasks:
    """Task operations on one cluster."""

    def __init__(self, clients: AwsClients, settings: Settings) -> None:
        self._ecs = clients.client("ecs")
        self._cluster = settings.cluster_name
        self._launch_type = settings.launch_type
        self._strategy = [p.strategy() for p in settings.capacity_providers]
        self._rate = configured(settings.api_rates)["ecs.RunTask"]
        self._pace = run_task_bucket(self._rate)

    def run_task(self, *, task_definition: str, overrides: dict, token: str,
                 tags: dict[str, str], network: NetworkSettings) -> RunResult:
        """Start one task; ``token`` is both ``clientToken`` and ``startedBy``."""
        kwargs = {
            "cluster": self._cluster,
            "taskDefinition": task_definition,
            "count": 1,
            "startedBy": token,
            "clientToken": token,
            "overrides": overrides or {},
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
            "networkConfiguration": {"awsvpcConfiguration": {
                "subnets": list(network.subnets),
                "securityGroups": list(network.security_groups),
                "assignPublicIp": "ENABLED" if network.assign_public_ip else "DISABLED",
            }},
        }
        if self._strategy:  # a capacity-provider strategy excludes a launch type
            kwargs["capacityProviderStrategy"] = self._strategy
        elif self._launch_type:
            kwargs["launchType"] = self._launch_type
        deadline = time.monotonic() + RUN_TASK_WAIT_S

        def attempt() -> dict:
            # every attempt, a retry too, takes its token: AWS counts each one
            if not self._pace.acquire(deadline=deadline):
                raise _Paced()
            return call(self._ecs.run_task, **kwargs)

        try:
            response = retrying()(attempt)()
        except _Paced:
            bucket = self._rate
            return RunResult(failure=f"RunTask paced: the start would wait more than "
                                     f"{RUN_TASK_WAIT_S:g} s for the RunTask rate ({bucket.per_s:g}"
                                     f"/s, burst {bucket.burst}); try again",
                             transient=True)
        except PermanentError as exc:
            return RunResult(failure=str(exc))
        tasks = response.get("tasks") or []
        if not tasks:
            failures = response.get("failures") or []
            return RunResult(failure=describe_failures(failures),
                             transient=failures_transient(failures))
        return RunResult(task_arn=tasks[0]["taskArn"])

    def warm(self) -> bool:
        """DescribeClusters of the cluster (its connection opened before the first start);
        True when ECS knows the cluster."""
        clusters = call_retrying(self._ecs.describe_clusters,
                                 clusters=[self._cluster]).get("clusters") or []
        return any(c.get("status") == "ACTIVE" for c in clusters)

    def find_started_by(self, token: str) -> str | None:
        """The ARN of a task started with ``startedBy`` = ``token`` (running or stopped)."""
        for desired in ("RUNNING", "STOPPED"):
            arns = call_retrying(self._ecs.list_tasks, cluster=self._cluster, startedBy=token,
                                 desiredStatus=desired).get("taskArns") or []
            if arns:
                return sorted(arns)[0]
        return None

    def describe_one(self, task_arn: str) -> dict | None:
        """One task as DescribeTasks sees it; None when ECS no longer knows it (``MISSING``)."""
        response = call_retrying(self._ecs.describe_tasks, cluster=self._cluster,
                                 tasks=[task_arn])
        tasks = response.get("tasks") or []
        return tasks[0] if tasks else None

    def stop_task(self, task_arn: str, reason: str) -> None:
        """Stop a task; one that is already gone is not an error."""
        try:
            call_retrying(self._ecs.stop_task, cluster=self._cluster, task=task_arn,
                          reason=reason[:255])
        except PermanentError as exc:
            if exc.code not in ("InvalidParameterException", "ResourceNotFoundException"):
                raise

    def describe(self, task_arns: list[str]) -> list[dict]:
        """DescribeTasks in chunks of 100 (tags included); missing tasks are left out."""
        tasks = []
        for start in range(0, len(task_arns), 100):
            chunk = task_arns[start:start + 100]
            tasks += call(self._ecs.describe_tasks, cluster=self._cluster, tasks=chunk,
                          include=["TAGS"]).get("tasks", [])
        return tasks


def cluster_arn(clients: AwsClients, cluster_name: str) -> str | None:
    """The ARN of the named cluster (``DescribeClusters``); None when there is none."""
    clusters = call_retrying(clients.client("ecs").describe_clusters,
                             clusters=[cluster_name])["clusters"]
    return clusters[0]["clusterArn"] if clusters else None


def stopping_reasons(clients: AwsClients, cluster_name: str,
                     task_arns: list[str]) -> dict[str, str]:
    """The tasks StopTask was called for (desired status STOPPED) -> the reason given."""
    found = {}
    for start in range(0, len(task_arns), 100):  # DescribeTasks takes 100 at most
        tasks = call_retrying(clients.client("ecs").describe_tasks, cluster=cluster_name,
                              tasks=task_arns[start:start + 100]).get("tasks") or []
        found.update({task["taskArn"]: task.get("stoppedReason") or "" for task in tasks
                      if task.get("desiredStatus") == "STOPPED"})
    return found
