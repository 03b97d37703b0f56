"""Data of the control plane: what was observed on AWS, and the Plan (pure, frozen).

The same ``Plan`` object is printed by ``--dry-run`` and executed by apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reconciler.core.desired import (
    CRON_TAG,
    Deployment,
    DesiredCron,
    DesiredSchedule,
    DesiredTaskDefinition,
    is_ours,
)
from reconciler.core.monitors.model import DesiredMonitor, MonitorObservation, ObservedMonitor
from reconciler.core.registry_model import RegistryItem


class Resource(StrEnum):
    """The kinds of resource a plan changes (str-valued: printed and compared as their value)."""

    SCHEDULE = "schedule"  # an EventBridge rule or a Scheduler schedule
    TASK_DEFINITION = "task-definition"
    REGISTRY = "registry"
    MONITOR = "monitor"  # a monitor at the namespace's cron-monitoring service


class Action(StrEnum):
    """What a change does to its resource (str-valued: printed and compared as their value)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_OP = "no-op"


# The actions a plan's summary counts (a no-op changes nothing).
COUNTED = (Action.CREATE, Action.UPDATE, Action.DELETE)


@dataclass(frozen=True, slots=True)
class ObservedSchedule:
    """A live rule or Scheduler schedule. ``current`` holds its compared fields in the same
    shape as desired (``target_arn``/``input`` None when our target is missing); ``tags`` is
    None when they were not fetched (the resource is matched by the registry)."""

    arn: str
    current: DesiredSchedule
    tags: dict[str, str] | None = None
    # False: seen in a list call only (ListRules: no target; ListSchedules: state and target
    # ARN only); the planner takes the fields it does not carry as what cronctl last wrote
    # (``planner.seen``), so a shallow observation shows only the drift a list call can show
    deep: bool = True

    @property
    def cron_tag(self) -> str | None:
        return (self.tags or {}).get(CRON_TAG)

    def owned_as(self, cron: str, namespace: str, registry: RegistryItem | None) -> bool:
        """Ours for ``cron``: recorded in its registry item, or tagged ours and for it."""
        if registry is not None and registry.schedule_arn == self.arn:
            return True
        return is_ours(self.tags, namespace) and self.cron_tag == cron


@dataclass(frozen=True, slots=True)
class ObservedTaskDefinition:
    """The latest ACTIVE revision of one ``<ns>-td-*`` family."""

    family: str
    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    # False: listed ACTIVE (ListTaskDefinitionFamilies), not described: ``arn`` is the one
    # the registry records for it (ours: a registry item references it), ``tags`` not read
    deep: bool = True


@dataclass(frozen=True)
class DeepCheck:
    """What a pass that did not read every resource left unread (``core/plan/sweep.py``):
    ``read`` resources read one by one this pass, ``listed`` only seen in list calls (or, an
    incremental pass, not read at all), each of them last read one by one no earlier than
    ``since`` (None: not known, the rotation has not come round yet)."""

    read: int
    listed: int
    since: datetime | None = None
    # the budget cannot read every resource within the deep-check period (a plan warning)
    warning: str | None = None


@dataclass(frozen=True)
class Observed:
    """Everything observe read in one pass; rules and schedules keyed by resource name."""

    registry: dict[str, RegistryItem] = field(default_factory=dict)
    rules: dict[str, ObservedSchedule] = field(default_factory=dict)
    schedules: dict[str, ObservedSchedule] = field(default_factory=dict)
    task_definitions: dict[str, ObservedTaskDefinition] = field(default_factory=dict)
    monitors: MonitorObservation = field(default_factory=MonitorObservation)
    # the live rules named by desired crons' ``replaces`` (with their tags), by rule name; a
    # rule that is gone is absent
    replaced: dict[str, ObservedSchedule] = field(default_factory=dict)
    # what was not read one by one (None: everything was): reported by the plan
    coverage: DeepCheck | None = None


@dataclass(frozen=True)
class DesiredState:
    """What the source asks for: one DesiredCron per valid spec, plus held-back names
    (invalid files: their live resources are kept as they are), their files and why each
    file is invalid (its diagnostics, as ``file:line:column: field: message``)."""

    commit: str | None
    backend: str
    crons: tuple[DesiredCron, ...] = ()
    held_back: frozenset[str] = frozenset()
    held_files: dict[str, str] = field(default_factory=dict)
    held_reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deployment: Deployment | None = None  # the namespace-wide inputs (checks of AWS's rules)


@dataclass(frozen=True, slots=True)
class Change:
    """One change to one resource. ``desired`` is what create/update writes (DesiredSchedule,
    DesiredTaskDefinition or RegistryItem); ``observed`` is what update/delete acts on.
    ``id`` (``<cron>/<resource>/<action>``) and ``depends_on`` (the ids of the changes that
    must succeed first) are set by the planner (``core/plan/dependencies.py``)."""

    cron: str
    resource: Resource
    action: Action
    reason: str
    diff: tuple[tuple[str, object, object], ...] = ()
    desired: DesiredSchedule | DesiredTaskDefinition | RegistryItem | DesiredMonitor | None = None
    observed: (ObservedSchedule | ObservedTaskDefinition | RegistryItem | ObservedMonitor
               | None) = None
    id: str = ""
    depends_on: tuple[str, ...] = ()
    # ids of changes that run first but whose failure does not hold this one back
    after: tuple[str, ...] = ()
    # a change of a cron whose live schedule, or the rule it ``replaces`` (tagged ours), is
    # taken over with no registry item: its registry item is written first
    # (``dependencies.RULES``)
    adopting: bool = False


@dataclass(frozen=True)
class PlanError:
    """A cron that cannot be reconciled this pass; its live resources are left untouched."""

    cron: str
    file: str
    message: str


@dataclass(frozen=True)
class Plan:
    commit: str | None
    changes: tuple[Change, ...] = ()
    errors: tuple[PlanError, ...] = ()
    held_back: frozenset[str] = frozenset()
    warnings: tuple[str, ...] = ()
    # The plan depends on the time until then (an active window starts or ends): a pass at
    # the same commit must be a full one from that moment (``core/plan/pass_check.py``).
    valid_until: datetime | None = None
    # what this pass did not read one by one, and since when (None: everything was read)
    deep_check: DeepCheck | None = None

    @property
    def pending(self) -> tuple[Change, ...]:
        """The changes that do something (no-ops left out)."""
        return tuple(c for c in self.changes if c.action != Action.NO_OP)

    def counts(self) -> dict[str, int]:
        """The listed changes by action, every resource counted (schedules, registry items,
        task definitions): what the summary line and the JSON ``summary`` say."""
        counts = dict.fromkeys(COUNTED, 0)
        for change in self.pending:
            counts[change.action] += 1
        return counts

    def counts_by_resource(self) -> dict[str, dict[str, int]]:
        """``counts()`` split by resource, for the JSON ``summary``."""
        counts = {resource: dict.fromkeys(COUNTED, 0) for resource in Resource}
        for change in self.pending:
            counts[change.resource][change.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)
