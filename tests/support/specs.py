"""Typed cron specs for tests that build registry items by hand."""

from __future__ import annotations

from reconciler.core.spec import CronSpec


def make_spec(name: str = "job", *, file: str | None = None, **fields) -> CronSpec:
    """A ``CronSpec`` with a five-minute ``cron()`` schedule and a busybox container, with
    ``fields`` (in ``CronSpec.to_dict()``'s shape) over it."""
    data = {"name": name, "schedule": "cron(*/5 * * * ? *)",
            "container": {"image": "busybox"}, **fields}
    return CronSpec.from_dict(data, file=file or f"crons.d/{name}.yaml")
