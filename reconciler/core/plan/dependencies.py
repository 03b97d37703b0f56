"""The dependencies between a plan's changes (pure): which change must succeed first.

Every change gets a stable id, ``<cron>/<resource>/<action>`` (a task definition's "cron" is
its family), and ``depends_on``: the ids of the changes it waits for, computed by
``with_dependencies`` from one table of rules (``RULES``). Apply runs the changes in
``execution_order`` and skips the dependents of a change that failed. A rule that is not
``blocking`` only orders: its prerequisites go in ``after``, and their failure holds nothing
back (a monitor's, for the registry item that records it). A new kind of resource needs only
its rows in the table.

Schedules target the namespace's topic, not a task definition: they wait for no task
definition (a fire before the registry item exists is refused by dispatch, as always).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache

from reconciler.core.desired import family_of
from reconciler.core.plan.model import Action, Change, Resource

CREATE, UPDATE, DELETE, NO_OP = Action.CREATE, Action.UPDATE, Action.DELETE, Action.NO_OP
WRITES = frozenset({CREATE, UPDATE, DELETE})


class Link(StrEnum):
    """How a rule relates a change to the changes it waits for."""

    SAME_CRON = "same cron"
    # the task definition family the dependent's desired registry item refers to
    DESIRED_FAMILY = "desired task definition"
    # the task definition family the prerequisite's live registry item referred to
    OBSERVED_FAMILY = "previous task definition"


@dataclass(frozen=True)
class Rule:
    """A change of ``resource`` doing one of ``actions`` waits for every change of ``needs``
    doing one of ``needs_actions`` that ``link`` relates to it."""

    resource: Resource
    actions: frozenset[Action]
    needs: Resource
    needs_actions: frozenset[Action]
    link: Link
    why: str
    # the rule holds only for changes whose ``adopting`` is this (None: for every change)
    adopting: bool | None = None
    # False: only an order (``Change.after``): a failure of the prerequisite does not hold
    # the dependent back
    blocking: bool = True


RULES: tuple[Rule, ...] = (
    Rule(Resource.SCHEDULE, frozenset({DELETE}), Resource.SCHEDULE, frozenset({CREATE}),
         Link.SAME_CRON, "a backend switch deletes the old schedule once the new one exists"),
    # a registry no-op is listed so that apply's rewrite of ``schedule_since`` (the schedule
    # was re-created) comes after the schedule
    Rule(Resource.REGISTRY, WRITES | {NO_OP}, Resource.SCHEDULE, WRITES, Link.SAME_CRON,
         "the registry item records the cron's schedules: written once they are in place, "
         "deleted after them", adopting=False),
    Rule(Resource.SCHEDULE, WRITES, Resource.REGISTRY, frozenset({CREATE}),
         Link.SAME_CRON, "an adopted live schedule (or a rule the cron replaces) is "
         "re-targeted at the dispatch topic, and the cron's other schedules created or "
         "deleted, once the registry item exists, so that no fire finds an unknown cron",
         adopting=True),
    Rule(Resource.SCHEDULE, frozenset({CREATE, DELETE}), Resource.SCHEDULE,
         frozenset({UPDATE}), Link.SAME_CRON, "a rule the cron replaces is handed over to "
         "dispatch (an update) before the cron's schedule is created and before the rule is "
         "deleted: a rule still starting its task itself beside the new schedule would start "
         "a run twice"),
    Rule(Resource.REGISTRY, frozenset({CREATE, UPDATE}), Resource.TASK_DEFINITION,
         frozenset({CREATE}), Link.DESIRED_FAMILY,
         "the registry item records the ARN of the task definition it runs"),
    Rule(Resource.REGISTRY, frozenset({CREATE, UPDATE, NO_OP}), Resource.MONITOR, WRITES,
         Link.SAME_CRON, "the registry item records the cron's monitor (its ID and ping URL) "
         "as this apply left it; a monitor's failure holds back nothing else of the cron",
         blocking=False),
    Rule(Resource.REGISTRY, frozenset({DELETE}), Resource.MONITOR, frozenset({DELETE}),
         Link.SAME_CRON, "a removed cron's registry item goes once its monitor is deleted: "
         "a monitor that could not be deleted keeps the item, and the next pass retries"),
    Rule(Resource.TASK_DEFINITION, frozenset({DELETE}), Resource.REGISTRY,
         frozenset({UPDATE, DELETE}), Link.OBSERVED_FAMILY,
         "a task definition is deregistered once no registry item refers to it"),
)


def change_id(change: Change) -> str:
    return f"{change.cron}/{change.resource}/{change.action}"


def _keys(change: Change, link: Link, namespace: str) -> tuple[str, ...]:
    """What ``link`` compares of ``change``: its cron, or a task definition family."""
    if link is Link.SAME_CRON or change.resource == Resource.TASK_DEFINITION:
        return (change.cron,)
    item = change.desired if link is Link.DESIRED_FAMILY else change.observed
    td_hash = getattr(item, "task_definition_hash", None)
    return (_family_of(namespace, td_hash),) if td_hash else ()


@lru_cache(maxsize=1024)
def _family_of(namespace: str, td_hash: str) -> str:
    return family_of(namespace, td_hash)


def with_dependencies(changes: tuple[Change, ...] | list[Change], namespace: str,
                      rules: tuple[Rule, ...] = RULES) -> tuple[Change, ...]:
    """``changes`` with their ids (``change_id``; a repeated one gets ``#2``, ``#3``...) and
    their ``depends_on`` by ``rules``, in the same order."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for change in changes:
        base = change_id(change)
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    # per rule: what ``link`` compares -> the ids of the changes it may wait for, in order
    providers: list[dict[str, list[str]]] = []
    for rule in rules:
        by_key: dict[str, list[str]] = {}
        for index, change in enumerate(changes):
            if change.resource == rule.needs and change.action in rule.needs_actions:
                for key in _keys(change, rule.link, namespace):
                    by_key.setdefault(key, []).append(ids[index])
        providers.append(by_key)
    out = []
    for index, change in enumerate(changes):
        needs: dict[str, None] = {}
        after: dict[str, None] = {}
        for rule, by_key in zip(rules, providers, strict=True):
            if change.resource != rule.resource or change.action not in rule.actions:
                continue
            if rule.adopting is not None and change.adopting != rule.adopting:
                continue
            for key in _keys(change, rule.link, namespace):  # at most one
                for other in by_key.get(key, ()):
                    if other != ids[index]:
                        (needs if rule.blocking else after)[other] = None
        out.append(replace(change, id=ids[index], depends_on=tuple(needs),
                           after=tuple(k for k in after if k not in needs)))
    return tuple(out)


def execution_order(changes: tuple[Change, ...]) -> tuple[Change, ...]:
    """A topological order of ``depends_on``: among the changes ready, the earliest listed
    first (so a plan already in dependency order runs as listed). A dependency on an id not
    in the plan or a cycle is a planner bug: ``ValueError``."""
    index = {change.id: i for i, change in enumerate(changes)}
    if len(index) != len(changes):
        raise ValueError("plan changes without unique ids")
    waiting = {}
    dependents: dict[str, list[int]] = {}
    for i, change in enumerate(changes):
        prerequisites = (*change.depends_on, *change.after)
        for dep in prerequisites:
            if dep not in index:
                raise ValueError(f"change {change.id} depends on {dep}, which is not planned")
            dependents.setdefault(dep, []).append(i)
        waiting[i] = len(set(prerequisites))
    ready = [i for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[Change] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(changes[i])
        for j in dict.fromkeys(dependents.get(changes[i].id, ())):
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(changes):
        done = {change.id for change in order}
        stuck = sorted(c.id for c in changes if c.id not in done)
        raise ValueError(f"plan changes depend on each other in a cycle: {', '.join(stuck)}")
    return tuple(order)
