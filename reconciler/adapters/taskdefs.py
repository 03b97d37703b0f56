"""ECS task definitions of a namespace: families ``<ns>-td-<hash16>``, one ACTIVE revision
each, tagged with their content hash."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.desired import DesiredTaskDefinition
from reconciler.core.plan.model import ObservedTaskDefinition
from reconciler.errors import NotFound, PermanentError


def families(clients: AwsClients, prefix: str) -> list[str]:
    ecs = clients.client("ecs")
    found, kwargs = [], {"familyPrefix": prefix, "status": "ACTIVE"}
    while True:
        page = call_retrying(ecs.list_task_definition_families, **kwargs)
        found.extend(page.get("families", []))
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def latest_active(clients: AwsClients, family: str) -> ObservedTaskDefinition | None:
    """The latest ACTIVE revision of ``family`` with its tags, or None."""
    try:
        page = call_retrying(clients.client("ecs").describe_task_definition,
                             taskDefinition=family, include=["TAGS"])
    except PermanentError as exc:
        # ECS answers ClientException for a family with no (ACTIVE) revision
        if isinstance(exc, NotFound) or exc.code == "ClientException":
            return None
        raise
    td = page["taskDefinition"]
    if td.get("status") != "ACTIVE":
        return None
    tag_map = {t["key"]: t["value"] for t in page.get("tags", [])}
    return ObservedTaskDefinition(family=family, arn=td["taskDefinitionArn"], tags=tag_map)


def observe(clients: AwsClients, namespace: str) -> dict[str, ObservedTaskDefinition]:
    found = {}
    for family in families(clients, f"{namespace}-td-"):
        live = latest_active(clients, family)
        if live is not None:
            found[family] = live
    return found


def ensure(clients: AwsClients, wanted: DesiredTaskDefinition) -> str:
    """The ARN of an ACTIVE revision of the family, registering one only if there is none
    (so a crash between register and the registry write adds no revision)."""
    live = latest_active(clients, wanted.family)
    if live is not None:
        return live.arn
    page = call_retrying(clients.client("ecs").register_task_definition, **wanted.register_args)
    return page["taskDefinition"]["taskDefinitionArn"]


def deregister_family(clients: AwsClients, family: str) -> None:
    """Deregister every ACTIVE revision of ``family``."""
    ecs = clients.client("ecs")
    kwargs = {"familyPrefix": family, "status": "ACTIVE"}
    arns = []
    while True:
        page = call_retrying(ecs.list_task_definitions, **kwargs)
        arns.extend(page.get("taskDefinitionArns", []))
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    for arn in arns:
        if arn.split("/")[-1].rsplit(":", 1)[0] != family:
            continue
        try:
            call_retrying(ecs.deregister_task_definition, taskDefinition=arn)
        except NotFound:
            continue
