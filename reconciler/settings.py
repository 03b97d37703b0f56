"""Settings: built once at start (flags > environment > defaults) and passed down.

``Settings`` composes one frozen dataclass per concern: ``SourceSettings`` (where the cron
files are), ``NamespaceSettings`` (what every command and the daemon must agree on; recorded
in the namespace by ``cronctl bootstrap``, with its ``PlacementSettings``: cluster, launch type
or capacity providers, network), ``DaemonSettings`` (the daemon's listen address, intervals and
timings) and ``NotificationSettings`` (room for the notifiers). The flat attribute names
(``settings.scheduler``, ``settings.repo``, ``settings.interval_s``...) delegate to them, and
``Settings(**flat)`` / ``settings.with_(**flat)`` route flat names to their group.

``OPTIONS`` lists every setting with its flag, its ``CRONCTL_*`` variable and its default:
the commands' flags, their ``--help`` and the environment are all built from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace

from reconciler.core.desired import dispatch_topic_name, topic_arn
from reconciler.core.quotas import NAMES as API_RATE_NAMES
from reconciler.core.quotas import parse_rate
from reconciler.errors import ConfigError

DEFAULT_SIDECAR_IMAGE = "public.ecr.aws/docker/library/busybox:stable"
MIN_LEASE_S, MAX_LEASE_S = 1.0, 45.0  # bounds of lease_s (failover stays within 45 s)
DEFAULT_RULES_QUOTA = 300  # EventBridge's default quota of rules per event bus
LAUNCH_TYPES = ("FARGATE", "EC2", "EXTERNAL")
BACKENDS = ("rules", "scheduler")
MONITORS = ("none", "cronitor", "healthchecks")
# The public services' endpoints (a self-hosted Healthchecks sets its own).
MONITOR_URLS = {"cronitor": "https://cronitor.io/api", "healthchecks": "https://healthchecks.io"}
MONITOR_PING_URLS = {"cronitor": "https://cronitor.link", "healthchecks": "https://hc-ping.com"}
SLACK_API_URL = "https://slack.com/api"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


def api_rates(values, source: str = "--api-rate") -> tuple[str, ...]:
    """``NAME=RATE[/BURST]`` values checked (``core.quotas.parse_rate``) and made canonical:
    one per bucket (the last given wins), sorted; ConfigError naming ``source``."""
    if isinstance(values, str):
        values = [part for part in values.split(",") if part.strip()]
    by_name: dict[str, str] = {}
    for value in values or ():
        try:
            text = parse_rate(str(value))
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        by_name[text.split("=", 1)[0]] = text
    return tuple(by_name[name] for name in sorted(by_name))


@dataclass(frozen=True)
class NetworkSettings:
    """How every RunTask places its task: awsvpc subnets and security groups."""

    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    assign_public_ip: bool = False


@dataclass(frozen=True)
class CapacityProvider:
    """One entry of a capacity-provider strategy: ``name[:weight[:base]]``."""

    name: str
    weight: int = 1
    base: int = 0

    @classmethod
    def parse(cls, text: str) -> CapacityProvider:
        parts = text.strip().split(":")
        try:
            if not parts[0] or len(parts) > 3:
                raise ValueError
            weight = int(parts[1]) if len(parts) > 1 else 1
            base = int(parts[2]) if len(parts) > 2 else 0
            if not 0 <= weight <= 1000 or not 0 <= base <= 100000:
                raise ValueError
        except ValueError:
            raise ConfigError(f"capacity provider {text!r} is invalid: use name[:weight[:base]] "
                              "(weight 0-1000, base 0-100000), e.g. FARGATE_SPOT:3") from None
        return cls(parts[0], weight, base)

    def __str__(self) -> str:
        return f"{self.name}:{self.weight}:{self.base}"

    def strategy(self) -> dict:
        """The RunTask ``capacityProviderStrategy`` entry."""
        return {"capacityProvider": self.name, "weight": self.weight, "base": self.base}


@dataclass(frozen=True)
class SourceSettings:
    """Where the cron files are read."""

    repo: str = "."
    ref: str | None = None
    path: str = "crons.d"


@dataclass(frozen=True)
class PlacementSettings:
    """Where and how tasks run: the cluster, a launch type or a capacity-provider strategy
    (exclusive; Fargate when neither is set), and the awsvpc network."""

    cluster: str | None = None
    launch_type: str | None = None
    capacity_providers: tuple[CapacityProvider, ...] = ()
    network: NetworkSettings = field(default_factory=NetworkSettings)

    def __post_init__(self) -> None:
        if self.capacity_providers and self.launch_type:
            raise ConfigError("--launch-type and --capacity-provider exclude each other "
                              "(RunTask takes one or the other)")
        if not self.capacity_providers and not self.launch_type:
            object.__setattr__(self, "launch_type", "FARGATE")

    @property
    def fargate(self) -> bool:
        """Tasks run on Fargate (launch type or a FARGATE* capacity provider)."""
        if self.capacity_providers:
            return any(p.name.startswith("FARGATE") for p in self.capacity_providers)
        return self.launch_type == "FARGATE"


@dataclass(frozen=True)
class NamespaceSettings:
    """What every command and the daemon must agree on: recorded once in the namespace."""

    scheduler: str = "rules"  # "rules" | "scheduler"
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    sidecar_image: str = DEFAULT_SIDECAR_IMAGE
    execution_role_arn: str | None = None
    default_task_role_arn: str | None = None
    scheduler_role_arn: str | None = None  # default: role/<namespace>-scheduler
    log_group: str | None = None  # default: /cronctl/<namespace>
    rules_quota: int = DEFAULT_RULES_QUOTA
    # The API rates the apply paces its AWS calls to, where they differ from AWS's default
    # quotas (``core/quotas.py``): canonical ``NAME=RATE/BURST`` texts, one per bucket, sorted.
    api_rates: tuple[str, ...] = ()
    # The cron-monitoring service every cron with ``notifications`` gets a monitor at, and
    # its endpoints (None: the public service's). The API key is not recorded (a secret):
    # it is a NotificationSettings of each process.
    monitor: str = "none"  # "none" | "cronitor" | "healthchecks"
    monitor_url: str | None = None
    monitor_ping_url: str | None = None

    @property
    def monitor_api_url(self) -> str | None:
        """The monitoring service's management API base URL (None: no monitors)."""
        if self.monitor == "none":
            return None
        return (self.monitor_url or MONITOR_URLS[self.monitor]).rstrip("/")

    @property
    def monitor_ping_base(self) -> str | None:
        """The monitoring service's ping base URL (None: no monitors)."""
        if self.monitor == "none":
            return None
        return (self.monitor_ping_url or MONITOR_PING_URLS[self.monitor]).rstrip("/")

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ConfigError(f"--monitor must be one of {', '.join(MONITORS)}, "
                              f"got {self.monitor!r}")
        if self.rules_quota < 1:
            raise ConfigError(f"--rules-quota must be 1 or more, got {self.rules_quota}")
        object.__setattr__(self, "api_rates", api_rates(self.api_rates))

    def flat(self) -> dict[str, object]:
        """Every namespace setting by its flat name (what is recorded and compared)."""
        p = self.placement
        return {
            "scheduler": self.scheduler, "cluster": p.cluster, "launch_type": p.launch_type,
            "capacity_providers": tuple(str(c) for c in p.capacity_providers),
            "subnets": p.network.subnets, "security_groups": p.network.security_groups,
            "assign_public_ip": p.network.assign_public_ip,
            "execution_role_arn": self.execution_role_arn,
            "default_task_role_arn": self.default_task_role_arn,
            "scheduler_role_arn": self.scheduler_role_arn, "log_group": self.log_group,
            "sidecar_image": self.sidecar_image, "rules_quota": self.rules_quota,
            "api_rates": self.api_rates,
            "monitor": self.monitor, "monitor_url": self.monitor_url,
            "monitor_ping_url": self.monitor_ping_url,
        }

    def to_record(self) -> dict:
        """The settings as stored in the namespace's item (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.flat().items()}

    @classmethod
    def from_record(cls, record: Mapping) -> NamespaceSettings:
        """The settings stored by ``to_record`` (unknown keys ignored, missing ones default)."""
        values = {k: record[k] for k in NAMESPACE_KEYS if k in record}
        return _namespace_from_flat(NamespaceSettings(), values)


@dataclass(frozen=True)
class DaemonSettings:
    """The daemon's own settings (``cronctl serve``)."""

    listen: str = "127.0.0.1:8080"
    interval_s: float = 60.0
    # A sweep (every resource listed, a budgeted rotation read one by one: drift found and
    # repaired) at least this often; the passes between, at the applied commit, are cheap
    # (``core/plan/pass_check.py``). Also the interval a sweep's read budget is sized for.
    drift_check_s: float = 3600.0
    # Every resource is read one by one (its targets, its whole schedule, its task
    # definition) at least once per this period, by the sweeps' rotation
    # (``core/plan/sweep.py``), within 20% of the API's quota.
    deep_check_s: float = 86400.0
    history_days: int = 30
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


