"""Settings: built once at start (flags > environment > defaults) and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from reconciler.core.desired import dispatch_topic_name, topic_arn
from reconciler.errors import ConfigError

DEFAULT_SIDECAR_IMAGE = "public.ecr.aws/docker/library/busybox:stable"
MIN_LEASE_S, MAX_LEASE_S = 1.0, 45.0  # bounds of lease_s (failover stays within 45 s)


@dataclass(frozen=True)
class NetworkSettings:
    """How every RunTask places its task: awsvpc subnets and security groups."""

    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything the commands and the daemon need; never read from globals."""

    repo: str = "."
    ref: str | None = None
    path: str = "crons.d"
    namespace: str = "crons"
    scheduler: str = "rules"  # "rules" | "scheduler"
    listen: str = "127.0.0.1:8080"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    cluster: str | None = None
    launch_type: str = "FARGATE"
    network: NetworkSettings = field(default_factory=NetworkSettings)
    sidecar_image: str = DEFAULT_SIDECAR_IMAGE
    execution_role_arn: str | None = None
    default_task_role_arn: str | None = None
    scheduler_role_arn: str | None = None  # default: role/<namespace>-scheduler
    log_group: str | None = None
    interval_s: float = 60.0
    history_days: int = 30
    max_deletes: int | None = None
    allow_mass_delete: bool = False
    sns_certs_dir: str | None = None
    webhook_token: str | None = field(default=None, repr=False)  # CI webhook Bearer token
    # GitHub webhook secret (CRONCTL_WEBHOOK_SECRET): POST /v1/sync checks X-Hub-Signature-256
    webhook_secret: str | None = field(default=None, repr=False)
    sqs_wait_s: int = 20  # SQS long-poll wait; also bounds how long a consumer stop can take
    # The reconcile leader lease: how long it lasts unless renewed (renewed every third of it),
    # so the longest failover after a leader dies. CRONCTL_LEASE_S, between MIN_LEASE_S and
    # MAX_LEASE_S; it does not depend on the reconcile interval.
    lease_s: float = 30.0
    # Runs that survive crashes (dispatch and watchdog): how long one dispatch attempt holds
    # a PENDING record before another may resume it; how long after its scheduled time a
    # run may still start; how often the watchdog looks; the grace period after a run's
    # timeout before ECS is asked about it (and after which its overlap lock expires).
    claim_s: float = 30.0
    start_deadline_s: float = 300.0
    watchdog_interval_s: float = 15.0
    grace_s: float = 60.0

    # Names derived from the namespace: one place, so every module agrees.
    @property
    def registry_table(self) -> str:
        return f"{self.namespace}-registry"

    @property
    def executions_table(self) -> str:
        return f"{self.namespace}-executions"

    @property
    def leases_table(self) -> str:
        return f"{self.namespace}-leases"

    @property
    def topic_name(self) -> str:
        return dispatch_topic_name(self.namespace)

    def topic_arn(self, partition: str, account: str) -> str:
        return topic_arn(partition, self.region, account, self.namespace)

    @property
    def queue_name(self) -> str:
        return f"{self.namespace}-ecs-events"

    @property
    def dlq_name(self) -> str:
        return f"{self.namespace}-ecs-events-dlq"

    @property
    def events_rule_name(self) -> str:
        return f"{self.namespace}-ecs-events"

    @property
    def cluster_name(self) -> str:
        return self.cluster or self.namespace

    @property
    def schedule_group(self) -> str:
        return self.namespace

    @property
    def log_group_name(self) -> str:
        return self.log_group or f"/cronctl/{self.namespace}"

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)


def _env(name: str, default=None):
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _positive_seconds(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ConfigError(f"{variable} must be a positive number of seconds, got {raw!r}")
    return value


def _lease_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not MIN_LEASE_S <= value <= MAX_LEASE_S:
        raise ConfigError(f"CRONCTL_LEASE_S must be between {MIN_LEASE_S:g} and {MAX_LEASE_S:g} "
                          f"seconds (the longest failover of the reconcile leader), got {raw!r}")
    return value


def from_environment(**flags) -> Settings:
    """Flags (non-None values) win over ``CRONCTL_*`` variables, which win over defaults."""
    env = {
        "repo": _env("CRONCTL_REPO"),
        "ref": _env("CRONCTL_REF"),
        "path": _env("CRONCTL_PATH"),
        "namespace": _env("CRONCTL_NAMESPACE"),
        "scheduler": _env("CRONCTL_SCHEDULER"),
        "listen": _env("CRONCTL_LISTEN"),
        "region": _env("AWS_REGION") or _env("AWS_DEFAULT_REGION"),
        "endpoint_url": _env("AWS_ENDPOINT_URL"),
        "cluster": _env("CRONCTL_CLUSTER"),
        "sidecar_image": _env("CRONCTL_SIDECAR_IMAGE"),
        "sns_certs_dir": _env("CRONCTL_SNS_CERTS"),
        "webhook_token": _env("CRONCTL_WEBHOOK_TOKEN"),
        "webhook_secret": _env("CRONCTL_WEBHOOK_SECRET"),
    }
    values = {k: v for k, v in env.items() if v is not None}
    wait = _env("CRONCTL_SQS_WAIT_S")
    if wait is not None:
        try:
            values["sqs_wait_s"] = max(0, min(20, int(wait)))
        except ValueError as exc:
            raise ConfigError(f"CRONCTL_SQS_WAIT_S must be a whole number of seconds, got {wait!r}") from exc
    for name, variable in (("claim_s", "CRONCTL_CLAIM_S"),
                           ("start_deadline_s", "CRONCTL_START_DEADLINE_S"),
                           ("watchdog_interval_s", "CRONCTL_WATCHDOG_INTERVAL_S"),
                           ("grace_s", "CRONCTL_GRACE_S")):
        raw = _env(variable)
        if raw is not None:
            values[name] = _positive_seconds(variable, raw)
    lease = _env("CRONCTL_LEASE_S")
    if lease is not None:
        values["lease_s"] = _lease_seconds(lease)
    values.update({k: v for k, v in flags.items() if v is not None})
    subnets = _env("CRONCTL_SUBNETS")
    groups = _env("CRONCTL_SECURITY_GROUPS")
    if subnets or groups:
        values.setdefault("network", NetworkSettings(
            subnets=tuple(s for s in (subnets or "").split(",") if s),
            security_groups=tuple(s for s in (groups or "").split(",") if s),
        ))
    return Settings(**values)
