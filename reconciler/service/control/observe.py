"""Observe: read the registry and every live resource of the namespace, in few API calls.

The registry Scan also reads the namespace's recorded settings: a pass of a process whose
settings are no longer the recorded ones (changed by ``cronctl bootstrap`` since it started)
is refused.

A *full* observe (``observe``: a plain folder, ``--full-check``, changed settings): one
registry Scan (paged), ListRules(NamePrefix=<ns>-) with one ListTargetsByRule per rule and
ListTagsForResource only for rules the registry does not account for; ListSchedules of the
group ``<ns>`` with one GetSchedule per schedule and the group's tags only when a schedule is
not in the registry; ListTaskDefinitionFamilies(<ns>-td-) with one DescribeTaskDefinition
(tags included) per family; the namespace's monitors at its monitoring service
(``service/monitoring/monitors.py``: one list, when it has one).

A *sweep* (``observe_sweep``) makes the same list calls and the Scan, but reads one by one
only what the registry does not account for (always: its tags decide ownership) and a budgeted
rotation of the rest (``core/plan/sweep.py``); the others are *shallow* observations
(``deep`` False), in which the planner sees only the drift a list call shows. A task
definition family that no registry item references is always described.

An *incremental* pass observes nothing (``refresh``: the daemon's known state, with the rules
named by changed crons' ``replaces`` read again, and the monitors when there is a service).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.adapters import registry, rules, schedules, taskdefs
from reconciler.adapters.aws import AwsClients
from reconciler.core.desired import family_of
from reconciler.core.plan.model import (
    DeepCheck,
    Observed,
    ObservedSchedule,
    ObservedTaskDefinition,
)
from reconciler.core.plan.sweep import (
    BUCKETS,
    RULES,
    SCHEDULES,
    TASK_DEFINITIONS,
    SweepCursor,
    budget,
    round_warning,
    select,
)
from reconciler.core.quotas import DEFAULT_BUCKETS, Bucket
from reconciler.errors import ConfigError, NotFound
from reconciler.service.monitoring.monitors import observe_monitors
from reconciler.service.namespace import check_unchanged
from reconciler.settings import Settings


def not_set_up(settings: Settings) -> str:
    return (f"registry table {settings.registry_table} not found: namespace "
            f"{settings.namespace!r} is not set up; run `cronctl bootstrap --namespace "
            f"{settings.namespace}` (or deploy deploy/cloudformation.yaml) first")


@dataclass(frozen=True)
class SweepRequest:
    """A sweep's rotation (``cursor``), the interval its budget is sized for, the period in
    which every resource must be read one by one, and the pass's clock."""

    cursor: SweepCursor
    interval_s: float
    period_s: float
    now: datetime
    # the namespace's API rates (``core/quotas.configured``); None: AWS's defaults
    buckets: dict[str, Bucket] | None = None


class _Rotations:
    """The selection of one observe: everything (``request`` None) or a sweep's share."""

    def __init__(self, request: SweepRequest | None) -> None:
        self.request = request
        self.cursor = request.cursor if request else SweepCursor()
        self.totals: dict[str, int] = {}
        self.read = 0
        self.listed = 0
        self.since: list = []

    def choose(self, kind: str, names: list[str]) -> frozenset[str] | None:
        """The names of ``kind`` to read one by one (None: all of them)."""
        if self.request is None:
            return None
        req = self.request
        count = budget(len(names), req.interval_s, req.period_s,
                       (req.buckets or DEFAULT_BUCKETS).get(BUCKETS[kind]))
        chosen, rotation = select(names, self.cursor.of(kind), count, req.now)
        self.cursor = self.cursor.with_(kind, rotation)
        self.totals[kind] = len(names)
        self.read += len(chosen)
        if len(names) > len(chosen):
            self.listed += len(names) - len(chosen)
            self.since.append(rotation.since)
        return chosen

    def coverage(self) -> DeepCheck | None:
        if self.request is None:
            return None
        since = None if not self.since or None in self.since else min(self.since)
        return DeepCheck(read=self.read, listed=self.listed, since=since,
                         warning=round_warning(self.totals, self.request.interval_s,
                                               self.request.period_s, self.request.buckets))


def observe(clients: AwsClients, settings: Settings, account: str,
            replaced_rules: tuple[str, ...] = ()) -> Observed:
    """Raises ConfigError when the namespace has no registry table (not bootstrapped).
    ``replaced_rules``: the rules named by desired crons' ``replaces`` (read by
    ``_observe_replaced``)."""
    return _observe(clients, settings, account, replaced_rules, _Rotations(None))