@dataclass(frozen=True)
class NotificationSettings:
    """Each process's secrets and endpoints of the monitoring service and the notifiers
    (Slack, PagerDuty), and how long one call to them may take. Not recorded in the
    namespace: secrets stay in the process's environment."""

    monitor_api_key: str | None = field(default=None, repr=False)
    slack_token: str | None = field(default=None, repr=False)  # Web API chat.postMessage
    slack_webhook_url: str | None = field(default=None, repr=False)  # incoming webhook
    slack_api_url: str = SLACK_API_URL
    pagerduty_events_url: str = PAGERDUTY_EVENTS_URL
    # One HTTP call to a monitoring service or a notifier: a ping never holds a dispatch
    # longer than this; the alert sender retries with backoff.
    notify_timeout_s: float = 3.0

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_token or self.slack_webhook_url)


SOURCE_KEYS = tuple(f.name for f in fields(SourceSettings))
PLACEMENT_KEYS = ("cluster", "launch_type", "capacity_providers", "network",
                  "subnets", "security_groups", "assign_public_ip")
NAMESPACE_KEYS = tuple(NamespaceSettings().flat())
DAEMON_KEYS = tuple(f.name for f in fields(DaemonSettings))
NOTIFICATION_KEYS = tuple(f.name for f in fields(NotificationSettings))


