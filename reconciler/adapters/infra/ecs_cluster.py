"""ECS: the namespace's cluster (an existing, named cluster is used as it is).

RunTask refuses a capacity-provider strategy naming a provider the cluster does not have, so
bootstrap checks the strategy against the cluster's providers (``capacityProviders`` of
DescribeClusters) and refuses, saying how to add them, rather than record a strategy every run
would fail with.
"""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.errors import ConfigError

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def ensure_cluster(clients: AwsClients, name: str, tags: dict[str, str],
                   capacity_providers: tuple[str, ...] = ()) -> tuple[str, str]:
    """Make an ACTIVE cluster ``name`` exist; ``(cluster_arn, created|found)``. A cluster it
    creates gets the Fargate capacity providers of ``capacity_providers`` (FARGATE,
    FARGATE_SPOT) associated; other providers, and an existing cluster, are left as they are.
    ``ConfigError`` when the cluster lacks a provider of ``capacity_providers``."""
    ecs = clients.client("ecs")
    found = call_retrying(ecs.describe_clusters, clusters=[name])["clusters"]
    active = [c for c in found if c.get("status") == "ACTIVE"]
    if active:
        check_capacity_providers(active[0], capacity_providers)
        return active[0]["clusterArn"], "found"
    kwargs = {}
    fargate = [p for p in capacity_providers if p in FARGATE_PROVIDERS]
    if fargate:
        kwargs["capacityProviders"] = fargate
    response = call_retrying(ecs.create_cluster, clusterName=name,
                             tags=[{"key": k, "value": v} for k, v in tags.items()], **kwargs)
    check_capacity_providers(response["cluster"], capacity_providers)
    return response["cluster"]["clusterArn"], "created"


def check_capacity_providers(cluster: dict, wanted: tuple[str, ...]) -> None:
    """Refuse a strategy naming a provider ``cluster`` (a DescribeClusters entry) lacks."""
    have = list(cluster.get("capacityProviders") or [])
    missing = [p for p in dict.fromkeys(wanted) if p not in have]
    if not missing:
        return
    name = cluster.get("clusterName") or cluster["clusterArn"].rsplit("/", 1)[-1]
    providers = " ".join([*have, *missing])
    default = cluster.get("defaultCapacityProviderStrategy") or []
    strategy = " ".join(
        f"capacityProvider={s['capacityProvider']},weight={s.get('weight', 0)},"
        f"base={s.get('base', 0)}" for s in default) or "'[]'"
    plural = "s" if len(missing) > 1 else ""
    custom = [p for p in missing if p not in FARGATE_PROVIDERS]
    made = (f" (create {', '.join(custom)} first: `aws ecs create-capacity-provider`)"
            if custom else "")
    raise ConfigError(
        f"cluster {name} has no capacity provider{plural} {', '.join(missing)}, which the "
        f"capacity-provider strategy names (RunTask would refuse every run): add "
        f"{'them' if plural else 'it'}{made} with `aws ecs put-cluster-capacity-providers "
        f"--cluster {name} --capacity-providers {providers} "
        f"--default-capacity-provider-strategy {strategy}` (its current providers and default "
        "strategy kept), or choose providers it has (--capacity-provider / "
        "CRONCTL_CAPACITY_PROVIDERS) or a launch type (--launch-type); nothing recorded")
