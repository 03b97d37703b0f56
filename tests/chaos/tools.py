"""Small tools the chaos scenarios share: calls on threads of their own (always joined with a
deadline), SNS-like redelivery, predicates that pick one table's or one replica's requests out
of the proxy's traffic, the events queue's visibility, and the one thing the emulator cannot be
asked to do over HTTP (forget a task, as ECS forgets stopped tasks after about an hour)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from reconciler.service.control.reconcile import run_pass
from tests.chaos.namespace import QUIET_SCHEDULE, ChaosNamespace
from tests.support.faultproxy import Request
from tests.support.moto import REGION
from tests.support.sns_delivery import SnsDelivery, answer_json, delivered

ACCOUNT = "123456789012"
JOIN_S = 60.0


class Background:
    """``fn(*args, **kwargs)`` on a thread of its own; ``join`` fails if it does not end."""

    def __init__(self, fn: Callable, *args, name: str = "chaos-call", **kwargs) -> None:
        self.result, self.error = None, None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs) -> None:
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = JOIN_S):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self._thread.name} did not end in {timeout}s"
        if self.error is not None:
            raise self.error
        return self.result


def in_parallel(calls: Iterable[tuple[Callable, tuple]], timeout: float = JOIN_S) -> list:
    """Run every ``(fn, args)`` at once on its own thread; their results, in order."""
    started = [Background(fn, *args, name=f"chaos-parallel-{i}")
               for i, (fn, args) in enumerate(calls)]
    return [call.join(timeout) for call in started]


def redeliver(sns: SnsDelivery, url: str, body: bytes, *, within_s: float = 30.0,
              max_backoff_s: float = 0.5) -> list[tuple[int, str]]:
    """SNS's delivery of one message with its redeliveries (5xx, no answer) until delivered."""
    return sns.deliver(url, body, attempts=1000, within_s=within_s, backoff_s=0.1,
                       max_backoff_s=max_backoff_s)


def final(answers: list[tuple[int, str]]) -> dict:
    """The JSON of the answer SNS counted as delivered; fails when none was."""
    assert answers and delivered(answers[-1][0]), f"never delivered: {answers}"
    return answer_json(answers[-1])


def add_crons(ns: ChaosNamespace, crons: dict[str, str]) -> None:
    """Write more cron files into the namespace's repo and reconcile them (before any daemon
    starts, so no lease is in play)."""
    for name, text in crons.items():
        (ns.repo / "crons.d" / f"{name}.yaml").write_text(text)
    result = run_pass(ns.clients, ns.settings, dry_run=False)
    assert result.ok, (result.errors, result.apply_errors)
    from reconciler.adapters.registry_read import RegistryReader

    registry = RegistryReader(ns.clients, ns.settings)
    for name in crons:
        item = registry.get(name)
        assert item is not None and item.task_definition_arn, f"{name} not registered"
        ns.crons[name] = item.task_definition_arn


def cron_yaml(*, timeout: str = "10m", concurrency: str = "forbid") -> str:
    return (f'schedule: "{QUIET_SCHEDULE}"\n'
            "container:\n  image: busybox\n  arguments: [\"sh\", \"-c\", \"echo hello\"]\n"
            f"timeout: {timeout}\nconcurrency: {concurrency}\n")


# -- picking requests out of the proxy's traffic ------------------------------------------

def on_table(table: str, **key) -> Callable[[Request], bool]:
    """A DynamoDB request on ``table`` (and, if given, on the item with this string key)."""
    def match(request: Request) -> bool:
        body = request.json()
        if body.get("TableName") != table:
            return False
        return all(body.get("Key", body.get("Item", {})).get(k, {}).get("S") == v
                   for k, v in key.items())
    return match


def event_apply(table: str) -> Callable[[Request], bool]:
    """The consumer's (or watchdog's) conditional write of an event-derived record: the only
    executions update that sets ``version``."""
    def match(request: Request) -> bool:
        body = request.json()
        return body.get("TableName") == table and \
            "#version = :version" in body.get("UpdateExpression", "")
    return match


def task_arn_write(table: str) -> Callable[[Request], bool]:
    """Dispatch's recording of the task ARN (``set_task``)."""
    def match(request: Request) -> bool:
        body = request.json()
        return body.get("TableName") == table and \
            body.get("UpdateExpression", "").startswith("SET task_arn = :arn")
    return match


def from_replica(access_key: str) -> Callable[[Request], bool]:
    """Requests signed with ``access_key``: tells replicas apart behind one proxy (the
    emulator puts every key in the same account)."""
    marker = f"Credential={access_key}/"
    return lambda request: marker in request.headers.get("authorization", "")


def replica_env(access_key: str, **settings: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": access_key, **settings}


# -- the events queue ---------------------------------------------------------------------

def queue_url(ns: ChaosNamespace) -> str:
    return ns.clients.client("sqs").get_queue_url(QueueName=ns.settings.queue_name)["QueueUrl"]


def set_visibility_timeout(ns: ChaosNamespace, seconds: int) -> None:
    ns.clients.client("sqs").set_queue_attributes(
        QueueUrl=queue_url(ns), Attributes={"VisibilityTimeout": str(seconds)})


def queue_depth(ns: ChaosNamespace) -> int:
    """Messages in the events queue, visible or received and not yet deleted."""
    attributes = ns.clients.client("sqs").get_queue_attributes(
        QueueUrl=queue_url(ns), AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + \
        int(attributes["ApproximateNumberOfMessagesNotVisible"])


# -- ECS ------------------------------------------------------------------------------------

def stop_task(ns: ChaosNamespace, task_arn: str) -> None:
    """The task ends (the emulator jumps it to STOPPED); no event is sent."""
    ns.clients.client("ecs").stop_task(cluster=ns.settings.cluster_name, task=task_arn,
                                       reason="Essential container in task exited")


def forget_task(ns: ChaosNamespace, task_arn: str) -> None:
    """ECS no longer knows the task (AWS keeps a stopped task for about an hour). The emulator
    has no API for that; it runs in this process, so its ECS state is edited directly."""
    from moto.ecs.models import ecs_backends

    tasks = ecs_backends[ACCOUNT][REGION].tasks[ns.settings.cluster_name]
    assert tasks.pop(task_arn, None) is not None, f"{task_arn} was not known"


def lock_holder(ns: ChaosNamespace, cron: str) -> str | None:
    item = ns.clients.client("dynamodb").get_item(
        TableName=ns.settings.leases_table, Key={"lease_id": {"S": f"lock#{cron}"}},
        ConsistentRead=True).get("Item")
    return item["execution_id"]["S"] if item else None