def _namespace_from_flat(base: NamespaceSettings, values: Mapping) -> NamespaceSettings:
    """``base`` with the flat namespace (and placement) settings in ``values`` applied."""
    placement = base.placement
    network = placement.network
    net = {k: values[k] for k in ("subnets", "security_groups", "assign_public_ip")
           if k in values}
    if "network" in values:
        network = values["network"]
    if net:
        for key in ("subnets", "security_groups"):
            if key in net:
                net[key] = tuple(net[key] or ())
        if "assign_public_ip" in net:
            net["assign_public_ip"] = bool(net["assign_public_ip"])
        network = replace(network, **net)
    place = {k: values[k] for k in ("cluster", "launch_type", "capacity_providers")
             if k in values}
    if "capacity_providers" in place:
        place["capacity_providers"] = tuple(
            c if isinstance(c, CapacityProvider) else CapacityProvider.parse(c)
            for c in place["capacity_providers"] or ())
        if "launch_type" not in place:
            place["launch_type"] = None
    elif "launch_type" in place and place["launch_type"] and placement.capacity_providers:
        place["capacity_providers"] = ()
    if place or network is not placement.network:
        placement = PlacementSettings(
            cluster=place.get("cluster", placement.cluster),
            launch_type=place.get("launch_type", placement.launch_type),
            capacity_providers=place.get("capacity_providers", placement.capacity_providers),
            network=network)
    own = {k: values[k] for k in NAMESPACE_KEYS if k in values and k not in PLACEMENT_KEYS}
    if "rules_quota" in own:
        own["rules_quota"] = int(own["rules_quota"])
    if "api_rates" in own:
        own["api_rates"] = tuple(own["api_rates"] or ())
    return replace(base, placement=placement, **own)


def _delegate(*path: str) -> property:
    def get(self):
        value = self
        for name in path:
            value = getattr(value, name)
        return value
    get.__name__ = path[-1]
    return property(get)


