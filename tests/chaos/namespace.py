"""A namespace ready for dispatch, made with the real control plane against the moto server:
bootstrap, cron files in a repo folder, one reconcile pass (so the registry holds each cron
with its task definition, and a daemon's own first pass changes nothing), and a certificate
folder that makes the daemon trust the test SNS signer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.adapters.aws import AwsClients
from reconciler.adapters.registry_read import RegistryReader
from reconciler.core.executions.records import execution_id
from reconciler.service.bootstrap import bootstrap
from reconciler.service.control.reconcile import run_pass
from reconciler.service.namespace import resolve
from reconciler.settings import Settings
from tests.support.ecs_events import tasks_started_by
from tests.support.moto import REGION
from tests.support.sns import TestSigner
from tests.support.sns_delivery import SnsDelivery

# The chaos crons' schedule: tests dispatch their own scheduled times, and a fire of the real
# clock during a test would be started by the watchdog's catch-up (its own run, taking the
# overlap lock): a schedule that fires once a year (Jan 1, 00:00 UTC) keeps the clock out.
QUIET_SCHEDULE = "cron(0 0 1 1 ? *)"
CRON_YAML = f"""\
schedule: "{QUIET_SCHEDULE}"
container:
  image: busybox
  arguments: ["sh", "-c", "echo hello"]
timeout: 10m
"""


@dataclass
class ChaosNamespace:
    """A prepared namespace. ``settings`` and ``clients`` go straight to the moto server
    (not through a fault proxy): what tests read with them is the truth."""

    settings: Settings
    clients: AwsClients
    repo: Path
    certs: Path
    topic_arn: str
    crons: dict[str, str]           # cron name -> its task definition ARN

    @property
    def cron(self) -> str:
        """The first (usually the only) cron."""
        return next(iter(self.crons))

    @property
    def name(self) -> str:
        return self.settings.namespace

    def execution_id(self, scheduled_at: str, cron: str | None = None) -> str:
        return execution_id(cron or self.cron, scheduled_at)

    def sns(self) -> SnsDelivery:
        return SnsDelivery(self.topic_arn)

    def tasks_started_by(self, started_by: str) -> list[dict]:
        """Every task (running or stopped) ECS started with this ``startedBy``."""
        return tasks_started_by(self.clients, self.settings, started_by)

    def execution(self, eid: str) -> dict | None:
        """The execution item as stored (attribute values unwrapped), or None."""
        item = self.clients.client("dynamodb").get_item(
            TableName=self.settings.executions_table, Key={"execution_id": {"S": eid}},
            ConsistentRead=True).get("Item")
        return None if item is None else _plain(item)

    def executions(self) -> list[dict]:
        """Every execution record (not the cron's alert states, kept in the same table under
        keys that start with ``#``)."""
        items = self.clients.client("dynamodb").scan(
            TableName=self.settings.executions_table, ConsistentRead=True)["Items"]
        return [_plain(item) for item in items
                if not item["execution_id"]["S"].startswith("#")]


def _plain(item: dict) -> dict:
    return {k: next(iter(v.values())) for k, v in item.items()}


def prepare_namespace(moto_url: str, root: Path, namespace: str = "chaos",
                      crons: dict[str, str] | None = None) -> ChaosNamespace:
    """Bootstrap ``namespace``, write ``crons`` (name -> YAML; default one cron ``hello``)
    under ``root/repo/crons.d`` and reconcile them once."""
    crons = crons if crons is not None else {"hello": CRON_YAML}
    repo = root / "repo"
    (repo / "crons.d").mkdir(parents=True, exist_ok=True)
    for name, text in crons.items():
        (repo / "crons.d" / f"{name}.yaml").write_text(text)
    certs = root / "certs"
    certs.mkdir(exist_ok=True)
    TestSigner().write_cert(certs)
    settings = Settings(endpoint_url=moto_url, region=REGION, namespace=namespace,
                        repo=str(repo))
    clients = AwsClients(settings)
    infra = bootstrap(clients, settings)
    settings = resolve(clients, settings)   # what bootstrap recorded, as every command reads it
    result = run_pass(clients, settings, dry_run=False)
    assert result.ok, (result.errors, result.apply_errors)
    registry = RegistryReader(clients, settings)
    definitions = {}
    for name in crons:
        item = registry.get(name)
        assert item is not None and item.task_definition_arn, f"{name} not registered"
        definitions[name] = item.task_definition_arn
    return ChaosNamespace(settings=settings, clients=clients, repo=repo, certs=certs,
                          topic_arn=infra.topic_arn, crons=definitions)
