"""The kind of a pass, from what is known of the last converged pass (pure).

A *converged* pass (``PassResult.converged``) records, in the namespace, the commit it applied,
the namespace settings version it ran with, when AWS was last listed (its check) and the lease
generation it held: an ``AppliedRecord``. A later pass at the same commit, with the same
settings version, is *cheap*: nothing can have changed but drift, so it observes nothing and
plans nothing. Otherwise:

- *full* (every resource read one by one): a plain folder, ``--full-check``, or changed
  namespace settings (they change fields no list call shows);
- *incremental* (nothing observed: planned against the daemon's known state,
  ``core/plan/known.py``): a new commit (or no record) while the daemon holds a known state
  valid for its lease generation and settings version, and no drift check is due;
- *sweep* (list calls + a budgeted rotating deep check, ``core/plan/sweep.py``): everything
  else: the CLI at a new commit, a daemon without known state, and the daemon's drift check,
  due ``drift_check_s`` after the last sweep.

An applying pass at a commit clears the record before it changes anything (and after, when it
did not converge): a record means its commit was applied whole and nothing was applied since.
What is known of the last converged pass comes from the process's memory (what the daemon's
last converged or cheap pass knew, valid while it holds the lease with the same generation:
nobody else can have written since) or from the namespace's record (one read). ``decide``
says which it needs: ``READ`` when only the record can tell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from reconciler.core.cronfile.parse_cache import ParseCache


@dataclass(frozen=True)
class AppliedRecord:
    """The namespace's last converged pass: ``commit`` applied with the namespace settings of
    ``settings_version`` (None: a process that did not read them), fully checked at
    ``checked_at`` (aware UTC), by the holder of lease ``generation`` (None: unfenced)."""

    commit: str
    settings_version: int | None
    checked_at: datetime
    generation: int | None = None
    # what was applied depends on the time until then (an active window starts or ends)
    valid_until: datetime | None = None


@dataclass(frozen=True)
class PassPolicy:
    """How a caller wants passes checked. ``drift_check_s``: a sweep once the last one is that
    old (the daemon; None: only when asked). ``remembered``: the caller's own last converged
    pass (the daemon's memory). ``verify``: read the record even when the memory would do (a
    pass asked for by SIGHUP or a webhook: it also notices changed settings). ``known``: the
    daemon's known state (``core/plan/known.KnownState``), if any. ``load_cache``: the daemon's
    parsed cron files (``cronfile.loader.load_snapshot(cache=)``), so a pass at a new commit
    parses only the files that changed."""

    drift_check_s: float | None = None
    remembered: AppliedRecord | None = None
    verify: bool = False
    known: object | None = None  # KnownState (typed loosely: known.py imports this module)
    load_cache: ParseCache | None = field(default=None, compare=False, repr=False)


class PassKind(StrEnum):
    FULL = "full"    # observe everything, plan, apply
    SWEEP = "sweep"  # list everything, read a budgeted rotation one by one, plan, apply
    INCREMENTAL = "incremental"  # observe nothing: plan against the known state, apply
    CHEAP = "cheap"  # the commit is applied: no call to AWS beyond what was read to know it
    READ = "read"    # only the namespace's record can tell: read it, then decide again

    @property
    def observes(self) -> bool:
        """A pass of this kind plans and applies (and records what converged)."""
        return self in (PassKind.FULL, PassKind.SWEEP, PassKind.INCREMENTAL)


@dataclass(frozen=True)
class PassDecision:
    kind: PassKind
    reason: str
    record: AppliedRecord | None = None  # what a cheap pass relies on
    from_memory: bool = False  # a cheap pass that read nothing at all


@dataclass(frozen=True)
class PassFacts:
    """What the pass knows when it decides: the source's ``commit`` (None: a plain folder),
    this process's ``settings_version``, the lease ``generation`` it holds (None: none),
    ``now`` (aware UTC), whether ``full_check`` was asked for, and the namespace's ``record``
    once read (``record_read``)."""

    commit: str | None
    settings_version: int | None
    now: datetime
    full_check: bool = False
    generation: int | None = None
    record: AppliedRecord | None = None
    record_read: bool = False


def decide(facts: PassFacts, policy: PassPolicy = PassPolicy()) -> PassDecision:
    """FULL, CHEAP or READ (see the module docstring); ``reason`` says why, for the log."""
    if facts.commit is None:
        return PassDecision(PassKind.FULL, "the source is a folder, not a commit: always "
                                           "checked in full")
    if facts.full_check:
        return PassDecision(PassKind.FULL, "a full check was asked for")
    remembered = policy.remembered
    if not facts.record_read:
        if not policy.verify and _warm(facts, remembered):
            return _matching(facts, remembered, policy, from_memory=True)
        if not policy.verify and _known(facts, policy):
            # the known state stands for what is applied: no record needed
            return _changed(facts, policy, "the daemon's known state is used (no converged "
                                           "pass remembered)")
        return PassDecision(PassKind.READ, "the namespace's record of the applied commit "
                                           "is needed")
    return _matching(facts, facts.record, policy, from_memory=False)


def _known(facts: PassFacts, policy: PassPolicy) -> bool:
    known = policy.known
    return known is not None and known.valid_for(facts.generation, facts.settings_version)


def _sweep_due(facts: PassFacts, policy: PassPolicy, since: datetime) -> float | None:
    """The age of the last sweep when the drift check is due, else None."""
    age = (facts.now - since).total_seconds()
    if policy.drift_check_s is not None and age >= policy.drift_check_s:
        return age
    return None


def _changed(facts: PassFacts, policy: PassPolicy, reason: str) -> PassDecision:
    """Something is to apply: incremental with a valid known state, unless its sweep is due."""
    if _known(facts, policy):
        age = _sweep_due(facts, policy, policy.known.swept_at)
        if age is None:
            return PassDecision(PassKind.INCREMENTAL, reason)
        return PassDecision(PassKind.SWEEP, f"{reason}; drift check due (last sweep "
                                            f"{ago(age)} ago)")
    return PassDecision(PassKind.SWEEP, reason)


def _warm(facts: PassFacts, remembered: AppliedRecord | None) -> bool:
    """The memory holds: this process's own converged pass, under the lease it still holds."""
    return remembered is not None and remembered.generation is not None \
        and remembered.generation == facts.generation


def _matching(facts: PassFacts, record: AppliedRecord | None, policy: PassPolicy, *,
              from_memory: bool) -> PassDecision:
    if record is None:
        return _changed(facts, policy, "no converged pass is recorded")
    if record.settings_version != facts.settings_version:
        return PassDecision(PassKind.FULL, "the namespace settings changed since the commit "
                                           "was applied")
    if record.commit != facts.commit:
        return _changed(facts, policy, f"new commit (applied: {record.commit[:7]})")
    if record.valid_until is not None and facts.now >= record.valid_until:
        return _changed(facts, policy, "an active window started or ended since the commit "
                                       "was applied")
    age = _sweep_due(facts, policy, record.checked_at)
    if age is not None:
        return PassDecision(PassKind.SWEEP, f"drift check due (last check {ago(age)} ago)")
    return PassDecision(PassKind.CHEAP, "the commit is applied", record, from_memory)


def ago(seconds: float) -> str:
    """``40 s``, ``12 min``, ``3 h 5 min``, ``2 days``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def cheap_summary(record: AppliedRecord, now: datetime) -> str:
    """The one line of a cheap pass: what is applied and when it was last checked."""
    age = ago((now - record.checked_at).total_seconds())
    return (f"No changes: commit {record.commit[:7]} is applied (last check {age} ago; "
            "`cronctl reconcile --full-check` reads everything).")
