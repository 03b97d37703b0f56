"""Monitor changes of a plan (pure): per cron, the monitor it wants at the namespace's
monitoring service against the one observed there.

- create when none is found (``new monitor``; ``drift: monitor deleted at <service>`` when the
  registry recorded one), update with a field diff (``notifications changed`` when the spec
  changed, else ``drift: monitor edited at <service>``), no-op when equal;
- delete when the cron is gone, has no ``notifications:`` any more, or the namespace's
  ``monitor`` is ``none`` (the ones the registry tracks) or another service now;
- only monitors recorded in the registry, or tagged ours with the key ``<ns>-<cron>``, are
  ever updated or deleted (a second one tagged ours with the same key is deleted as a
  duplicate);
- a cron whose schedule cannot be expressed exactly gets a plan error and no monitor change;
- monitors that could not be read (no API key, a refused key, the service down) give one plan
  error and no monitor change at all, and the registry keeps what it recorded.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.core.desired import Deployment
from reconciler.core.monitors.desired import desired_monitor, wants_monitor
from reconciler.core.monitors.model import (
    PROVIDERS,
    SERVICE_NAMES,
    MonitorFields,
    ObservedMonitor,
    monitor_key,
)
from reconciler.core.monitors.schedule import MonitorRefused
from reconciler.core.plan.model import Action, Change, Observed, PlanError, Resource
from reconciler.core.registry_model import RegistryItem
from reconciler.core.spec import CronSpec

MONITOR_REFUSED = "monitor: "    # a cron's schedule the service cannot express
MONITORS_UNREAD = "monitors: "   # the service could not be read (down, slow, refusing)


@dataclass(frozen=True)
class MonitorRecord:
    """What the registry item records of the cron's monitor after this plan."""

    provider: str | None = None
    id: str | None = None
    ping_url: str | None = None

    @classmethod
    def of(cls, item: RegistryItem | None) -> MonitorRecord:
        if item is None or not item.monitor_id:
            return cls()
        return cls(item.monitor_provider, item.monitor_id, item.monitor_ping_url)


def _diff(before: dict, after: dict, only_after: bool = False
          ) -> tuple[tuple[str, object, object], ...]:
    """Field diff; ``only_after``: only the fields cronctl sets (what the service adds of its
    own, e.g. a default it fills in, is not drift)."""
    keys = sorted(after) if only_after else sorted(set(before) | set(after))
    return tuple((k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k))


def _tracked(item: RegistryItem) -> ObservedMonitor:
    """A monitor known only from the registry (its id at its service)."""
    return ObservedMonitor(item.monitor_id or "", MonitorFields(
        item.monitor_provider or "", key="", name="", tags=(), grace_s=None),
        item.monitor_ping_url)


