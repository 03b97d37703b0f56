"""EventBridge: the rule that routes the cluster's ECS task state changes to the queue.

The rule lives on the default event bus (AWS service events arrive only there). Lookups are
by name (``DescribeRule``, ``ListTargetsByRule``).
"""

from __future__ import annotations

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.adapters.infra.attributes import as_json, differing
from reconciler.errors import NotFound, PermanentError


def ensure_rule(clients: AwsClients, name: str, pattern: dict, description: str,
                tags: dict[str, str]) -> tuple[str, str]:
    """Make the enabled rule ``name`` match ``pattern``; ``(rule_arn, created|found|updated)``."""
    events = clients.client("events")
    wanted = {"EventPattern": as_json(pattern), "State": "ENABLED"}
    try:
        current = call_retrying(events.describe_rule, Name=name)
    except NotFound:
        current = None
    if current is not None and not differing(current, wanted):
        return current["Arn"], "found"
    kwargs = {"Name": name, "Description": description, **wanted}
    if current is None:  # tags given to PutRule apply to new rules only
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    arn = call_retrying(events.put_rule, **kwargs)["RuleArn"]
    return arn, "created" if current is None else "updated"


def ensure_target(clients: AwsClients, rule: str, target_id: str, target_arn: str) -> str:
    """Make target ``target_id`` of ``rule`` deliver whole events to ``target_arn``."""
    events = clients.client("events")
    targets = call_retrying(events.list_targets_by_rule, Rule=rule)["Targets"]
    existing = next((t for t in targets if t["Id"] == target_id), None)
    wanted = {"Id": target_id, "Arn": target_arn}
    if existing == wanted:
        return "found"
    response = call_retrying(events.put_targets, Rule=rule, Targets=[wanted])
    if response.get("FailedEntryCount"):
        entry = response["FailedEntries"][0]
        raise PermanentError(f"PutTargets: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}",
                             entry.get("ErrorCode", ""))
    return "created" if existing is None else "updated"
