"""EventBridge rules (default bus) as cron schedules: list, describe targets, tags, upsert,
delete. A rule's only target of ours has Id ``cronctl-dispatch``."""

from __future__ import annotations

import json

from reconciler.adapters.aws import AwsClients, call_retrying
from reconciler.core.desired import (
    CRON_TAG,
    TARGET_ID,
    DesiredSchedule,
    ours_tags,
)
from reconciler.core.plan.model import ObservedSchedule
from reconciler.errors import NotFound, PermanentError


def list_rules(clients: AwsClients, prefix: str) -> list[dict]:
    """Every rule whose name starts with ``prefix`` (ListRules pages)."""
    events = clients.client("events")
    rules, kwargs = [], {"NamePrefix": prefix, "Limit": 100}  # AWS maximum page size
    while True:
        page = call_retrying(events.list_rules, **kwargs)
        rules.extend(page.get("Rules", []))
        if not page.get("NextToken"):
            return rules
        kwargs["NextToken"] = page["NextToken"]


def describe(clients: AwsClients, name: str) -> dict | None:
    """DescribeRule of ``name`` on the default bus, or None when there is no such rule."""
    try:
        return call_retrying(clients.client("events").describe_rule, Name=name)
    except NotFound:
        return None


def our_target(clients: AwsClients, rule: str) -> dict | None:
    """The rule's ``cronctl-dispatch`` target, or None (removed, or the rule is gone)."""
    try:
        page = call_retrying(clients.client("events").list_targets_by_rule, Rule=rule)
    except NotFound:
        return None
    return next((t for t in page.get("Targets", []) if t.get("Id") == TARGET_ID), None)


def only_target(clients: AwsClients, rule: str) -> dict | None:
    """The rule's ``cronctl-dispatch`` target when it is the rule's only target; None when it
    has none or the rule has another (a rule a cron replaces that still starts a task
    itself: ``put(hand_over=True)`` turns those into dispatch targets)."""
    try:
        page = call_retrying(clients.client("events").list_targets_by_rule, Rule=rule)
    except NotFound:
        return None
    targets = page.get("Targets", [])
    return targets[0] if [t.get("Id") for t in targets] == [TARGET_ID] else None


def tags(clients: AwsClients, arn: str) -> dict[str, str]:
    try:
        page = call_retrying(clients.client("events").list_tags_for_resource, ResourceARN=arn)
    except NotFound:
        return {}
    return {t["Key"]: t["Value"] for t in page.get("Tags", [])}


def observed(rule: dict, target: dict | None, tag_map: dict | None,
             deep: bool = True) -> ObservedSchedule:
    """A rule as observed; ``deep`` False: from ListRules alone (its targets not read)."""
    transformer = (target or {}).get("InputTransformer") or {}
    paths = transformer.get("InputPathsMap")
    current = DesiredSchedule(
        backend="rules", name=rule["Name"], arn=rule["Arn"], group=None,
        expression=rule.get("ScheduleExpression", ""), timezone="UTC",
        state=rule.get("State", ""), description=rule.get("Description", ""),
        target_arn=target.get("Arn") if target else None,
        input=transformer.get("InputTemplate") if target else None,
        input_paths=json.dumps(paths, sort_keys=True) if paths is not None else None)
    return ObservedSchedule(arn=rule["Arn"], current=current, tags=tag_map, deep=deep)


def put(clients: AwsClients, namespace: str, cron: str, wanted: DesiredSchedule,
        existing: bool = False, hand_over: bool = False) -> str:
    """Create or update the rule and its target (PutRule upserts); returns the rule ARN.

    PutRule assigns tags only when it creates the rule, so an ``existing`` rule is re-tagged
    with TagResource: the ownership tags survive edits made outside cronctl.

    ``hand_over`` (an existing rule without our target: adopted, e.g. by ``cronctl import aws
    --adopt``): its other targets (an ECS task started directly) are first turned into our
    dispatch target in the same PutTargets call, so that from that call on every fire goes
    through dispatch (a fire delivered twice starts one task: the execution id), and are then
    removed: no fire between is lost or starts a task outside dispatch.
    """
    events = clients.client("events")
    tag_map = ours_tags(namespace, **{CRON_TAG: cron})
    tag_list = [{"Key": k, "Value": v} for k, v in sorted(tag_map.items())]
    arn = call_retrying(
        events.put_rule, Name=wanted.name, ScheduleExpression=wanted.expression,
        State=wanted.state, Description=wanted.description, Tags=tag_list)["RuleArn"]
    if existing:
        call_retrying(events.tag_resource, ResourceARN=arn, Tags=tag_list)
    dispatch = {"Arn": wanted.target_arn,
                "InputTransformer": {"InputPathsMap": json.loads(wanted.input_paths or "{}"),
                                     "InputTemplate": wanted.input}}
    others = []
    if hand_over:
        targets = call_retrying(events.list_targets_by_rule, Rule=wanted.name)
        others = [t["Id"] for t in targets.get("Targets", []) if t["Id"] != TARGET_ID]
    result = call_retrying(events.put_targets, Rule=wanted.name, Targets=[
        {"Id": target_id, **dispatch} for target_id in (TARGET_ID, *others)])
    if result.get("FailedEntryCount"):
        raise_failed(result)
    if others:
        result = call_retrying(events.remove_targets, Rule=wanted.name, Ids=others)
        if result.get("FailedEntryCount"):
            raise_failed(result)
    return arn


def raise_failed(result: dict) -> None:
    entry = result["FailedEntries"][0]
    raise PermanentError(f"PutTargets: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}",
                         entry.get("ErrorCode", ""))


def delete(clients: AwsClients, name: str) -> None:
    """Remove our target, then the rule; a rule already gone is fine."""
    events = clients.client("events")
    try:
        page = call_retrying(events.list_targets_by_rule, Rule=name)
        ids = [t["Id"] for t in page.get("Targets", [])]
        if ids:
            call_retrying(events.remove_targets, Rule=name, Ids=ids)
        call_retrying(events.delete_rule, Name=name)
    except NotFound:
        return
