"""The data of monitors (pure, frozen): one shape for what a cron wants and what the service
holds, so that a plan compares them field by field.

Ownership: a monitor is ours for cron ``c`` of namespace ``ns`` when the registry records its id
for ``c``, or when it carries both our tags (``cronctl`` and the namespace's) and the key/slug
``<ns>-<c>``. Nothing else is ever updated or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

CRONITOR, HEALTHCHECKS = "cronitor", "healthchecks"
PROVIDERS = (CRONITOR, HEALTHCHECKS)
SERVICE_NAMES = {CRONITOR: "Cronitor", HEALTHCHECKS: "Healthchecks.io"}
TOOL_TAG = "cronctl"


def namespace_tag(provider: str, namespace: str) -> str:
    """The tag naming the namespace: Cronitor ``cronctl-ns:<ns>``; Healthchecks tags are
    space-separated words, so ``cronctl-ns-<ns>``."""
    return f"cronctl-ns:{namespace}" if provider == CRONITOR else f"cronctl-ns-{namespace}"


def monitor_key(namespace: str, cron: str) -> str:
    """Cronitor's ``key`` and Healthchecks' ``slug``: ``<ns>-<cron>``."""
    return f"{namespace}-{cron}"


def monitor_name(namespace: str, cron: str) -> str:
    return f"{namespace}/{cron}"


@dataclass(frozen=True)
class MonitorFields:
    """The compared settings of one monitor.

    ``schedule``/``tz``: a 5-field cron expression and its zone (Healthchecks cron check,
    Cronitor), or Cronitor's ``every N minutes``; ``period_s``: a Healthchecks simple check's
    ``timeout``; ``grace_s``: Healthchecks ``grace`` / Cronitor ``grace_seconds``;
    ``assertions``: Cronitor's (``metric.duration < Ns``)."""

    provider: str
    key: str
    name: str
    tags: tuple[str, ...]
    grace_s: int | None
    schedule: str | None = None
    tz: str | None = None
    period_s: int | None = None
    assertions: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """In the service's own field names (what a plan's field diff shows)."""
        if self.provider == HEALTHCHECKS:
            data: dict[str, object] = {"name": self.name, "slug": self.key,
                                       "tags": " ".join(self.tags), "grace": self.grace_s}
            if self.schedule is not None:
                data.update(schedule=self.schedule, tz=self.tz)
            else:
                data["timeout"] = self.period_s
            return data
        data = {"type": "job", "key": self.key, "name": self.name, "tags": list(self.tags),
                "schedule": self.schedule, "grace_seconds": self.grace_s,
                "assertions": list(self.assertions)}
        if self.tz is not None:  # an interval (``every N units``) has no zone
            data["timezone"] = self.tz
        return data

    def owned_by(self, namespace: str) -> bool:
        """Tagged as ours for ``namespace`` (both tags) with a key of the namespace."""
        return (TOOL_TAG in self.tags and namespace_tag(self.provider, namespace) in self.tags
                and self.key.startswith(f"{namespace}-"))


@dataclass(frozen=True)
class DesiredMonitor:
    """The monitor a cron wants. ``notes`` say what was adjusted to the service's rules (shown
    in the plan's reason)."""

    cron: str
    fields: MonitorFields
    notes: tuple[str, ...] = ()

    @property
    def provider(self) -> str:
        return self.fields.provider


@dataclass(frozen=True)
class ObservedMonitor:
    """A monitor read from the service. ``id``: Healthchecks check UUID, Cronitor key;
    ``ping_url``: Healthchecks' ping URL (None for Cronitor: pings name the key)."""

    id: str
    fields: MonitorFields
    ping_url: str | None = None

    @property
    def provider(self) -> str:
        return self.fields.provider


@dataclass(frozen=True)
class MonitorObservation:
    """The namespace's monitors at ``provider`` (``none``: not read). ``error``: they could
    not be read (no key, bad key, service down): the plan then changes no monitor."""

    provider: str = "none"
    monitors: tuple[ObservedMonitor, ...] = ()
    error: str | None = None

    def by_id(self) -> dict[str, ObservedMonitor]:
        return {m.id: m for m in self.monitors}
