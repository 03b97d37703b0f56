"""The monitor a cron wants at the namespace's monitoring service (pure).

Every cron with a ``notifications:`` block gets one when the namespace's ``monitor`` is not
``none``; its timing comes from the cron's own schedule (``schedule.monitor_timing``), so the
monitor can never disagree with the real schedule.

Grace: Cronitor's ``grace_seconds`` is ``no-run-threshold`` (default 300 s, the default
catch-up window); ``ran-longer-than-threshold`` becomes the assertion
``metric.duration < Ns``. Healthchecks.io has no maximum duration, and it applies ``grace`` to
a started run too (a run that sent its start ping and no end within ``grace`` is "down"), so
its ``grace`` is the larger of ``no-run-threshold`` (default 300 s) and the longest run allowed
(``ran-longer-than-threshold``, else the cron's ``timeout``), within Healthchecks' 60 s to
365 days; an adjusted value is said in the plan's reason.
"""

from __future__ import annotations

from reconciler.core.monitors.model import (
    CRONITOR,
    HEALTHCHECKS,
    PROVIDERS,
    TOOL_TAG,
    DesiredMonitor,
    MonitorFields,
    monitor_key,
    monitor_name,
    namespace_tag,
)
from reconciler.core.monitors.schedule import (
    PERIOD_MAX_S,
    PERIOD_MIN_S,
    MonitorRefused,
    monitor_timing,
)
from reconciler.core.spec import CronSpec, Notifications

DEFAULT_GRACE_S = 300


def has_notifications(spec: CronSpec) -> bool:
    """The cron has a ``notifications:`` block (anything in it set)."""
    return spec.notifications != Notifications()


def wants_monitor(spec: CronSpec, provider: str) -> bool:
    return provider in PROVIDERS and has_notifications(spec)


def desired_monitor(spec: CronSpec, namespace: str, provider: str,
                    year: int | None = None) -> DesiredMonitor:
    """The cron's monitor at ``provider``; raises ``MonitorRefused`` when its schedule cannot
    be expressed there exactly."""
    timing = monitor_timing(spec.schedule, spec.timezone, provider, year)
    n = spec.notifications
    tags = tuple(sorted((TOOL_TAG, namespace_tag(provider, namespace))))
    key, name = monitor_key(namespace, spec.name), monitor_name(namespace, spec.name)
    notes: list[str] = []
    if provider == CRONITOR:
        grace = n.no_run_threshold_s if n.no_run_threshold_s is not None else DEFAULT_GRACE_S
        assertions = ((f"metric.duration < {n.ran_longer_than_threshold_s}s",)
                      if n.ran_longer_than_threshold_s is not None else ())
        return DesiredMonitor(spec.name, MonitorFields(
            CRONITOR, key, name, tags, grace, schedule=timing.schedule, tz=timing.tz,
            assertions=assertions))
    late = n.no_run_threshold_s if n.no_run_threshold_s is not None else DEFAULT_GRACE_S
    longest = n.ran_longer_than_threshold_s or spec.timeout_s
    grace = max(late, longest)
    if grace > late:
        what = ("ran-longer-than-threshold" if n.ran_longer_than_threshold_s
                else "the timeout")
        notes.append(f"grace {grace} s covers a run's duration ({what}): Healthchecks.io "
                     "applies grace to a started run too")
    if grace < PERIOD_MIN_S:
        notes.append(f"grace raised from {grace} s to Healthchecks.io's minimum of "
                     f"{PERIOD_MIN_S} s")
        grace = PERIOD_MIN_S
    if grace > PERIOD_MAX_S:
        notes.append(f"grace lowered from {grace} s to Healthchecks.io's maximum of "
                     f"{PERIOD_MAX_S} s")
        grace = PERIOD_MAX_S
    return DesiredMonitor(spec.name, MonitorFields(
        HEALTHCHECKS, key, name, tags, grace, schedule=timing.schedule, tz=timing.tz,
        period_s=timing.period_s), tuple(notes))


__all__ = ["DEFAULT_GRACE_S", "MonitorRefused", "desired_monitor", "has_notifications",
           "wants_monitor"]
