"""Helpers for control-plane tests: a namespace's base infrastructure on the moto server,
cron folders on disk, the live state read back in full, and fault injection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from botocore.exceptions import ClientError

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.tables import ensure_tables
from reconciler.settings import Settings

SERVICES = ("dynamodb", "events", "scheduler", "ecs", "sts", "sns")


def prepare(settings: Settings, clients: AwsClients | None = None) -> AwsClients:
    """Tables, topic, cluster and recorded settings of the namespace (what bootstrap
    creates); the clients (fresh unless given)."""
    clients = clients or AwsClients(settings)
    ensure_tables(clients, settings)
    clients.client("sns").create_topic(Name=settings.topic_name)
    clients.client("ecs").create_cluster(clusterName=settings.cluster_name)
    record_settings(clients, settings)
    return clients


def record_settings(clients: AwsClients, settings: Settings) -> None:
    """Record ``settings``' namespace settings in the namespace, as bootstrap does (replacing
    what is recorded)."""
    from reconciler.adapters import registry

    current = registry.read_namespace(clients, settings)
    wanted = settings.with_(cluster=settings.cluster_name, log_group=settings.log_group_name)
    registry.write_namespace(clients, settings, wanted.namespace_settings.to_record(),
                             current.version if current else 0)


def cron_yaml(schedule: str = "cron(0 5 * * ? *)", image: str = "perl", *,
              env: dict | None = None, arguments: list | None = None,
              timezone: str | None = None, suspend: bool = False) -> str:
    lines = [f'schedule: "{schedule}"']
    if timezone:
        lines.append(f"timezone: {timezone}")
    if suspend:
        lines.append("suspend: true")
    lines += ["container:", f"  image: {image}"]
    if arguments:
        lines.append("  arguments:")
        lines += [f"    - {json.dumps(a)}" for a in arguments]
    if env:
        lines.append("  env:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def write_crons(root: Path, crons: dict[str, str], folder: str = "crons.d") -> Path:
    """Replace the cron folder under ``root`` with exactly ``crons`` (name -> YAML text)."""
    target = root / folder
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    for name, text in crons.items():
        (target / f"{name}.yaml").write_text(text)
    return root


def live_state(clients: AwsClients, settings: Settings) -> dict:
    """Everything the control plane owns, read straight from AWS, without timestamps."""
    c = clients.client
    ns = settings.namespace
    rules = {}
    for rule in c("events").list_rules(NamePrefix=f"{ns}-")["Rules"]:
        targets = c("events").list_targets_by_rule(Rule=rule["Name"])["Targets"]
        tags = c("events").list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]
        rules[rule["Name"]] = {
            "expression": rule.get("ScheduleExpression"), "state": rule["State"],
            "description": rule.get("Description"), "targets": targets,
            "tags": {t["Key"]: t["Value"] for t in tags}}
    schedules = {}
    for summary in c("scheduler").list_schedules(GroupName=ns)["Schedules"]:
        raw = c("scheduler").get_schedule(GroupName=ns, Name=summary["Name"])
        schedules[raw["Name"]] = {k: raw.get(k) for k in (
            "ScheduleExpression", "ScheduleExpressionTimezone", "State", "Target",
            "FlexibleTimeWindow", "Description")}
    tds = {}
    arns = c("ecs").list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    for arn in arns:
        desc = c("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
        td = desc["taskDefinition"]
        if td["family"].startswith(f"{ns}-td-"):
            tds[td["family"]] = {"revisions": tds.get(td["family"], {}).get("revisions", 0) + 1,
                                 "containers": td["containerDefinitions"],
                                 "tags": {t["key"]: t["value"] for t in desc.get("tags", [])}}
    registry = {}
    for item in c("dynamodb").scan(TableName=settings.registry_table)["Items"]:
        row = {k: list(v.values())[0] for k, v in item.items()}
        if row["name"].startswith("#"):  # the namespace's recorded settings, not a cron
            continue
        row.pop("updated_at", None)
        row.pop("schedule_since", None)  # a timestamp too (when the schedule got its expression)
        row["task_definition_arn"] = row.get("task_definition_arn", "").rsplit(":", 1)[0]
        registry[row["name"]] = row
    return {"rules": rules, "schedules": schedules, "task_definitions": tds,
            "registry": registry}


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an error the code catches."""


class FaultInjector:
    """Makes the ``fail_at``-th AWS call (1-based, counted from ``arm()``) fail, through a
    botocore ``before-call`` hook on every client of ``clients``: with an AWS-shaped
    ``ClientError`` (``code``) or, when ``crash``, a ``SimulatedCrash``."""

    def __init__(self, clients: AwsClients, fail_at: int, *, crash: bool = False,
                 code: str = "AccessDeniedException") -> None:
        self.fail_at, self.crash, self.code = fail_at, crash, code
        self.calls = 0
        self.failed: str | None = None
        self._clients = clients
        self._lock = threading.Lock()  # the apply's workers call concurrently
        for service in SERVICES:
            clients.client(service).meta.events.register("before-call.*.*", self._hook)

    def disarm(self) -> None:
        """No more failures; the hooks are removed."""
        self.fail_at = 0
        for service in SERVICES:
            self._clients.client(service).meta.events.unregister("before-call.*.*", self._hook)

    def _hook(self, event_name: str, model, **_kwargs):
        with self._lock:
            self.calls += 1
            if self.calls != self.fail_at:
                return None
        self.failed = event_name
        if self.crash:
            raise SimulatedCrash(event_name)
        raise ClientError({"Error": {"Code": self.code, "Message": "injected"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, model.name)


