"""The spec model: one frozen ``CronSpec`` per cron file, with every default applied.

Built by ``reconciler.core.cronfile.loader`` from a validated file; everything downstream (plan,
registry, dispatch) reads only this model, never raw YAML.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache

# A cron's name, matched whole (``re.fullmatch``). ``\Z``, not ``$``: ``$`` also matches before a
# final newline, so even ``re.match`` with this pattern refuses "hello\n".
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?\Z"

# T-shirt sizes: (CPU units, MiB). Every pair is a valid Fargate combination.
TSHIRT_SIZES: dict[str, tuple[int, int]] = {
    "XS": (256, 512),
    "S": (512, 1024),
    "M": (1024, 2048),
    "L": (2048, 4096),
    "XL": (4096, 8192),
    "2XL": (8192, 16384),
    "3XL": (16384, 32768),
}

# Fargate: CPU units -> allowed memory MiB (min, max, step).
FARGATE_MEMORY: dict[int, tuple[int, int, int]] = {
    256: (512, 2048, 512),      # 512, 1024, 2048 (1536 is not allowed; checked below)
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}

# An EventBridge rule's name (``replaces.rule``), matched whole.
RULE_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}\Z"

DEFAULT_TIMEOUT_S = 24 * 3600
CONCURRENCY_POLICIES = ("forbid", "allow", "replace", "queue")


# -- memory (issue 10): a daemon holds these N times, twice (desired and observed) ----------
# The models are slotted, and their strings interned where they are built: the same text
# read from a cron file, from the registry and from AWS (names, files, hashes, ARNs, images,
# commits) is then held once, however many models hold it.

def shared(value):
    """``value``, interned when it is a string (one copy of equal texts); else as is."""
    return sys.intern(value) if type(value) is str else value


def share_fields(obj: object, names: tuple[str, ...]) -> None:
    """Intern the string fields ``names`` of the frozen dataclass ``obj`` (from its
    ``__post_init__``): equal values, one copy."""
    for name in names:
        value = getattr(obj, name)
        if type(value) is str:
            object.__setattr__(obj, name, sys.intern(value))


def shared_pairs(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((shared(key), shared(value)) for key, value in pairs)


def shared_json(value):
    """A JSON-like value (dicts, lists, strings...) with its keys and strings interned;
    equal to ``value``. Containers are copied: only for values the caller just built."""
    if type(value) is dict:
        return {shared(key): shared_json(item) for key, item in value.items()}
    if type(value) is list:
        return [shared_json(item) for item in value]
    return shared(value)


def fargate_memory_allowed(cpu: int, memory: int) -> bool:
    """True when (cpu, memory) is a combination Fargate accepts."""
    if cpu == 256:
        return memory in (512, 1024, 2048)
    bounds = FARGATE_MEMORY.get(cpu)
    if not bounds:
        return False
    low, high, step = bounds
    return low <= memory <= high and (memory - low) % step == 0


@dataclass(frozen=True, slots=True)
class Capacity:
    cpu: int = 256      # CPU units
    memory: int = 512   # MiB


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    image: str
    arguments: tuple[str, ...] | None = None          # None: the image's default command
    env: tuple[tuple[str, str], ...] = ()             # sorted (key, value) pairs
    secrets: tuple[tuple[str, str], ...] = ()         # sorted (env var, valueFrom ARN/name)
    capacity: Capacity = field(default_factory=Capacity)

    def __post_init__(self) -> None:
        share_fields(self, ("image",))
        if self.env:
            object.__setattr__(self, "env", shared_pairs(self.env))
        if self.secrets:
            object.__setattr__(self, "secrets", shared_pairs(self.secrets))
        if self.arguments:
            object.__setattr__(self, "arguments", tuple(map(shared, self.arguments)))


@dataclass(frozen=True, slots=True)
class Notifications:
    no_run_threshold_s: int | None = None
    ran_longer_than_threshold_s: int | None = None
    slack: str | None = None
    pagerduty: str | None = None
    alert_after: int = 1  # alert only after this many consecutive failed runs


def capacity_of(cpu: int = 256, memory: int = 512) -> Capacity:
    """``Capacity(cpu, memory)``: one shared instance per pair (the fleet uses a few)."""
    try:
        return _capacity(cpu, memory)
    except TypeError:  # unhashable: not a real capacity, made as asked
        return Capacity(cpu=cpu, memory=memory)


def notifications_of(**fields) -> Notifications:
    """``Notifications(**fields)``: one shared instance per value (most crons have the same:
    none, or their team's channel)."""
    try:
        return _notifications(**fields)
    except TypeError:  # unhashable values (or an unknown field: raised again here)
        return Notifications(**fields)


_capacity = lru_cache(maxsize=256, typed=True)(Capacity)
_notifications = lru_cache(maxsize=1024, typed=True)(Notifications)


@dataclass(frozen=True, slots=True)
class Replaces:
    """``replaces:``: the live EventBridge rule (default bus) this cron takes the place of.
    The reconcile hands the rule over to dispatch, creates the cron's schedule, then deletes
    the rule (``core/plan/planner.py``); a rule already gone needs nothing."""

    rule: str


# -- retries and catch-up (issue 11) -----------------------------------------------------------
RETRY_ON = ("failure", "timeout")
MIN_BACKOFF_S = 10
MAX_BACKOFF_S = 3600
DEFAULT_BACKOFF_S = 60
DEFAULT_CATCH_UP_S = 300


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries:``: up to ``attempts`` retries after the first try, the first after
    ``backoff_s``, doubling, at most ``MAX_BACKOFF_S``; TIMEOUT too when ``on_timeout``."""

    attempts: int
    backoff_s: int = DEFAULT_BACKOFF_S
    on_timeout: bool = False

    def to_dict(self) -> dict:
        return {"attempts": self.attempts, "backoff_s": self.backoff_s,
                "on": ["failure", "timeout"] if self.on_timeout else ["failure"]}

    @classmethod
    def from_dict(cls, data: dict) -> RetryPolicy:
        return cls(attempts=int(data["attempts"]),
                   backoff_s=int(data.get("backoff_s", DEFAULT_BACKOFF_S)),
                   on_timeout="timeout" in (data.get("on") or ()))


@dataclass(frozen=True, slots=True)
class ActiveWindow:
    """``active:``: the cron runs only inside ``[start, until]``, read in its time zone.

    Each bound is ISO text, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, or None (open). A
    date ``from`` starts at 00:00 of that day; a date ``until`` is inclusive to the end of
    that day. ``core/schedule/window.py`` turns them into moments."""

    start: str | None = None
    until: str | None = None

    def to_dict(self) -> dict:
        return {key: value for key, value in (("from", self.start), ("until", self.until))
                if value is not None}


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One calendar a cron's ``exclude:`` names, resolved by the loader from
    ``<cron path>/calendars/<calendar>.yaml``: its zone and its excluded dates as inclusive
    ``(first, last)`` ISO dates (``YYYY-MM-DD``), sorted. It travels in the spec, so a
    calendar edit changes the spec (and its hash) of every cron that uses it."""

    calendar: str
    timezone: str
    ranges: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A cron as the rest of the system sees it. ``file`` is the repo-relative path."""

    name: str
    file: str
    schedule: str
    container: ContainerSpec
    timezone: str = "UTC"
    role: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    concurrency: str = "forbid"
    suspend: bool = False
    notifications: Notifications = field(default_factory=Notifications)
    docs: str | None = None
    replaces: Replaces | None = None
    active: ActiveWindow | None = None
    # -- calendars and pause (issue 11: exclude, suspend-after-failures) --
    exclude: tuple[Exclusion, ...] = ()
    suspend_after_failures: int | None = None
    # -- retries and catch-up (issue 11) --
    retries: RetryPolicy | None = None
    catch_up_s: int | None = None      # None: no-run-threshold, else 5 minutes (capped)

    def __post_init__(self) -> None:
        share_fields(self, _CRON_STRINGS)

    def to_dict(self) -> dict:
        """Canonical JSON-able form (the registry's ``spec``); ``file`` is not part of it."""
        c = self.container
        return {
            "name": self.name,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "container": {
                "image": c.image,
                "arguments": list(c.arguments) if c.arguments is not None else None,
                "env": dict(c.env),
                "secrets": dict(c.secrets),
                "capacity": {"cpu": c.capacity.cpu, "memory": c.capacity.memory},
            },
            "role": self.role,
            "timeout_s": self.timeout_s,
            "concurrency": self.concurrency,
            "suspend": self.suspend,
            "notifications": {
                "no_run_threshold_s": self.notifications.no_run_threshold_s,
                "ran_longer_than_threshold_s": self.notifications.ran_longer_than_threshold_s,
                "slack": self.notifications.slack,
                "pagerduty": self.notifications.pagerduty,
                # Only when set: specs stored before it existed keep their hash.
                **({"alert_after": self.notifications.alert_after}
                   if self.notifications.alert_after != 1 else {}),
            },
            "docs": self.docs,
            # Only when set: specs stored before it existed keep their hash.
            **({"replaces": {"rule": self.replaces.rule}} if self.replaces else {}),
            # Only when set: specs stored before it existed keep their hash.
            **({"active": self.active.to_dict()} if self.active else {}),
            # Only when set: specs stored before they existed keep their hash.
            **({"exclude": [{"calendar": e.calendar, "timezone": e.timezone,
                             "ranges": [list(r) for r in e.ranges]} for e in self.exclude]}
               if self.exclude else {}),
            **({"suspend_after_failures": self.suspend_after_failures}
               if self.suspend_after_failures is not None else {}),
            # -- retries and catch-up (issue 11): only when set, so hashes stay --
            **({"retries": self.retries.to_dict()} if self.retries else {}),
            **({"catch_up_s": self.catch_up_s} if self.catch_up_s is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: dict, file: str = "") -> CronSpec:
        """Inverse of ``to_dict`` (for specs read back from the registry)."""
        c = data["container"]
        n = data.get("notifications") or {}
        args = c.get("arguments")
        replaces = data.get("replaces")
        active = data.get("active")
        return cls(
            name=data["name"],
            file=file,
            schedule=data["schedule"],
            timezone=data.get("timezone", "UTC"),
            container=ContainerSpec(
                image=c["image"],
                arguments=tuple(args) if args is not None else None,
                env=tuple(sorted((c.get("env") or {}).items())),
                secrets=tuple(sorted((c.get("secrets") or {}).items())),
                capacity=capacity_of(**(c.get("capacity") or {})),
            ),
            role=data.get("role"),
            timeout_s=data.get("timeout_s", DEFAULT_TIMEOUT_S),
            concurrency=data.get("concurrency", "forbid"),
            suspend=data.get("suspend", False),
            notifications=notifications_of(**n),
            docs=data.get("docs"),
            replaces=Replaces(rule=replaces["rule"]) if replaces else None,
            active=ActiveWindow(start=active.get("from"), until=active.get("until"))
            if active else None,
            exclude=tuple(Exclusion(calendar=e["calendar"], timezone=e["timezone"],
                                    ranges=tuple((r[0], r[1]) for r in e["ranges"]))
                          for e in data.get("exclude") or ()),
            suspend_after_failures=data.get("suspend_after_failures"),
            # -- retries and catch-up (issue 11) --
            retries=RetryPolicy.from_dict(data["retries"]) if data.get("retries") else None,
            catch_up_s=data.get("catch_up_s"),
        )

    def spec_hash(self) -> str:
        return sys.intern(hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest())


_CRON_STRINGS = ("name", "file", "schedule", "timezone", "role", "concurrency", "docs")


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
