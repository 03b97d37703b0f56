"""Observe: read the registry and every live resource of the namespace, in few API calls.

The registry Scan also reads the namespace's recorded settings: a pass of a process whose
settings are no longer the recorded ones (changed by ``cronctl bootstrap`` since it started)
is refused.

Per pass: one registry Scan (paged), ListRules(NamePrefix=<ns>-) with one ListTargetsByRule per
rule and ListTagsForResource only for rules the registry does not account for; ListSchedules
of the group ``<ns>`` with one GetSchedule per schedule and the group's tags only when a
schedule is not in the registry; ListTaskDefinitionFamilies(<ns>-td-) with one
DescribeTaskDefinition (tags included) per family; the namespace's monitors at its
monitoring service (``service/monitoring/monitors.py``: one list, when it has one).
"""

from __future__ import annotations

from reconciler.adapters import registry, rules, schedules, taskdefs
from reconciler.adapters.aws import AwsClients
from reconciler.core.plan.model import Observed, ObservedSchedule
from reconciler.errors import ConfigError, NotFound
from reconciler.service.monitoring.monitors import observe_monitors
from reconciler.service.namespace import check_unchanged
from reconciler.settings import Settings


def not_set_up(settings: Settings) -> str:
    return (f"registry table {settings.registry_table} not found: namespace "
            f"{settings.namespace!r} is not set up; run `cronctl bootstrap --namespace "
            f"{settings.namespace}` (or deploy deploy/cloudformation.yaml) first")


def observe(clients: AwsClients, settings: Settings, account: str,
            replaced_rules: tuple[str, ...] = ()) -> Observed:
    """Raises ConfigError when the namespace has no registry table (not bootstrapped).
    ``replaced_rules``: the rules named by desired crons' ``replaces`` (read by
    ``_observe_replaced``)."""
    try:
        items, record = registry.scan_with_namespace(clients, settings)
    except NotFound as exc:
        raise ConfigError(not_set_up(settings)) from exc
    check_unchanged(settings, record)
    known_arns = {item.schedule_arn for item in items.values() if item.schedule_arn}
    return Observed(
        registry=items,
        rules=_observe_rules(clients, settings, known_arns),
        schedules=_observe_schedules(clients, settings, account, known_arns),
        task_definitions=taskdefs.observe(clients, settings.namespace),
        monitors=observe_monitors(settings, items),
        replaced=_observe_replaced(clients, replaced_rules),
    )


def _observe_rules(clients: AwsClients, settings: Settings,
                   known_arns: set[str]) -> dict[str, ObservedSchedule]:
    found = {}
    for rule in rules.list_rules(clients, f"{settings.namespace}-"):
        if rule["Name"] == settings.events_rule_name:
            # the namespace's ECS events rule: never a cron's, only ever a name collision
            found[rule["Name"]] = rules.observed(rule, None, {})
            continue
        tag_map = None if rule["Arn"] in known_arns else rules.tags(clients, rule["Arn"])
        target = rules.our_target(clients, rule["Name"])
        found[rule["Name"]] = rules.observed(rule, target, tag_map)
    return found


def _observe_schedules(clients: AwsClients, settings: Settings, account: str,
                       known_arns: set[str]) -> dict[str, ObservedSchedule]:
    group = settings.schedule_group
    summaries = schedules.list_names(clients, group)
    group_tag_map = None
    if any(s["Arn"] not in known_arns for s in summaries):
        group_tag_map = schedules.group_tags(clients, settings.region, account, group)
    found = {}
    for summary in summaries:
        raw = schedules.get(clients, group, summary["Name"])
        if raw is not None:
            found[raw["Name"]] = schedules.observed(raw, group_tag_map)
    return found


def _observe_replaced(clients: AwsClients,
                      names: tuple[str, ...]) -> dict[str, ObservedSchedule]:
    """Each rule a desired cron ``replaces`` (whatever its name): DescribeRule, then, while it
    exists, ListTargetsByRule and its tags (``core/plan/planner.py`` hands it over to
    dispatch, creates the cron's schedule, then deletes it)."""
    found = {}
    for name in sorted(set(names)):
        rule = rules.describe(clients, name)
        if rule is not None:
            found[name] = rules.observed(rule, rules.only_target(clients, name),
                                         rules.tags(clients, rule["Arn"]))
    return found
