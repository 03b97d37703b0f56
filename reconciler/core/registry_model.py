"""The registry item: what the control plane records per cron, and what dispatch reads.

One DynamoDB item per cron in table ``<ns>-registry`` (partition key ``name``). Written by the
reconcile apply step, read by dispatch, status and the watchdog. Invariant: every ARN here names
a resource that cronctl created or adopted (tagged ``managed-by=cronctl``); nothing else is ever
changed or deleted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from reconciler.core.spec import CronSpec, share_fields, shared_json


@dataclass(frozen=True, slots=True)
class RegistryItem:
    name: str
    spec: CronSpec                  # the canonical, defaults-applied spec (stored as to_dict())
    spec_hash: str                  # sha256 of the canonical spec JSON
    file: str                       # path of the cron file in the repo
    schedule_backend: str           # "rules" | "scheduler"
    commit: str | None = None       # source commit the spec came from (None: a plain folder)
    schedule_arn: str | None = None           # rule ARN or Scheduler schedule ARN
    task_definition_arn: str | None = None    # shared, content-addressed definition
    task_definition_hash: str | None = None
    # RunTask ``overrides`` for this cron (containerOverrides for main + timeout, cpu, memory,
    # taskRoleArn): what differs from cron to cron travels here, not in the definition.
    overrides: dict = field(default_factory=dict)
    updated_at: str | None = None             # ISO-8601 UTC of the last write
    # ISO-8601 UTC: when the schedule got its current expression (created, or updated with a
    # new expression); rate() fires count from it. None: not known (written before).
    schedule_since: str | None = None
    # The cron's monitor at the namespace's monitoring service (None: none): the service
    # ("cronitor" | "healthchecks"), its id there (Healthchecks check UUID, Cronitor key) and
    # the ping URL the service gave it (Healthchecks). Items written before have none.
    monitor_provider: str | None = None
    monitor_id: str | None = None
    monitor_ping_url: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, CronSpec):
            raise TypeError(f"RegistryItem.spec must be a CronSpec, got {type(self.spec).__name__}")
        share_fields(self, _STRINGS)

    def to_item(self) -> dict:
        """As a DynamoDB item for the resource-level client (nested JSON kept as strings)."""
        data = asdict(self)
        data["spec"] = json.dumps(self.spec.to_dict(), sort_keys=True)
        data["overrides"] = json.dumps(self.overrides, sort_keys=True)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_item(cls, item: dict) -> RegistryItem:
        data = dict(item)
        try:
            data["spec"] = CronSpec.from_dict(json.loads(data["spec"]),
                                              file=data.get("file") or "")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"registry item {item.get('name')!r} has no readable spec ({exc}); the next "
                "reconcile pass rewrites it") from None
        data["overrides"] = shared_json(json.loads(data.get("overrides") or "{}"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


_STRINGS = ("name", "spec_hash", "file", "schedule_backend", "commit", "schedule_arn",
            "task_definition_arn", "task_definition_hash", "updated_at", "schedule_since",
            "monitor_provider", "monitor_id", "monitor_ping_url")
