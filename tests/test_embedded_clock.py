"""The embedded clock's fire times, with an injected ``now``: a Scheduler ``rate()`` fires when
its schedule is created and then every interval from that moment (``since + k * interval``, to
the second), never twice within seconds; and ``cronctl status``'s next run is the clock's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.registry_model import RegistryItem
from reconciler.core.spec import ContainerSpec, CronSpec
from reconciler.core.status.render import next_run_of
from reconciler.service.embedded.clock import LocalClock


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def item(schedule: str, since: str | None, backend: str = "scheduler") -> RegistryItem:
    spec = CronSpec(name="beat", file="crons.d/beat.yaml", schedule=schedule,
                    container=ContainerSpec(image="busybox"))
    return RegistryItem(name="beat", spec=spec, spec_hash=spec.spec_hash(),
                        file=spec.file, schedule_backend=backend, schedule_since=since)


class Fixture:
    """A clock over one registry item, ticked at chosen moments."""

    def __init__(self, registry_item: RegistryItem, started: datetime) -> None:
        self.now = started
        self.fired: list[str] = []
        self.clock = LocalClock(lambda: [registry_item], self._publish, now=lambda: self.now)
        self.clock._anchor = started  # what start() records, without the thread

    def _publish(self, message: str) -> None:
        self.fired.append(json.loads(message)["scheduled_at"])

    def run_until(self, end: datetime, step: timedelta = timedelta(seconds=1)) -> list[str]:
        while self.now < end:
            self.clock.tick()
            self.now += step
        return self.fired


def test_a_scheduler_rate_fires_at_creation_then_every_interval_from_that_second():
    created = "2026-12-01T12:00:58+00:00"
    fx = Fixture(item("rate(1 minute)", created), at("2026-12-01 12:00:58"))
    fired = fx.run_until(at("2026-12-01 12:04:00"))
    assert fired == ["2026-12-01T12:00:58Z", "2026-12-01T12:01:58Z", "2026-12-01T12:02:58Z",
                     "2026-12-01T12:03:58Z"]
    moments = [datetime.fromisoformat(f.replace("Z", "+00:00")) for f in fired]
    assert all(b - a == timedelta(minutes=1) for a, b in zip(moments, moments[1:], strict=False))


@pytest.mark.parametrize("backend", ["rules", "scheduler"])
def test_a_rate_created_before_the_clock_started_keeps_its_second(backend):
    fx = Fixture(item("rate(5 minutes)", "2026-12-01T11:03:25+00:00", backend),
                 at("2026-12-01 12:00:00"))
    assert fx.run_until(at("2026-12-01 12:11:00")) == ["2026-12-01T12:03:25Z",
                                                       "2026-12-01T12:08:25Z"]


@pytest.mark.parametrize("now", ["2026-12-01 12:01:30", "2026-12-01 12:01:58",
                                 "2026-12-01 12:02:10"])
def test_status_shows_the_next_fire_of_the_clock(now):
    beat = item("rate(1 minute)", "2026-12-01T12:00:58+00:00")
    fx = Fixture(beat, at("2026-12-01 12:00:58"))
    fx.run_until(at(now) + timedelta(seconds=1))
    shown = next_run_of(beat.spec, at(now), beat.schedule_since)
    fx.run_until(shown + timedelta(seconds=1))
    assert fx.fired[-1] == shown.strftime("%Y-%m-%dT%H:%M:%SZ")
