"""Monitors as reconciled resources, end to end: the moto server for AWS and a local fake of
each monitoring service (Cronitor, Healthchecks.io), shaped like their documented APIs."""

from __future__ import annotations

import pytest

from reconciler.adapters.lease import UNFENCED
from reconciler.core.plan.render import render_text
from reconciler.service.control.apply import apply_plan
from reconciler.service.control.reconcile import plan_pass, read_source, run_pass
from tests.support.fakes.cronitor import FakeCronitor
from tests.support.fakes.healthchecks import FakeHealthchecks
from tests.support.reconcile_env import cron_yaml, live_state, prepare, record_settings, write_crons

KEY = {"cronitor": "cronitor-key", "healthchecks": "hc-key"}


def with_notifications(schedule: str = "cron(0 5 * * ? *)", no_run: str = "5m",
                       longer: str | None = "10m", timezone: str | None = None) -> str:
    text = cron_yaml(schedule, "perl", timezone=timezone) + f"notifications:\n  no-run-threshold: {no_run}\n"
    if longer:
        text += f"  ran-longer-than-threshold: {longer}\n"
    return text


class Service:
    """One provider's fake and how to read it back as the monitors cronctl manages."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.fake = FakeCronitor() if provider == "cronitor" else FakeHealthchecks()

    @property
    def api_url(self) -> str:
        return f"{self.fake.url}/api" if self.provider == "cronitor" else self.fake.url

    def monitors(self) -> dict[str, dict]:
        """key/slug -> the monitor as stored at the service."""
        if self.provider == "cronitor":
            return {k: m for k, m in self.fake.monitors.items()}
        return {c["slug"]: c for c in self.fake.checks.values()}

    def schedule_of(self, key: str):
        monitor = self.monitors()[key]
        return monitor.get("schedule") if self.provider == "cronitor" else \
            monitor.get("schedule", monitor.get("timeout"))

    def grace_of(self, key: str) -> int:
        monitor = self.monitors()[key]
        return monitor["grace_seconds" if self.provider == "cronitor" else "grace"]

    def add_foreign(self, key: str) -> str:
        """Another team's monitor with the same key/slug and no tags of ours; its id."""
        if self.provider == "cronitor":
            return self.fake.add_monitor(key=key, name="theirs", schedule="0 1 * * *",
                                         tags=["team-x"])
        return self.fake.add_check(name="theirs", slug=key, tags="team-x",
                                   schedule="0 1 * * *", tz="UTC")

    def stored(self, monitor_id: str) -> dict:
        store = self.fake.monitors if self.provider == "cronitor" else self.fake.checks
        return dict(store[monitor_id])

    def edit_schedule(self, key: str, schedule: str) -> None:
        if self.provider == "cronitor":
            self.fake.edit(key, schedule=schedule)
        else:
            uid = next(u for u, c in self.fake.checks.items() if c["slug"] == key)
            self.fake.edit(uid, schedule=schedule)


@pytest.fixture(params=["cronitor", "healthchecks"])
def service(request):
    svc = Service(request.param)
    yield svc
    svc.fake.stop()


@pytest.fixture
def env(settings, tmp_path, service):
    settings = settings.with_(repo=str(tmp_path), monitor=service.provider,
                              monitor_url=service.api_url, monitor_ping_url=service.fake.url,
                              monitor_api_key=KEY[service.provider], notify_timeout_s=1.0)
    clients = prepare(settings)
    return clients, settings, tmp_path


def reconcile(env, crons=None, *, dry_run=False, settings=None):
    clients, default, root = env
    if crons is not None:
        write_crons(root, crons)
    return run_pass(clients, settings or default, dry_run=dry_run)


def monitor_changes(result) -> list[tuple[str, str, str]]:
    """(cron, action, reason without the notes on adjusted values)."""
    return [(c.cron, c.action, c.reason.split("; ")[0]) for c in result.plan.pending
            if c.resource == "monitor"]


