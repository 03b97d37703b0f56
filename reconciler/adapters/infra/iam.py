"""IAM: the namespace's default roles, made by bootstrap when no role ARN is configured.

- ``<ns>-task-execution``: trusted by ``ecs-tasks.amazonaws.com``, with the AWS managed policy
  ``AmazonECSTaskExecutionRolePolicy`` attached (pull images, write awslogs) and the inline
  policy ``read-secrets`` (``secrets_policy``: what ECS needs for ``container.secrets``, as its
  developer guide's "Required IAM permissions for Amazon ECS secrets" says: the account's SSM
  parameters and Secrets Manager secrets in the region, and ``kms:Decrypt`` only through those
  two services), added to an existing role by the next bootstrap;
- ``<ns>-scheduler``: trusted by ``scheduler.amazonaws.com`` (this account only), allowed
  ``sns:Publish`` on the namespace's topic.

Where the managed policy cannot be found (an emulator without AWS's managed policies), the
same permissions are put inline instead.
"""

from __future__ import annotations

import json

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.infra.attributes import canonical
from reconciler.errors import NotFound

EXECUTION_POLICY = "AmazonECSTaskExecutionRolePolicy"
EXECUTION_ACTIONS = ("ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
                     "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage",
                     "logs:CreateLogStream", "logs:PutLogEvents")


SECRETS_POLICY = "read-secrets"


def secrets_policy(partition: str, region: str, account: str) -> dict:
    """Read the values ``container.secrets`` names (ECS ``valueFrom``): any SSM parameter and
    Secrets Manager secret of the account in the region; KMS keys of the account only when
    SSM or Secrets Manager decrypts with them (``kms:ViaService``)."""
    prefix = f"arn:{partition}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "SsmParameters", "Effect": "Allow", "Action": "ssm:GetParameters",
         "Resource": f"{prefix}:ssm:{region}:{account}:parameter/*"},
        {"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": f"{prefix}:secretsmanager:{region}:{account}:secret:*"},
        {"Sid": "DecryptThroughThoseServicesOnly", "Effect": "Allow", "Action": "kms:Decrypt",
         "Resource": f"{prefix}:kms:{region}:{account}:key/*",
         "Condition": {"StringEquals": {"kms:ViaService": [
             f"ssm.{region}.amazonaws.com", f"secretsmanager.{region}.amazonaws.com"]}}},
    ]}


def trust_policy(service: str, account: str | None = None) -> dict:
    statement = {"Effect": "Allow", "Principal": {"Service": service},
                 "Action": "sts:AssumeRole"}
    if account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def publish_policy(topic_arn: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn}]}


def _role(clients: AwsClients, name: str) -> dict | None:
    try:
        return call_retrying(clients.client("iam").get_role, RoleName=name)["Role"]
    except NotFound:
        return None


def _ensure(clients: AwsClients, name: str, trust: dict, description: str,
            tags: dict[str, str]) -> tuple[str, str]:
    iam = clients.client("iam")
    role = _role(clients, name)
    if role is None:
        role = call_retrying(iam.create_role, RoleName=name, Description=description,
                             AssumeRolePolicyDocument=json.dumps(trust),
                             Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())]
                             )["Role"]
        return role["Arn"], "created"
    current = _document(role.get("AssumeRolePolicyDocument"))
    if canonical(current) != canonical(trust):
        call_retrying(iam.update_assume_role_policy, RoleName=name,
                      PolicyDocument=json.dumps(trust))
        return role["Arn"], "updated"
    return role["Arn"], "found"


def _document(value) -> dict | None:
    """A policy document as IAM returns it (URL-encoded JSON, or already parsed)."""
    if isinstance(value, str):
        from urllib.parse import unquote

        return json.loads(unquote(value))
    return value


def _ensure_inline(clients: AwsClients, role: str, policy: str, wanted: dict) -> bool:
    """Put the inline ``policy`` on ``role`` unless it allows the same already; True when put."""
    iam = clients.client("iam")
    try:
        current = _document(call_retrying(iam.get_role_policy, RoleName=role,
                                          PolicyName=policy)["PolicyDocument"])
    except NotFound:
        current = None
    if current is not None and canonical(current) == canonical(wanted):
        return False
    call_retrying(iam.put_role_policy, RoleName=role, PolicyName=policy,
                  PolicyDocument=json.dumps(wanted))
    return True


def ensure_execution_role(clients: AwsClients, name: str, partition: str, region: str,
                          account: str, tags: dict[str, str]) -> tuple[str, str]:
    """The task execution role ``name`` with its policies; ``(arn, created|found|updated)``."""
    arn, status = _ensure(clients, name, trust_policy("ecs-tasks.amazonaws.com"),
                          "cronctl: ECS task execution (images, awslogs, secrets)", tags)
    if _ensure_inline(clients, name, SECRETS_POLICY, secrets_policy(partition, region, account)) \
            and status == "found":
        status = "updated"
    iam = clients.client("iam")
    policy_arn = f"arn:{partition}:iam::aws:policy/service-role/{EXECUTION_POLICY}"
    attached = call_retrying(iam.list_attached_role_policies,
                             RoleName=name).get("AttachedPolicies", [])
    inline = call_retrying(iam.list_role_policies, RoleName=name).get("PolicyNames", [])
    if any(p["PolicyArn"] == policy_arn for p in attached) or EXECUTION_POLICY in inline:
        return arn, status
    try:
        call_retrying(iam.attach_role_policy, RoleName=name, PolicyArn=policy_arn)
    except NotFound:
        call_retrying(iam.put_role_policy, RoleName=name, PolicyName=EXECUTION_POLICY,
                      PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                          {"Effect": "Allow", "Action": list(EXECUTION_ACTIONS),
                           "Resource": "*"}]}))
    return arn, "updated" if status == "found" else status


def ensure_scheduler_role(clients: AwsClients, name: str, account: str, topic_arn: str,
                          tags: dict[str, str]) -> tuple[str, str]:
    """The role EventBridge Scheduler assumes to publish to ``topic_arn``."""
    arn, status = _ensure(clients, name, trust_policy("scheduler.amazonaws.com", account),
                          "cronctl: EventBridge Scheduler publishes to the dispatch topic", tags)
    if _ensure_inline(clients, name, "publish", publish_policy(topic_arn)) and status == "found":
        status = "updated"
    return arn, status