class MonitorPlanner:
    def __init__(self, observed: Observed, dep: Deployment | None, namespace: str) -> None:
        self.ns = namespace
        self.provider = dep.monitor if dep is not None else "none"
        self.year = dep.year if dep is not None else None
        self.observation = observed.monitors
        self.registry = observed.registry
        self.errors: list[PlanError] = []
        self.readable = self.observation.error is None
        if not self.readable:
            self.errors.append(PlanError("", "", self.observation.error or ""))
        self.by_id = self.observation.by_id()
        self.owned: dict[str, list[ObservedMonitor]] = {}
        for monitor in self.observation.monitors:
            if monitor.fields.owned_by(namespace):
                self.owned.setdefault(monitor.fields.key, []).append(monitor)

    @property
    def service(self) -> str:
        return SERVICE_NAMES.get(self.provider, self.provider)

    def owned_crons(self) -> set[str]:
        """Crons that have a monitor tagged ours at the service (found by their key)."""
        prefix = f"{self.ns}-"
        return {key[len(prefix):] for key in self.owned}

    def _live(self, cron: str, reg: RegistryItem | None) -> ObservedMonitor | None:
        if reg is not None and reg.monitor_id and reg.monitor_provider == self.provider:
            live = self.by_id.get(reg.monitor_id)
            if live is not None:
                return live
        found = self.owned.get(monitor_key(self.ns, cron))
        return found[0] if found else None

    def _duplicates(self, cron: str, live: ObservedMonitor | None) -> list[Change]:
        """Other monitors tagged ours with the cron's key (one too many: deleted)."""
        keep = live.id if live is not None else None
        return [Change(cron, Resource.MONITOR, Action.DELETE,
                       "duplicate monitor tagged as ours", _diff(m.fields.as_dict(), {}),
                       observed=m)
                for m in self.owned.get(monitor_key(self.ns, cron), ()) if m.id != keep]

    def _elsewhere(self, cron: str, reg: RegistryItem | None, reason: str) -> list[Change]:
        """The registry's monitor at a service other than the namespace's now."""
        if reg is None or not reg.monitor_id or not reg.monitor_provider \
                or reg.monitor_provider == self.provider:
            return []
        old = SERVICE_NAMES.get(reg.monitor_provider, reg.monitor_provider)
        return [Change(cron, Resource.MONITOR, Action.DELETE, f"{reason} ({old})",
                       ((f"{reg.monitor_provider}.id", reg.monitor_id, None),),
                       observed=_tracked(reg))]

    def for_cron(self, spec: CronSpec, reg: RegistryItem | None
                 ) -> tuple[list[Change], MonitorRecord]:
        """The cron's monitor changes and what its registry item records after them."""
        name = spec.name
        if not self.readable:
            return [], MonitorRecord.of(reg)
        switched = ("monitoring switched off (monitor: none)" if self.provider == "none"
                    else f"monitoring moved to {self.service}")
        changes = self._elsewhere(name, reg, switched)
        want = None
        if wants_monitor(spec, self.provider):
            try:
                want = desired_monitor(spec, self.ns, self.provider, self.year)
            except MonitorRefused as exc:
                self.errors.append(PlanError(name, spec.file, (
                    f"{MONITOR_REFUSED}no monitor at {self.service} for this schedule: {exc}")))
                return [], MonitorRecord.of(reg)
        live = self._live(name, reg) if self.provider in PROVIDERS else None
        changes += self._duplicates(name, live) if self.provider in PROVIDERS else []
        if want is None:
            if live is not None:
                reason = ("notifications removed" if self.provider in PROVIDERS
                          else switched)
                changes.append(Change(name, Resource.MONITOR, Action.DELETE, reason,
                                      _diff(live.fields.as_dict(), {}), observed=live))
            return changes, MonitorRecord()
        notes = "".join(f"; {note}" for note in want.notes)
        if live is None:
            if reg is not None and reg.monitor_id and reg.monitor_provider == self.provider:
                reason = f"drift: monitor deleted at {self.service}"
            else:
                reason = "new monitor"
            changes.append(Change(name, Resource.MONITOR, Action.CREATE, reason + notes,
                                  _diff({}, want.fields.as_dict()), desired=want))
            return changes, MonitorRecord(self.provider)
        record = MonitorRecord(self.provider, live.id, live.ping_url)
        diff = _diff(live.fields.as_dict(), want.fields.as_dict(), only_after=True)
        if not diff:
            changes.append(Change(name, Resource.MONITOR, Action.NO_OP, "up to date",
                                  desired=want, observed=live))
            return changes, record
        if reg is not None and reg.spec_hash != spec.spec_hash():
            reason = "notifications or schedule changed"
        elif reg is None or reg.monitor_id != live.id:
            reason = "adopting monitor tagged as ours"
        else:
            reason = f"drift: monitor edited at {self.service}"
        changes.append(Change(name, Resource.MONITOR, Action.UPDATE, reason + notes, diff,
                              desired=want, observed=live))
        return changes, record

    def for_removed(self, cron: str, reg: RegistryItem | None, reason: str) -> list[Change]:
        """Monitor deletes of a cron that is gone."""
        if not self.readable:
            return []
        changes = self._elsewhere(cron, reg, reason)
        live = self._live(cron, reg) if self.provider in PROVIDERS else None
        changes += self._duplicates(cron, live) if self.provider in PROVIDERS else []
        if live is not None:
            changes.append(Change(cron, Resource.MONITOR, Action.DELETE, reason,
                                  _diff(live.fields.as_dict(), {}), observed=live))
        return changes