def test_crons_with_notifications_get_exactly_one_monitor_each(env, service):
    clients, settings, _ = env
    crons = {"alpha": with_notifications("cron(0 5 * * ? *)"),
             "beta": with_notifications("rate(15 minutes)"),
             "plain": cron_yaml("cron(0 6 * * ? *)")}
    dry = reconcile(env, crons, dry_run=True)
    assert dry.ok, render_text(dry.plan, dry.apply_errors, dry.errors)
    assert sorted(monitor_changes(dry)) == [("alpha", "create", "new monitor"),
                                           ("beta", "create", "new monitor")]
    text = render_text(dry.plan)
    assert "+ create monitor alpha: new monitor" in text
    assert "Plan: 9 to create, 0 to update, 0 to delete." in text  # 1 td, 3 x 2, 2 monitors
    assert service.fake.writes() == []

    applied = reconcile(env)
    assert applied.ok, render_text(applied.plan, applied.apply_errors, applied.errors)
    monitors = service.monitors()
    assert sorted(monitors) == ["test-alpha", "test-beta"]
    registry = live_state(clients, settings)["registry"]
    assert "monitor_id" not in registry["plain"]
    if service.provider == "healthchecks":
        alpha = monitors["test-alpha"]
        assert (alpha["name"], alpha["tags"], alpha["schedule"], alpha["tz"], alpha["grace"]) \
            == ("test/alpha", "cronctl cronctl-ns-test", "0 5 * * *", "UTC", 600)
        assert "schedule" not in monitors["test-beta"] and monitors["test-beta"]["timeout"] == 900
        uid = next(u for u, c in service.fake.checks.items() if c["slug"] == "test-alpha")
        assert registry["alpha"]["monitor_id"] == uid
        assert registry["alpha"]["monitor_ping_url"] == f"{service.fake.url}/{uid}"
        assert all(r.headers["x-api-key"] == "hc-key" for r in service.fake.writes())
    else:
        alpha = monitors["test-alpha"]
        assert (alpha["type"], alpha["name"], alpha["tags"], alpha["schedule"], alpha["timezone"],
                alpha["grace_seconds"], alpha["assertions"]) == (
            "job", "test/alpha", ["cronctl", "cronctl-ns:test"], "0 5 * * *", "UTC", 300,
            ["metric.duration < 600s"])
        assert monitors["test-beta"]["schedule"] == "every 15 minutes"
        assert registry["alpha"]["monitor_id"] == "test-alpha"
        assert all(r.headers["authorization"].startswith("Basic ")
                   for r in service.fake.writes())
    assert registry["alpha"]["monitor_provider"] == service.provider

    service.fake.clear()
    again = reconcile(env)
    assert again.ok and not again.plan.has_changes, render_text(again.plan)
    assert service.fake.writes() == []
    reads = service.fake.received("/api/")
    assert len(reads) == 1 and reads[0].method == "GET"  # one list call per pass


def test_a_threshold_change_updates_deletion_deletes_and_removing_notifications_deletes(env,
                                                                                       service):
    reconcile(env, {"alpha": with_notifications(), "beta": with_notifications()})
    assert sorted(service.monitors()) == ["test-alpha", "test-beta"]
    service.fake.clear()
    result = reconcile(env, {"alpha": with_notifications(no_run="20m", longer="30m"),
                             "beta": with_notifications()})
    assert result.ok, render_text(result.plan, result.apply_errors, result.errors)
    [(cron, action, reason)] = monitor_changes(result)
    assert (cron, action) == ("alpha", "update") and "changed" in reason
    assert service.grace_of("test-alpha") == (1200 if service.provider == "cronitor" else 1800)
    assert len(service.fake.writes()) == 1

    result = reconcile(env, {"alpha": cron_yaml()})  # beta deleted, alpha loses notifications
    assert result.ok, render_text(result.plan, result.apply_errors, result.errors)
    assert sorted(monitor_changes(result)) == [
        ("alpha", "delete", "notifications removed"), ("beta", "delete", "file removed")]
    assert service.monitors() == {}
    clients, settings, _ = env
    assert "monitor_id" not in live_state(clients, settings)["registry"]["alpha"]


def test_a_monitor_edited_at_the_service_is_repaired(env, service):
    reconcile(env, {"alpha": with_notifications("cron(0 5 * * ? *)")})
    service.edit_schedule("test-alpha", "0 7 * * *")
    result = reconcile(env)
    assert result.ok
    [(cron, action, reason)] = monitor_changes(result)
    assert (cron, action) == ("alpha", "update")
    assert reason.startswith("drift: monitor edited at")
    assert service.schedule_of("test-alpha") == "0 5 * * *"
    assert "~ schedule: \"0 7 * * *\" -> \"0 5 * * *\"" in render_text(result.plan)


def test_a_monitor_deleted_at_the_service_is_created_again(env, service):
    reconcile(env, {"alpha": with_notifications()})
    if service.provider == "cronitor":
        service.fake.monitors.clear()
    else:
        service.fake.checks.clear()
    result = reconcile(env)
    assert monitor_changes(result) == [("alpha", "create", f"drift: monitor deleted at "
                                        f"{'Cronitor' if service.provider == 'cronitor' else 'Healthchecks.io'}")]
    assert sorted(service.monitors()) == ["test-alpha"]


def test_another_teams_monitor_is_never_touched(env, service):
    theirs = service.add_foreign("test-alpha")
    before = service.stored(theirs)
    created = reconcile(env, {"alpha": with_notifications()})
    if service.provider == "cronitor":  # the key is taken: refused, never overwritten
        [error] = created.apply_errors
        assert error.resource == "monitor" and "already taken" in error.message
    else:  # a check of our own beside theirs
        assert created.ok and len(service.fake.by_slug("test-alpha")) == 2
    reconcile(env, {})
    assert service.stored(theirs) == before
    assert not [r for r in service.fake.writes() if theirs in r.path and r.method != "POST"
                or (r.method == "PUT" and theirs in r.body.decode())]


