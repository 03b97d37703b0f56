"""Full or cheap pass: the decision, from what is known of the last converged pass (pure).

A *converged* pass (``PassResult.converged``) records, in the namespace, the commit it applied,
the namespace settings version it ran with, when (its full check) and the lease generation it
held: an ``AppliedRecord``. A later pass at the same commit, with the same settings version, is
*cheap*: nothing can have changed but drift, so it observes nothing and plans nothing. Drift is
found by a *full* pass: asked for (``cronctl reconcile --full-check``), or the daemon's drift
check, due ``drift_check_s`` after the record's full check.

An applying pass at a commit clears the record before it changes anything (and after, when it
did not converge): a record means its commit was applied whole and nothing was applied since.
What is known of the last converged pass comes from the process's memory (what the daemon's
last converged or cheap pass knew, valid while it holds the lease with the same generation:
nobody else can have written since) or from the namespace's record (one read). ``decide``
says which it needs: ``READ`` when only the record can tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


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
    """How a caller wants passes checked. ``drift_check_s``: a full pass once the last full
    check is that old (the daemon; None: only when asked). ``remembered``: the caller's own last
    converged pass (the daemon's memory). ``verify``: read the record even when the memory
    would do (a pass asked for by SIGHUP or a webhook: it also notices changed settings)."""

    drift_check_s: float | None = None
    remembered: AppliedRecord | None = None
    verify: bool = False


class PassKind(StrEnum):
    FULL = "full"    # observe everything, plan, apply
    CHEAP = "cheap"  # the commit is applied: no call to AWS beyond what was read to know it
    READ = "read"    # only the namespace's record can tell: read it, then decide again


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
        if policy.verify or not _warm(facts, remembered):
            return PassDecision(PassKind.READ, "the namespace's record of the applied commit "
                                               "is needed")
        return _matching(facts, remembered, policy, from_memory=True)
    return _matching(facts, facts.record, policy, from_memory=False)


def _warm(facts: PassFacts, remembered: AppliedRecord | None) -> bool:
    """The memory holds: this process's own converged pass, under the lease it still holds."""
    return remembered is not None and remembered.generation is not None \
        and remembered.generation == facts.generation


def _matching(facts: PassFacts, record: AppliedRecord | None, policy: PassPolicy, *,
              from_memory: bool) -> PassDecision:
    if record is None:
        return PassDecision(PassKind.FULL, "no converged pass is recorded")
    if record.commit != facts.commit:
        return PassDecision(PassKind.FULL, f"new commit (applied: {record.commit[:7]})")
    if record.settings_version != facts.settings_version:
        return PassDecision(PassKind.FULL, "the namespace settings changed since the commit "
                                           "was applied")
    if record.valid_until is not None and facts.now >= record.valid_until:
        return PassDecision(PassKind.FULL, "an active window started or ended since the commit "
                                           "was applied")
    age = (facts.now - record.checked_at).total_seconds()
    if policy.drift_check_s is not None and age >= policy.drift_check_s:
        return PassDecision(PassKind.FULL, f"drift check due (last full check "
                                           f"{ago(age)} ago)")
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
    """The one line of a cheap pass: what is applied and when it was last checked in full."""
    age = ago((now - record.checked_at).total_seconds())
    return (f"No changes: commit {record.commit[:7]} is applied (last full check {age} ago; "
            "`cronctl reconcile --full-check` reads everything).")
