"""ECS: the namespace's cluster (an existing, named cluster is used as it is)."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying


def ensure_cluster(clients: AwsClients, name: str, tags: dict[str, str]) -> tuple[str, str]:
    """Make an ACTIVE cluster ``name`` exist; ``(cluster_arn, created|found)``."""
    ecs = clients.client("ecs")
    found = call_retrying(ecs.describe_clusters, clusters=[name])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    if active:
        return active[0]["clusterArn"], "found"
    response = call_retrying(ecs.create_cluster, clusterName=name,
                             tags=[{"key": k, "value": v} for k, v in tags.items()])
    return response["cluster"]["clusterArn"], "created"