@dataclass(frozen=True, init=False)
class Settings:
    """Everything the commands and the daemon need; never read from globals.

    ``given`` says which namespace settings came from a flag or a ``CRONCTL_*`` variable (and
    how, for messages); ``recorded_version`` is the version of the namespace's recorded
    settings these were read from (0: none recorded; None: not read from the namespace).
    """

    namespace: str
    region: str
    endpoint_url: str | None
    source: SourceSettings
    namespace_settings: NamespaceSettings
    daemon: DaemonSettings
    notifications: NotificationSettings
    max_deletes: int | None
    allow_mass_delete: bool
    given: Mapping[str, str] = field(compare=False, repr=False)
    recorded_version: int | None = field(compare=False)

    def __init__(self, namespace: str = "crons", region: str = "us-east-1",
                 endpoint_url: str | None = None, source: SourceSettings | None = None,
                 namespace_settings: NamespaceSettings | None = None,
                 daemon: DaemonSettings | None = None,
                 notifications: NotificationSettings | None = None,
                 max_deletes: int | None = None, allow_mass_delete: bool = False,
                 given: Mapping[str, str] | None = None, recorded_version: int | None = None,
                 **flat) -> None:
        unknown = set(flat) - set(SOURCE_KEYS) - set(NAMESPACE_KEYS) - set(PLACEMENT_KEYS) \
            - set(DAEMON_KEYS) - set(NOTIFICATION_KEYS)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        source = source or SourceSettings()
        source = replace(source, **{k: v for k, v in flat.items() if k in SOURCE_KEYS})
        daemon = daemon or DaemonSettings()
        daemon = replace(daemon, **{k: v for k, v in flat.items() if k in DAEMON_KEYS})
        notifications = notifications or NotificationSettings()
        notifications = replace(notifications, **{k: v for k, v in flat.items()
                                                  if k in NOTIFICATION_KEYS})
        ns = namespace_settings or NamespaceSettings()
        ns_flat = {k: v for k, v in flat.items() if k in NAMESPACE_KEYS or k in PLACEMENT_KEYS}
        if ns_flat:
            ns = _namespace_from_flat(ns, ns_flat)
        for name, value in (("namespace", namespace), ("region", region),
                            ("endpoint_url", endpoint_url), ("source", source),
                            ("namespace_settings", ns), ("daemon", daemon),
                            ("notifications", notifications),
                            ("max_deletes", max_deletes),
                            ("allow_mass_delete", allow_mass_delete),
                            ("given", dict(given or {})),
                            ("recorded_version", recorded_version)):
            object.__setattr__(self, name, value)

    # The flat names the rest of the code uses, delegating to the groups.
    repo = _delegate("source", "repo")
    ref = _delegate("source", "ref")
    path = _delegate("source", "path")
    scheduler = _delegate("namespace_settings", "scheduler")
    placement = _delegate("namespace_settings", "placement")
    cluster = _delegate("namespace_settings", "placement", "cluster")
    launch_type = _delegate("namespace_settings", "placement", "launch_type")
    capacity_providers = _delegate("namespace_settings", "placement", "capacity_providers")
    network = _delegate("namespace_settings", "placement", "network")
    sidecar_image = _delegate("namespace_settings", "sidecar_image")
    execution_role_arn = _delegate("namespace_settings", "execution_role_arn")
    default_task_role_arn = _delegate("namespace_settings", "default_task_role_arn")
    scheduler_role_arn = _delegate("namespace_settings", "scheduler_role_arn")
    log_group = _delegate("namespace_settings", "log_group")
    rules_quota = _delegate("namespace_settings", "rules_quota")
    api_rates = _delegate("namespace_settings", "api_rates")
    monitor = _delegate("namespace_settings", "monitor")
    monitor_url = _delegate("namespace_settings", "monitor_url")
    monitor_ping_url = _delegate("namespace_settings", "monitor_ping_url")
    monitor_api_key = _delegate("notifications", "monitor_api_key")
    slack_token = _delegate("notifications", "slack_token")
    slack_webhook_url = _delegate("notifications", "slack_webhook_url")
    slack_api_url = _delegate("notifications", "slack_api_url")
    pagerduty_events_url = _delegate("notifications", "pagerduty_events_url")
    notify_timeout_s = _delegate("notifications", "notify_timeout_s")
    slack_configured = _delegate("notifications", "slack_configured")
    listen = _delegate("daemon", "listen")
    interval_s = _delegate("daemon", "interval_s")
    drift_check_s = _delegate("daemon", "drift_check_s")
    deep_check_s = _delegate("daemon", "deep_check_s")
    history_days = _delegate("daemon", "history_days")
    sns_certs_dir = _delegate("daemon", "sns_certs_dir")
    webhook_token = _delegate("daemon", "webhook_token")
    webhook_secret = _delegate("daemon", "webhook_secret")
    sqs_wait_s = _delegate("daemon", "sqs_wait_s")
    lease_s = _delegate("daemon", "lease_s")
    claim_s = _delegate("daemon", "claim_s")
    start_deadline_s = _delegate("daemon", "start_deadline_s")
    watchdog_interval_s = _delegate("daemon", "watchdog_interval_s")
    grace_s = _delegate("daemon", "grace_s")

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
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        composed = {k: changes.pop(k) for k in list(changes) if k in current}
        return Settings(**{**current, **composed}, **changes)