@pytest.mark.parametrize("mode", ["down", "slow", "500"])
def test_service_down_other_crons_reconcile_and_the_error_is_in_the_result(env, service, mode):
    clients, settings, _ = env
    service.fake.fail(mode, slow_s=30)
    result = reconcile(env, {"alpha": with_notifications(), "plain": cron_yaml()})
    assert not result.ok
    assert sorted(live_state(clients, settings)["rules"]) == ["test-alpha", "test-plain"]
    messages = [e.message for e in result.plan.errors]
    assert len(messages) == 1 and "could not be read" in messages[0]
    assert monitor_changes(result) == []
    text = render_text(result.plan, result.apply_errors, result.errors)
    assert "monitors are left as they are" in text

    service.fake.fail(None)
    healed = reconcile(env)
    assert healed.ok and sorted(service.monitors()) == ["test-alpha"]


def test_service_down_during_apply_fails_only_the_monitor(env, service):
    clients, settings, root = env
    write_crons(root, {"alpha": with_notifications(), "plain": cron_yaml()})
    plan = plan_pass(clients, settings, read_source(settings))  # the service read fine
    service.fake.fail("500")  # and then fails every write
    result = apply_plan(clients, settings, plan, fence=UNFENCED)
    assert [(e.cron, e.resource) for e in result.errors] == [("alpha", "monitor")]
    state = live_state(clients, settings)
    assert sorted(state["registry"]) == ["alpha", "plain"]
    assert "monitor_id" not in state["registry"]["alpha"]
    service.fake.fail(None)
    healed = reconcile(env)
    assert healed.ok and sorted(service.monitors()) == ["test-alpha"]


def test_a_bad_key_is_one_error_for_the_pass(env, service):
    clients, settings, _ = env
    bad = settings.with_(monitor_api_key="wrong")
    result = reconcile(env, {f"c{i}": with_notifications() for i in range(3)}, settings=bad)
    errors = [e.message for e in result.plan.errors]
    assert len(errors) == 1 and "refused the API key (HTTP 401" in errors[0]
    assert monitor_changes(result) == []
    assert sorted(live_state(clients, settings)["rules"]) == ["test-c0", "test-c1", "test-c2"]


def test_no_api_key_is_one_error_and_never_deletes(env, service):
    reconcile(env, {"alpha": with_notifications()})
    clients, settings, _ = env
    keyless = settings.with_(monitor_api_key=None)
    result = reconcile(env, {}, settings=keyless)
    assert [e.message for e in result.plan.errors] == [
        "CRONCTL_MONITOR_API_KEY is not set: monitors were neither read nor changed"]
    assert monitor_changes(result) == []
    assert sorted(service.monitors()) == ["test-alpha"]


def test_a_schedule_that_cannot_be_expressed_is_a_plan_error_for_that_cron_only(env, service):
    clients, settings, _ = env
    result = reconcile(env, {"odd": with_notifications("cron(0 5 15W * ? *)"),
                             "fine": with_notifications()})
    [error] = result.plan.errors
    assert error.cron == "odd" and "15W" in error.message
    assert sorted(service.monitors()) == ["test-fine"]
    assert sorted(live_state(clients, settings)["rules"]) == ["test-fine", "test-odd"]
    assert "its monitor is left as it is" in render_text(result.plan)


def test_switching_monitoring_on_creates_and_off_deletes(env, service):
    clients, settings, root = env
    off = settings.with_(monitor="none")
    record_settings(clients, off)
    reconcile(env, {"alpha": with_notifications()}, settings=off)
    assert service.monitors() == {}
    record_settings(clients, settings)
    on = reconcile(env, settings=settings)
    assert monitor_changes(on) == [("alpha", "create", "new monitor")]
    assert sorted(service.monitors()) == ["test-alpha"]
    record_settings(clients, off)
    result = reconcile(env, settings=off)
    assert result.ok, render_text(result.plan, result.apply_errors, result.errors)
    [(cron, action, reason)] = monitor_changes(result)
    assert (cron, action) == ("alpha", "delete") and "switched off" in reason
    assert service.monitors() == {}
    assert "monitor_id" not in live_state(clients, settings)["registry"]["alpha"]


# Healthchecks only: Cronitor's keys are unique, so no duplicate can exist there.
@pytest.mark.parametrize("service", ["healthchecks"], indirect=True)
def test_a_second_monitor_tagged_ours_with_the_same_key_is_deleted(env, service):
    reconcile(env, {"alpha": with_notifications()})
    extra = service.fake.add_check(name="test/alpha", slug="test-alpha",
                                   tags="cronctl cronctl-ns-test", timeout=60)
    result = reconcile(env)
    assert monitor_changes(result) == [("alpha", "delete", "duplicate monitor tagged as ours")]
    assert extra not in service.fake.checks and len(service.fake.checks) == 1
