"""The alert model: a cron's alert state, a notice to send, and the outbox's effect names.

- ``AlertState`` — per cron: consecutive failures, since when, and the open alerts (one per
  kind and notifier). Stored by the service as one item per cron; versioned.
- ``Notice`` — one message to one notifier (a Slack message, a PagerDuty trigger or resolve),
  complete: the adapters send it as it is, so a notice decided once is delivered unchanged
  however often its delivery is retried.
- The outbox of an execution lists pending *effects* by name: ``finished`` (the canonical log
  line and the run counted), ``ping`` (the monitor's finish ping), ``alert`` (fold the run
  into the cron's alert state, which decides the notices), ``overlong`` (the run is still
  running past its threshold) and ``notify:<key>`` (deliver one decided notice).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from reconciler.core.executions.records import (
    FAILED,
    FAILED_TO_START,
    LOST,
    MISSED,
    SKIPPED,
    SUCCESS,
    TIMEOUT,
)

# Effects of an outbox.
FINISHED, PING, ALERT, OVERLONG = "finished", "ping", "alert", "overlong"
NOTIFY_PREFIX = "notify:"

# Alert kinds. ``failed`` covers FAILED, TIMEOUT, FAILED_TO_START and LOST.
KIND_FAILED, KIND_MISSED, KIND_OVERLONG, KIND_RECOVERED = (
    "failed", "missed", "overlong", "recovered")
KIND_PAUSED = "paused"   # suspend-after-failures paused the cron
SLACK, PAGERDUTY = "slack", "pagerduty"
TRIGGER, RESOLVE, MESSAGE = "trigger", "resolve", "message"

FAILURE_STATUSES = frozenset({FAILED, TIMEOUT, FAILED_TO_START, LOST, MISSED})
# What ``suspend-after-failures`` counts: failed runs. A MISSED run never started (cronctl or
# delivery was down): it neither counts nor breaks the streak.
RUN_FAILURE_STATUSES = frozenset({FAILED, TIMEOUT, FAILED_TO_START, LOST})
NOT_COUNTED = frozenset({SKIPPED})
SUCCESS_STATUS = SUCCESS


def notify_effect(key: str) -> str:
    return NOTIFY_PREFIX + key


def initial_effects(status: str, *, finished: bool = True) -> frozenset[str]:
    """The outbox stored with a run's final ``status``: SKIPPED has none (dispatch logs and
    counts it itself); every other final state is pinged and folded into the cron's alert
    state (a cron that names no notifier has none: the effect is then simply removed), and,
    with ``finished``, logged and counted (dispatch logs and counts its own final states)."""
    if status == SKIPPED:
        return frozenset()
    return frozenset({PING, ALERT, *((FINISHED,) if finished else ())})


@dataclass(frozen=True)
class OpenAlert:
    """An alert raised and not yet resolved: ``kind`` at ``notifier`` since ``since``."""

    kind: str
    notifier: str
    since: str
    dedup_key: str | None = None
    routing_key: str | None = field(default=None, repr=False)
    channel: str | None = None


@dataclass(frozen=True)
class AlertState:
    """A cron's alert state. ``version`` is the stored item's (0: none stored yet)."""

    cron: str
    consecutive_failures: int = 0
    failing_since: str | None = None
    last_status: str | None = None
    open: tuple[OpenAlert, ...] = ()
    version: int = 0
    # -- suspend-after-failures: consecutive failed runs (MISSED not counted) and the pause:
    # since when, after how many, for which spec (a new spec hash ends it) --
    run_failures: int = 0
    paused_at: str | None = None
    paused_after: int | None = None
    paused_spec_hash: str | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def paused_for(self, spec_hash: str) -> bool:
        """True while paused for this spec (a commit that changes the cron's file ends it)."""
        return self.paused_at is not None and self.paused_spec_hash == spec_hash

    def is_open(self, kind: str) -> bool:
        return any(a.kind == kind for a in self.open)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("version")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, version: int = 0) -> AlertState:
        data = json.loads(text)
        data["open"] = tuple(OpenAlert(**a) for a in data.get("open") or ())
        known = set(cls.__dataclass_fields__) - {"version"}
        return cls(**{k: v for k, v in data.items() if k in known}, version=version)

    def bumped(self, **changes) -> AlertState:
        return replace(self, **changes)


@dataclass(frozen=True)
class Notice:
    """One message to one notifier, complete (see the module docstring).

    ``notifier`` slack: ``text`` to ``channel`` (a webhook's channel is fixed by Slack; the
    text names the cron's channel). ``notifier`` pagerduty: ``action`` trigger or resolve of
    ``dedup_key`` at ``routing_key``; a trigger carries ``summary``, ``severity``,
    ``details`` and ``links``."""

    notifier: str
    action: str
    kind: str
    cron: str
    namespace: str
    execution_id: str | None = None
    channel: str | None = None
    routing_key: str | None = field(default=None, repr=False)
    dedup_key: str | None = None
    summary: str = ""
    text: str = ""
    severity: str = "error"
    details: tuple[tuple[str, str], ...] = ()
    links: tuple[tuple[str, str], ...] = ()   # (href, text)

    @property
    def key(self) -> str:
        """Unique among the notices of one run: ``<notifier>-<action>-<kind>``."""
        return f"{self.notifier}-{self.action}-{self.kind}"

    def describe(self) -> str:
        """A few words for logs: ``pagerduty trigger failed of crons/nightly``."""
        return f"{self.notifier} {self.action} {self.kind} of {self.namespace}/{self.cron}"

    def to_json(self) -> str:
        data = asdict(self)
        data["details"] = [list(p) for p in self.details]
        data["links"] = [list(p) for p in self.links]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notice:
        data = json.loads(text)
        data["details"] = tuple(tuple(p) for p in data.get("details") or ())
        data["links"] = tuple(tuple(p) for p in data.get("links") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Decision:
    """What folding one run into a cron's alert state gives: the new state and the notices."""

    state: AlertState
    notices: tuple[Notice, ...] = ()
