"""EC2: the default VPC's network, used for RunTask when no network is configured."""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.errors import PermanentError
from reconciler.settings import NetworkSettings


def default_network(clients: AwsClients) -> NetworkSettings:
    """The default VPC's subnets and its ``default`` security group, with a public IP.

    Tasks in a default VPC reach image registries only through a public IP (its subnets are
    public and have no NAT), hence ``assign_public_ip``. Raises PermanentError when the
    region has no default VPC.
    """
    ec2 = clients.client("ec2")
    vpcs = call_retrying(ec2.describe_vpcs,
                         Filters=[{"Name": "isDefault", "Values": ["true"]}]).get("Vpcs", [])
    if not vpcs:
        raise PermanentError("no default VPC in this region: record the tasks' network with "
                             "`cronctl bootstrap --subnets IDS --security-groups IDS`",
                             "NoDefaultVpc")
    vpc_id = vpcs[0]["VpcId"]
    in_vpc = {"Name": "vpc-id", "Values": [vpc_id]}
    subnets = call_retrying(ec2.describe_subnets, Filters=[in_vpc]).get("Subnets", [])
    groups = call_retrying(ec2.describe_security_groups, Filters=[
        in_vpc, {"Name": "group-name", "Values": ["default"]}]).get("SecurityGroups", [])
    if not subnets or not groups:
        raise PermanentError(f"default VPC {vpc_id} has no subnets or no default security "
                             "group", "NoDefaultVpc")
    return NetworkSettings(
        subnets=tuple(sorted(s["SubnetId"] for s in subnets)),
        security_groups=(groups[0]["GroupId"],),
        assign_public_ip=True,
    )