def observe_sweep(clients: AwsClients, settings: Settings, account: str,
                  replaced_rules: tuple[str, ...], request: SweepRequest
                  ) -> tuple[Observed, SweepCursor]:
    """``observe`` with a sweep's budgeted deep check; also the rotation after it."""
    rotations = _Rotations(request)
    observed = _observe(clients, settings, account, replaced_rules, rotations)
    return observed, rotations.cursor


def refresh(clients: AwsClients, settings: Settings, known: Observed,
            replaced_rules: tuple[str, ...], coverage: DeepCheck | None) -> Observed:
    """The daemon's known state for an incremental pass: ``replaced_rules`` (those of crons
    whose spec changed) read again, the monitors read again (nothing without a service)."""
    replaced = dict(known.replaced)
    fresh = _observe_replaced(clients, replaced_rules)
    for name in replaced_rules:
        replaced.pop(name, None)
    replaced.update(fresh)
    return replace(known, replaced=replaced, monitors=observe_monitors(settings, known.registry),
                   coverage=coverage)


def _observe(clients: AwsClients, settings: Settings, account: str,
             replaced_rules: tuple[str, ...], rotations: _Rotations) -> Observed:
    try:
        items, record = registry.scan_with_namespace(clients, settings)
    except NotFound as exc:
        raise ConfigError(not_set_up(settings)) from exc
    check_unchanged(settings, record)
    known_arns = {item.schedule_arn for item in items.values() if item.schedule_arn}
    observed = Observed(
        registry=items,
        rules=_observe_rules(clients, settings, known_arns, rotations),
        schedules=_observe_schedules(clients, settings, account, known_arns, rotations),
        task_definitions=_observe_task_definitions(clients, settings, items, rotations),
        monitors=observe_monitors(settings, items),
        replaced=_observe_replaced(clients, replaced_rules),
    )
    return replace(observed, coverage=rotations.coverage())


def _observe_rules(clients: AwsClients, settings: Settings, known_arns: set[str],
                   rotations: _Rotations) -> dict[str, ObservedSchedule]:
    listed = rules.list_rules(clients, f"{settings.namespace}-")
    chosen = rotations.choose(RULES, [r["Name"] for r in listed
                                      if r["Name"] != settings.events_rule_name
                                      and r["Arn"] in known_arns])
    found = {}
    for rule in listed:
        if rule["Name"] == settings.events_rule_name:
            # the namespace's ECS events rule: never a cron's, only ever a name collision
            found[rule["Name"]] = rules.observed(rule, None, {})
            continue
        known = rule["Arn"] in known_arns
        if known and chosen is not None and rule["Name"] not in chosen:
            found[rule["Name"]] = rules.observed(rule, None, None, deep=False)
            continue
        tag_map = None if known else rules.tags(clients, rule["Arn"])
        target = rules.our_target(clients, rule["Name"])
        found[rule["Name"]] = rules.observed(rule, target, tag_map)
    return found


def _observe_schedules(clients: AwsClients, settings: Settings, account: str,
                       known_arns: set[str], rotations: _Rotations
                       ) -> dict[str, ObservedSchedule]:
    group = settings.schedule_group
    summaries = schedules.list_names(clients, group)
    chosen = rotations.choose(SCHEDULES, [s["Name"] for s in summaries
                                          if s["Arn"] in known_arns])
    group_tag_map = None
    if any(s["Arn"] not in known_arns for s in summaries):
        group_tag_map = schedules.group_tags(clients, settings.region, account, group)
    found = {}
    for summary in summaries:
        if summary["Arn"] in known_arns and chosen is not None \
                and summary["Name"] not in chosen:
            found[summary["Name"]] = schedules.listed(summary)
            continue
        raw = schedules.get(clients, group, summary["Name"])
        if raw is not None:
            found[raw["Name"]] = schedules.observed(raw, group_tag_map)
    return found


def _observe_task_definitions(clients: AwsClients, settings: Settings, items: dict,
                              rotations: _Rotations) -> dict[str, ObservedTaskDefinition]:
    """Each ``<ns>-td-*`` family's latest ACTIVE revision; in a sweep, a family a registry
    item references and the rotation does not reach is taken with the item's ARN."""
    ns = settings.namespace
    referenced = {family_of(ns, item.task_definition_hash): item.task_definition_arn
                  for item in items.values()
                  if item.task_definition_hash and item.task_definition_arn}
    listed = taskdefs.families(clients, f"{ns}-td-")
    chosen = rotations.choose(TASK_DEFINITIONS, [f for f in listed if f in referenced])
    found = {}
    for family in listed:
        if family in referenced and chosen is not None and family not in chosen:
            found[family] = ObservedTaskDefinition(family, referenced[family], deep=False)
            continue
        live = taskdefs.latest_active(clients, family)
        if live is not None:
            found[family] = live
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
