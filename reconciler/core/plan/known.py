"""The daemon's known state (pure): what AWS holds, kept between passes.

While a replica holds the leader lease with one generation, only it writes the namespace's
resources, so what its last pass observed, updated with what that pass applied
(``after_apply``), is what AWS holds but for drift made outside cronctl, which the sweep
finds. A pass at a new commit then plans against it and observes nothing (an *incremental*
pass). It is valid under the lease generation and namespace settings version it was made with
(``KnownState.valid_for``), like the loop's memory of the applied commit.

Memory: the registry items and observed schedules of the fleet (no plan, no snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.core.desired import CRON_TAG, DesiredSchedule, DesiredTaskDefinition, ours_tags
from reconciler.core.plan.model import (
    Action,
    Change,
    Observed,
    ObservedSchedule,
    ObservedTaskDefinition,
    Resource,
)
from reconciler.core.plan.sweep import SweepCursor
from reconciler.core.registry_model import RegistryItem


@dataclass(frozen=True)
class KnownState:
    """``observed``: AWS as of the end of the last pass; ``swept_at``: when AWS was last listed
    (a sweep or a full check: the drift check counts from it); ``cursor``: the sweep's
    rotation; ``generation`` / ``settings_version``: what it is valid under."""

    observed: Observed
    swept_at: datetime
    generation: int | None
    settings_version: int | None
    cursor: SweepCursor = SweepCursor()

    def valid_for(self, generation: int | None, settings_version: int | None) -> bool:
        return self.generation is not None and self.generation == generation \
            and self.settings_version == settings_version


def share_specs(observed: Observed, specs) -> Observed:
    """``observed`` with each registry item whose spec equals the loaded spec of its cron
    holding that spec object (the parse cache's): the known state then adds no second copy
    of each spec (about 2.5 KB a cron). Equal specs with the recorded hash theirs only: an
    item that differs keeps its own, so the plan sees what is stored, and the planner may
    take a shared spec's hash from its item (``planner._registry_change``)."""
    loaded = {spec.name: spec for spec in specs}
    registry, shared = {}, False
    for name, item in observed.registry.items():
        spec = loaded.get(name)
        if spec is not None and spec is not item.spec and spec == item.spec \
                and item.spec_hash == spec.spec_hash():
            item, shared = replace(item, spec=spec), True
        registry[name] = item
    return replace(observed, registry=registry) if shared else observed


def after_apply(observed: Observed, applied: tuple[Change, ...],
                written: dict[str, RegistryItem | None], task_definitions: dict[str, str],
                namespace: str) -> Observed:
    """``observed`` with what an apply did: a schedule created or updated is observed as
    written (every field: deep), a deleted one is gone; a registered task definition is
    observed with its ARN, a deregistered one is gone; registry items as ``written`` (None:
    deleted). Monitors are left as they were (a pass reads them again when it has any)."""
    rules, schedules = dict(observed.rules), dict(observed.schedules)
    replaced = dict(observed.replaced)
    tds = dict(observed.task_definitions)
    registry = dict(observed.registry)
    for change in applied:
        if change.resource == Resource.SCHEDULE:
            _schedule(change, rules, schedules, replaced, namespace)
        elif change.resource == Resource.TASK_DEFINITION:
            if change.action == Action.DELETE:
                tds.pop(change.cron, None)
            elif change.action == Action.CREATE and change.cron in task_definitions:
                tds[change.cron] = _task_definition(change.desired, task_definitions[change.cron])
    for family, arn in task_definitions.items():
        if family in tds and tds[family].arn != arn:
            tds[family] = replace(tds[family], arn=arn)
    for cron, item in written.items():
        if item is None:
            registry.pop(cron, None)
        else:
            registry[cron] = item
    return replace(observed, registry=registry, rules=rules, schedules=schedules,
                   task_definitions=tds, replaced=replaced, coverage=None)


def _schedule(change: Change, rules: dict, schedules: dict, replaced: dict,
              namespace: str) -> None:
    before = change.observed
    name = (change.desired or before.current).name
    handed_over = isinstance(before, ObservedSchedule) and name in replaced \
        and replaced[name].arn == before.arn
    if change.action == Action.DELETE:
        live = before.current
        (rules if live.backend == "rules" else schedules).pop(live.name, None)
        replaced.pop(live.name, None)
        return
    wanted: DesiredSchedule = change.desired
    tags = before.tags if handed_over else ours_tags(namespace, **{CRON_TAG: change.cron})
    now = ObservedSchedule(arn=before.arn if handed_over else wanted.arn, current=wanted,
                           tags=tags)
    if handed_over:
        replaced[name] = now
        if name in rules:  # listed too (its name has the namespace's prefix)
            rules[name] = now
        return
    (rules if wanted.backend == "rules" else schedules)[wanted.name] = now


def _task_definition(wanted: DesiredTaskDefinition, arn: str) -> ObservedTaskDefinition:
    tags = {t["key"]: t["value"] for t in wanted.register_args.get("tags", [])}
    return ObservedTaskDefinition(family=wanted.family, arn=arn, tags=tags)
