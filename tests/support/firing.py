"""A live rule made by hand, and a harness that fires a cron's schedules as they are at each
moment (EventBridge and Scheduler do not fire on the emulator): tests/test_import_adopt.py and
tests/test_import_replace.py take a rule over during a reconcile pass and count the tasks each
scheduled time started across the switch.

An ECS target starts the task directly (counted); a dispatch target delivers to the
dispatcher, which starts at most one task per cron and scheduled time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError

from reconciler.adapters.aws import AwsClients
from reconciler.core.executions.records import execution_id
from reconciler.service.control.reconcile import run_pass
from reconciler.service.execution.dispatch import Dispatcher
from tests.support.ecs_events import tasks_started_by
from tests.support.moto import REGION

ROLE = "arn:aws:iam::123456789012:role/events-run-task"
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
CRON = "invoices"


def live_rule(settings, clients: AwsClients, name: str, description: str | None = None) -> None:
    """Rule ``name`` made by hand that starts cron ``invoices``' ECS task itself, every 5
    minutes."""
    td = clients.client("ecs").register_task_definition(
        family=CRON, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
        cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": "ghcr.io/example/billing:3",
                               "command": ["billing", "invoices"]}],
    )["taskDefinition"]["taskDefinitionArn"]
    events = clients.client("events")
    events.put_rule(Name=name, ScheduleExpression="cron(*/5 * * * ? *)", State="ENABLED",
                    **({"Description": description} if description is not None else {}))
    events.put_targets(Rule=name, Targets=[{
        "Id": "run", "Arn": f"arn:aws:ecs:{REGION}:123456789012:cluster/{settings.cluster_name}",
        "RoleArn": ROLE, "EcsParameters": {"TaskDefinitionArn": td, "TaskCount": 1}}])


class Fires:
    """Fire the next scheduled time (every 5 minutes from ``START``) from every schedule of
    cron ``invoices`` as they are now: the rules ``rules`` and, when given, the Scheduler
    schedule ``group``/``invoices``; count the tasks started per scheduled time."""

    def __init__(self, settings, rules: tuple[str, ...], group: str | None = None) -> None:
        self.clients = AwsClients(settings)
        self.settings = settings
        self.dispatcher = Dispatcher(self.clients, settings)
        self.rules = rules
        self.group = group
        self.direct: dict[str, int] = {}
        self.times: list[str] = []
        self.sources: dict[str, list[str]] = {}   # time -> "<schedule> <how>" that fired it

    def _rule_targets(self, name: str) -> list[dict]:
        try:
            return self.clients.client("events").list_targets_by_rule(Rule=name)["Targets"]
        except ClientError:
            return []  # no such rule

    def _schedule_targets(self) -> list[dict]:
        if self.group is None:
            return []
        try:
            return [self.clients.client("scheduler").get_schedule(
                Name=CRON, GroupName=self.group)["Target"]]
        except ClientError:
            return []

    def fire(self, *_args, **_kwargs) -> None:
        at = (START + timedelta(minutes=5 * len(self.times))).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.times.append(at)
        self.sources[at] = []
        fired = [(rule, t) for rule in self.rules for t in self._rule_targets(rule)]
        if self.group is not None:
            fired += [(f"{self.group}/{CRON}", t) for t in self._schedule_targets()]
        for source, target in fired:
            if "EcsParameters" in target:
                self.direct[at] = self.direct.get(at, 0) + 1
                self.sources[at].append(f"{source} ecs")
                continue
            if "InputTransformer" in target:
                text = target["InputTransformer"]["InputTemplate"].replace('"<time>"', '""')
            else:
                text = target["Input"]
            self.sources[at].append(f"{source} dispatch")
            self.dispatcher.dispatch(json.loads(text)["cron"], at)

    def starts(self) -> dict[str, int]:
        """Tasks started per fired time."""
        return {at: self.direct.get(at, 0) + len(tasks_started_by(
            self.clients, self.settings, execution_id(CRON, at))) for at in self.times}

    def around(self, clients: AwsClients, settings, services: tuple[str, ...]):
        """One reconcile pass, firing once before it, after each of its calls to
        ``services``, and once after it."""
        self.fire()
        for service in services:
            clients.client(service).meta.events.register(f"after-call.{service}.*", self.fire)
        try:
            result = run_pass(clients, settings, dry_run=False)
        finally:
            for service in services:
                clients.client(service).meta.events.unregister(f"after-call.{service}.*",
                                                                self.fire)
        self.fire()
        return result
