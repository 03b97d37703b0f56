"""Settings: built once at start (flags > environment > defaults) and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from reconciler.core.desired import dispatch_topic_name, topic_arn
from reconciler.errors import ConfigError

DEFAULT_SIDECAR_IMAGE = "public.ecr.aws/docker/library/busybox:stable"


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
    sqs_wait_s: int = 20  # SQS long-poll wait; also bounds how long a consumer stop can take

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
    }
    values = {k: v for k, v in env.items() if v is not None}
    wait = _env("CRONCTL_SQS_WAIT_S")
    if wait is not None:
        try:
            values["sqs_wait_s"] = max(0, min(20, int(wait)))
        except ValueError as exc:
            raise ConfigError(f"CRONCTL_SQS_WAIT_S must be a whole number of seconds, got {wait!r}") from exc
    values.update({k: v for k, v in flags.items() if v is not None})
    subnets = _env("CRONCTL_SUBNETS")
    groups = _env("CRONCTL_SECURITY_GROUPS")
    if subnets or groups:
        values.setdefault("network", NetworkSettings(
            subnets=tuple(s for s in (subnets or "").split(",") if s),
            security_groups=tuple(s for s in (groups or "").split(",") if s),
        ))
    return Settings(**values)
