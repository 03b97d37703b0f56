"""ECS: the namespace's cluster (an existing, named cluster is used as it is)."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying


def ensure_cluster(clients: AwsClients, name: str, tags: dict[str, str],
                   capacity_providers: tuple[str, ...] = ()) -> tuple[str, str]:
    """Make an ACTIVE cluster ``name`` exist; ``(cluster_arn, created|found)``. A cluster it
    creates gets the Fargate capacity providers of ``capacity_providers`` (FARGATE,
    FARGATE_SPOT) associated; other providers, and an existing cluster, are left as they are."""
    ecs = clients.client("ecs")
    found = call_retrying(ecs.describe_clusters, clusters=[name])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    if active:
        return active[0]["clusterArn"], "found"
    kwargs = {}
    fargate = [p for p in capacity_providers if p in ("FARGATE", "FARGATE_SPOT")]
    if fargate:
        kwargs["capacityProviders"] = fargate
    response = call_retrying(ecs.create_cluster, clusterName=name,
                             tags=[{"key": k, "value": v} for k, v in tags.items()], **kwargs)
    return response["cluster"]["clusterArn"], "created"