# --- every setting: flag, variable, default, help -----------------------------------------

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


def _list(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _boolean(variable: str, raw: str) -> bool:
    """true/false (also 1/0, yes/no, on/off), or AWS's own ENABLED/DISABLED (the namespace
    stack's output AssignPublicIp, exported as it is); any case."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "enabled", "on"):
        return True
    if value in ("0", "false", "no", "disabled", "off"):
        return False
    raise ConfigError(f"{variable} must be true or false (or ENABLED or DISABLED), got {raw!r}")


def _choice(variable: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ConfigError(f"{variable} must be one of {', '.join(choices)}, got {raw!r}")
        return raw
    return parse


def _url(variable: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ConfigError(f"{variable} must be an http(s):// URL, got {raw!r}")
    return value.rstrip("/")


def _quota(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"CRONCTL_RULES_QUOTA must be a whole number of rules, 1 or more, "
                          f"got {raw!r}")
    return value


@dataclass(frozen=True)
class Option:
    """One setting: its flat name, flag, ``CRONCTL_*`` variable, default (as said in --help),
    what it means, and whether it is a namespace setting (recorded by ``cronctl bootstrap``)."""

    key: str
    flag: str | None
    variable: str | None
    default: str
    help: str
    recorded: bool = False
    parse: Callable[[str], object] | None = None


OPTIONS: tuple[Option, ...] = (
    Option("repo", "--repo", "CRONCTL_REPO", ".", "the repo: a local path, an https://, ssh://, "
           "git:// or file:// URL, or user@host:path"),
    Option("ref", "--ref", "CRONCTL_REF", "HEAD", "branch, tag or commit SHA"),
    Option("path", "--path", "CRONCTL_PATH", "crons.d", "folder of cron files in the repo"),
    Option("namespace", "--namespace", "CRONCTL_NAMESPACE", "crons",
           "deployment name prefixing every resource"),
    Option("scheduler", "--scheduler", "CRONCTL_SCHEDULER", "rules",
           "schedule backend: EventBridge rules or EventBridge Scheduler", True,
           _choice("CRONCTL_SCHEDULER", BACKENDS)),
    Option("cluster", "--cluster", "CRONCTL_CLUSTER", "the namespace", "ECS cluster name", True),
    Option("launch_type", "--launch-type", "CRONCTL_LAUNCH_TYPE",
           "FARGATE unless capacity providers are set", "ECS launch type", True,
           _choice("CRONCTL_LAUNCH_TYPE", LAUNCH_TYPES)),
    Option("capacity_providers", "--capacity-provider", "CRONCTL_CAPACITY_PROVIDERS", "none",
           "capacity-provider strategy entry name[:weight[:base]], repeatable (variable: "
           "comma-separated); excludes --launch-type", True,
           lambda raw: tuple(CapacityProvider.parse(p) for p in _list(raw))),
    Option("subnets", "--subnets", "CRONCTL_SUBNETS", "the default VPC's subnets",
           "comma-separated awsvpc subnet ids of every task", True, _list),
    Option("security_groups", "--security-groups", "CRONCTL_SECURITY_GROUPS",
           "the default VPC's default group", "comma-separated security group ids of every task",
           True, _list),
    Option("assign_public_ip", "--assign-public-ip", "CRONCTL_ASSIGN_PUBLIC_IP",
           "false (true in the default VPC)",
           "give every task a public IP (true/false, or ENABLED/DISABLED)", True,
           lambda raw: _boolean("CRONCTL_ASSIGN_PUBLIC_IP", raw)),
    Option("execution_role_arn", "--execution-role-arn", "CRONCTL_EXECUTION_ROLE_ARN",
           "role/<ns>-task-execution, created by bootstrap",
           "task execution role (pulls images, writes awslogs, reads secrets)", True),
    Option("default_task_role_arn", "--task-role-arn", "CRONCTL_TASK_ROLE_ARN", "none",
           "task role of the crons that set no role", True),
    Option("scheduler_role_arn", "--scheduler-role-arn", "CRONCTL_SCHEDULER_ROLE_ARN",
           "role/<ns>-scheduler, created by bootstrap",
           "role EventBridge Scheduler assumes to publish to the topic", True),
    Option("log_group", "--log-group", "CRONCTL_LOG_GROUP", "/cronctl/<ns>",
           "CloudWatch Logs group of the tasks' output", True),
    Option("sidecar_image", "--sidecar-image", "CRONCTL_SIDECAR_IMAGE", DEFAULT_SIDECAR_IMAGE,
           "image of the timeout sidecar", True),
    Option("rules_quota", "--rules-quota", "CRONCTL_RULES_QUOTA", str(DEFAULT_RULES_QUOTA),
           "rules quota of the event bus (rules backend: warns at 80%%, refuses past it)", True,
           _quota),
    Option("api_rates", "--api-rate", "CRONCTL_API_RATES", "AWS's default quotas",
           "AWS API rate the apply paces its calls to, NAME=RATE[/BURST] (calls per second, "
           f"burst), repeatable (variable: comma-separated); NAME one of "
           f"{', '.join(API_RATE_NAMES)}", True,
           lambda raw: api_rates(raw, "CRONCTL_API_RATES")),
    Option("monitor", "--monitor", "CRONCTL_MONITOR", "none",
           "cron-monitoring service of the crons with notifications: none, cronitor or "
           "healthchecks", True, _choice("CRONCTL_MONITOR", MONITORS)),
    Option("monitor_url", "--monitor-url", "CRONCTL_MONITOR_URL", "the public service's",
           "monitoring service's API base URL (a self-hosted Healthchecks: its site root)",
           True, lambda raw: _url("CRONCTL_MONITOR_URL", raw)),
    Option("monitor_ping_url", "--monitor-ping-url", "CRONCTL_MONITOR_PING_URL",
           "the public service's", "monitoring service's ping base URL", True,
           lambda raw: _url("CRONCTL_MONITOR_PING_URL", raw)),
    Option("monitor_api_key", None, "CRONCTL_MONITOR_API_KEY", "none",
           "monitoring service's API key (not recorded)"),
    Option("slack_token", None, "CRONCTL_SLACK_TOKEN", "none",
           "Slack bot token: alerts go by chat.postMessage to the cron's channel"),
    Option("slack_webhook_url", None, "CRONCTL_SLACK_WEBHOOK_URL", "none",
           "Slack incoming webhook URL, when there is no token (its channel is fixed)",
           parse=lambda raw: _url("CRONCTL_SLACK_WEBHOOK_URL", raw)),
    Option("slack_api_url", None, "CRONCTL_SLACK_API_URL", SLACK_API_URL,
           "Slack Web API base URL", parse=lambda raw: _url("CRONCTL_SLACK_API_URL", raw)),
    Option("pagerduty_events_url", None, "CRONCTL_PAGERDUTY_EVENTS_URL", PAGERDUTY_EVENTS_URL,
           "PagerDuty Events API v2 endpoint",
           parse=lambda raw: _url("CRONCTL_PAGERDUTY_EVENTS_URL", raw)),
    Option("notify_timeout_s", None, "CRONCTL_NOTIFY_TIMEOUT_S", "3",
           "seconds one call to the monitoring service or a notifier may take",
           parse=lambda raw: _positive_seconds("CRONCTL_NOTIFY_TIMEOUT_S", raw)),
    Option("listen", "--listen", "CRONCTL_LISTEN", "127.0.0.1:8080", "HTTP listen address "
           "host:port"),
    Option("interval_s", "--interval", "CRONCTL_INTERVAL_S", "60",
           "seconds between reconcile passes",
           parse=lambda raw: _positive_seconds("CRONCTL_INTERVAL_S", raw)),
    Option("drift_check_s", "--drift-check-interval", "CRONCTL_DRIFT_CHECK_S", "3600",
           "seconds between the daemon's drift sweeps (every resource listed, a budgeted "
           "share read one by one, drift repaired); the passes between, at the applied "
           "commit, read nothing",
           parse=lambda raw: _positive_seconds("CRONCTL_DRIFT_CHECK_S", raw)),
    Option("deep_check_s", "--deep-check-period", "CRONCTL_DEEP_CHECK_S", "86400",
           "seconds within which the sweeps read every resource one by one (targets, whole "
           "schedules, task definitions), within a fifth of the API's quota",
           parse=lambda raw: _positive_seconds("CRONCTL_DEEP_CHECK_S", raw)),
    Option("history_days", "--history-days", None, "30", "days execution records are kept"),
    Option("sns_certs_dir", None, "CRONCTL_SNS_CERTS", "none", "folder of SNS signing "
           "certificates"),
    Option("webhook_token", None, "CRONCTL_WEBHOOK_TOKEN", "none", "CI webhook Bearer token"),
    Option("webhook_secret", None, "CRONCTL_WEBHOOK_SECRET", "none", "GitHub webhook secret"),
)
OPTION = {option.key: option for option in OPTIONS}
RECORDED = tuple(option.key for option in OPTIONS if option.recorded)


def help_text(key: str) -> str:
    """``--help`` text of a setting: what it means, its variable, its default."""
    option = OPTION[key]
    where = f"env {option.variable}; " if option.variable else ""
    recorded = "; namespace setting" if option.recorded else ""
    return f"{option.help} ({where}default {option.default}{recorded})"


def flag_text(key: str, value) -> str:
    """How a value is given on the command line: ``--scheduler scheduler``."""
    option = OPTION[key]
    if key in ("capacity_providers", "api_rates"):
        return " ".join(f"{option.flag} {c}" for c in value) or f"{option.flag} ''"
    if isinstance(value, (tuple, list)):
        value = ",".join(value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"{option.flag} {value}"


def from_environment(**flags) -> Settings:
    """Flags (non-None values) win over ``CRONCTL_*`` variables, which win over defaults.

    The namespace settings given by a flag or a variable are remembered in ``given`` (how they
    were given), so that a value contradicting the namespace's recorded one can be refused.
    """
    values: dict[str, object] = {}
    given: dict[str, str] = {}
    for option in OPTIONS:
        raw = _env(option.variable) if option.variable else None
        if raw is None:
            continue
        values[option.key] = option.parse(raw) if option.parse else raw
        if option.recorded:
            given[option.key] = f"{option.variable}={raw}"
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    if region:
        values["region"] = region
    endpoint = _env("AWS_ENDPOINT_URL")
    if endpoint:
        values["endpoint_url"] = endpoint
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
    for key, value in flags.items():
        if value is None:
            continue
        if key == "capacity_providers":
            value = tuple(c if isinstance(c, CapacityProvider) else CapacityProvider.parse(c)
                          for c in value)
        elif key == "api_rates":
            value = api_rates(value)
        values[key] = value
        if key in OPTION and OPTION[key].recorded:
            given[key] = flag_text(key, value if key != "capacity_providers"
                                   else tuple(str(c) for c in value))
    if "launch_type" in values and "capacity_providers" in values:
        if values["capacity_providers"] and values["launch_type"]:
            raise ConfigError(f"{given.get('launch_type', 'the launch type')} and "
                              f"{given.get('capacity_providers', 'capacity providers')} exclude "
                              "each other (RunTask takes one or the other)")
    values["given"] = given
    return Settings(**values)
